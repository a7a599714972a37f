"""Bad input, on every public estimator: it works correctly or says what is wrong.

Each case either gives the right result (asserted) or raises ValueError /
TypeError / NotFittedError with a message naming what was wrong and what was
expected. Whatever happens, nothing the user passed (X, y, sample_weight, the
source network) is modified. The estimators come from ``sktransfer.__all__``
through ``tests/_factories.py``.
"""

import inspect

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from _factories import (
    N_FEATURES,
    EmbeddingSource,
    conv_source,
    data,
    estimator_params,
    fit,
    kind,
    make,
    mlp_source,
    outputs,
    predict_or_transform,
    public_estimators,
    targets,
    unchanged,
)
from sklearn.exceptions import NotFittedError

from sktransfer import (
    DistilledClassifier,
    JointTrainingClassifier,
    SourceModelClassifier,
    SourceModelRegressor,
)

ESTIMATORS = estimator_params()


def _supervised():
    return [cls for cls in public_estimators() if kind(make(cls)) != "transformer"]


def _takes_sample_weight(cls):
    return "sample_weight" in inspect.signature(cls.fit).parameters


def test_every_public_estimator_has_a_factory():
    from _factories import FACTORIES

    missing = set(public_estimators()) - set(FACTORIES)
    assert not missing, f"add them to tests/_factories.py: {missing}"


# --- X: values -------------------------------------------------------------------


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.nan, "Input X contains NaN"),
        (np.inf, "Input X contains infinity"),
        (-np.inf, "Input X contains infinity"),
    ],
    ids=["nan", "inf", "-inf"],
)
@pytest.mark.parametrize("method", ["fit", "predict"])
def test_non_finite_X_is_refused(estimator_class, value, message, method):
    source = mlp_source()
    estimator = make(estimator_class, source)
    X, y = data(estimator)
    bad = X.copy()
    bad[3, 1] = value
    with unchanged(X=bad, y=y, source=source):
        if method == "fit":
            with pytest.raises(ValueError, match=message):
                fit(estimator, bad, y)
        else:
            fit(estimator, X, y)
            with pytest.raises(ValueError, match=message):
                predict_or_transform(estimator, bad)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_wrong_feature_count_names_the_source_networks_width(estimator_class):
    source = mlp_source()
    estimator = make(estimator_class, source)
    X, y = data(estimator, n_features=7)
    with (
        unchanged(X=X, y=y, source=source),
        pytest.raises(
            ValueError,
            match=r"X has 7 features, but the source network's first layer '0' "
            r"expects 4 input features",
        ),
    ):
        fit(estimator, X, y)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_wrong_feature_count_after_fit_names_both_counts(estimator_class):
    estimator = make(estimator_class)
    X, y = data(estimator)
    fit(estimator, X, y)
    with pytest.raises(
        ValueError, match=r"X has 7 features, but \w+ is expecting 4 features"
    ):
        predict_or_transform(estimator, np.zeros((5, 7), dtype=np.float32))


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_non_numeric_X_is_refused_naming_its_dtype(estimator_class):
    estimator = make(estimator_class)
    X, y = data(estimator)
    frame = pd.DataFrame(X, columns=list("abcd"))
    frame["d"] = pd.Categorical(np.where(X[:, 3] > 0, "high", "low"))
    with (
        unchanged(X=frame, y=y),
        pytest.raises(TypeError, match=r"dtype object .*needs numbers"),
    ):
        fit(estimator, frame, y)
    with pytest.raises(
        ValueError, match=r"X holds strings, but the source network is not a text"
    ):
        fit(estimator, X.astype(str), y)


# --- X: shape ----------------------------------------------------------------------


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_1d_X_is_refused_with_the_reshape_hint(estimator_class):
    estimator = make(estimator_class)
    X, y = data(estimator)
    with pytest.raises(
        ValueError, match=r"(?s)Expected 2D array, got 1D array.*reshape"
    ):
        fit(estimator, X[:, 0], y)


# Estimators that fit the source network's own outputs (distillation's soft
# targets, joint training's source labels) need one vector of them per sample,
# which a Linear source on 3-D X does not give: they refuse it, naming both
# shapes, and handle such X like the others with the setting given here, which
# leaves the source's outputs unused.
_FITS_SOURCE_OUTPUTS = {
    DistilledClassifier: (
        {"alpha": 0.0},
        r"Distillation needs the source network's logits, one vector of shape "
        r"\(n_source_outputs,\) per sample, but on samples of shape \(2, 4\) it "
        r"gives outputs of shape \(2, 3\) per sample",
    ),
    JointTrainingClassifier: (
        {"source_weight": 0.0},
        r"fits the source head '2' to one source label per sample, so it needs "
        r"one logit per source class .*, but on samples of shape \(2, 4\) it gives "
        r"outputs of shape \(2, 3\) per sample",
    ),
}


def _3d_X(estimator):
    X, y = data(estimator, n_features=2 * N_FEATURES)
    return X.reshape(-1, 2, N_FEATURES), y


# The untouched source predicts with its own head, which gives one row of
# outputs per position of such X: it refuses it, naming the shape.
_PREDICTS_WITH_SOURCE_OUTPUTS = {
    SourceModelClassifier: r"gives outputs of shape \(2, 3\) per sample",
    SourceModelRegressor: r"gives outputs of shape \(2, 3\) per sample",
}


@pytest.mark.parametrize(
    "estimator_class",
    estimator_params(
        [c for c in public_estimators() if c not in _PREDICTS_WITH_SOURCE_OUTPUTS]
    ),
)
def test_3d_X_through_a_linear_network_gives_one_output_per_sample(estimator_class):
    # A Linear layer acts on the last axis: (n, 2, 4) gives (n, 2, 8) features,
    # which a new head must flatten; the source head (one output per position)
    # cannot be reused.
    source = mlp_source()
    settings, _ = _FITS_SOURCE_OUTPUTS.get(estimator_class, ({}, None))
    estimator = make(estimator_class, source, **settings)
    X, y = _3d_X(estimator)
    with unchanged(X=X, y=y, source=source):
        fit(estimator, X, y)
        result = outputs(estimator, X)
    expected = {"transformer": (30, 16), "classifier": (30, 3), "regressor": (30,)}
    assert result.shape == expected[kind(estimator)]
    if kind(estimator) != "transformer":
        assert estimator.head_choice_ == "new"
        assert predict_or_transform(estimator, X).shape == (30,)


@pytest.mark.parametrize(
    "estimator_class", estimator_params(list(_FITS_SOURCE_OUTPUTS))
)
def test_3d_X_is_refused_where_the_sources_outputs_per_position_would_be_fitted(
    estimator_class,
):
    source = mlp_source()
    estimator = make(estimator_class, source)
    X, y = _3d_X(estimator)
    _, message = _FITS_SOURCE_OUTPUTS[estimator_class]
    with unchanged(X=X, y=y, source=source), pytest.raises(ValueError, match=message):
        fit(estimator, X, y)
    assert not hasattr(estimator, "n_features_in_")


@pytest.mark.parametrize(
    "estimator_class", estimator_params(list(_PREDICTS_WITH_SOURCE_OUTPUTS))
)
def test_3d_X_is_refused_where_the_source_predicts_per_position(estimator_class):
    source = mlp_source()
    estimator = make(estimator_class, source)
    X, y = _3d_X(estimator)
    message = _PREDICTS_WITH_SOURCE_OUTPUTS[estimator_class]
    with unchanged(X=X, y=y, source=source), pytest.raises(ValueError, match=message):
        fit(estimator, X, y)
    assert not hasattr(estimator, "n_features_in_")


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_samples_of_another_shape_than_in_fit_are_refused(estimator_class):
    estimator = make(estimator_class)
    X, y = data(estimator)
    fit(estimator, X, y)
    with pytest.raises(
        ValueError,
        match=r"X has samples of shape \(2, 4\), but \w+ was fitted on samples of "
        r"shape \(4,\)",
    ):
        predict_or_transform(estimator, np.zeros((5, 2, 4), dtype=np.float32))


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_flat_X_for_a_conv_network_names_the_dimensions_it_expects(estimator_class):
    estimator = make(estimator_class, conv_source())
    X, y = data(estimator, n_features=64)
    with pytest.raises(ValueError, match=r"X has 2 dimensions.*expects 4-D input"):
        fit(estimator, X, y)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_images_of_another_size_than_in_fit_are_refused(estimator_class):
    source = conv_source()
    estimator = make(estimator_class, source)
    X, y = data(estimator, n_features=64)
    fit(estimator, X.reshape(-1, 1, 8, 8), y)
    small = np.zeros((5, 1, 6, 6), dtype=np.float32)
    with (
        unchanged(X=small, source=source),
        pytest.raises(
            ValueError,
            match=r"samples of shape \(1, 6, 6\).*fitted on samples of shape "
            r"\(1, 8, 8\)",
        ),
    ):
        predict_or_transform(estimator, small)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
@pytest.mark.parametrize("container", [sp.csr_matrix, sp.csr_array, sp.coo_matrix])
@pytest.mark.parametrize("method", ["fit", "predict"])
def test_sparse_X_is_refused_suggesting_toarray(estimator_class, container, method):
    estimator = make(estimator_class)
    X, y = data(estimator)
    sparse = container(X)
    message = r"Sparse data was passed for X, but dense data is required.*toarray"
    with unchanged(X=sparse, y=y):
        if method == "fit":
            with pytest.raises(TypeError, match=message):
                fit(estimator, sparse, y)
        else:
            fit(estimator, X, y)
            with pytest.raises(TypeError, match=message):
                predict_or_transform(estimator, sparse)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_empty_X_is_refused(estimator_class):
    estimator = make(estimator_class)
    X, y = data(estimator)
    message = r"0 sample\(s\) \(shape=\(0, 4\)\) while a minimum of 1 is required"
    with pytest.raises(ValueError, match=message):
        fit(estimator, X[:0], y[:0])
    fit(estimator, X, y)
    with pytest.raises(ValueError, match=message):
        predict_or_transform(estimator, X[:0])


# --- X: layout and dtype give the same results --------------------------------------


def _variants(X):
    wide = np.repeat(X, 2, axis=1)
    return {
        "fortran order": np.asfortranarray(X),
        "strided view": wide[:, ::2],
        "reversed rows view": X[::-1].copy()[::-1],
        "float64": X.astype(np.float64),
        "DataFrame": pd.DataFrame(X),
        "list of lists": X.tolist(),
    }


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_layout_and_dtype_of_X_do_not_change_the_results(estimator_class):
    estimator = make(estimator_class)
    X, y = data(estimator)
    reference = outputs(fit(make(estimator_class), X, y), X)
    for name, variant in _variants(X).items():
        assert not isinstance(variant, np.ndarray) or np.array_equal(variant, X)
        with unchanged(X=variant, y=y):
            result = outputs(fit(make(estimator_class), variant, y), variant)
        np.testing.assert_array_equal(result, reference, err_msg=name)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_integer_X_gives_the_results_of_the_same_values_as_floats(estimator_class):
    estimator = make(estimator_class)
    X, y = data(estimator)
    X_int = np.round(X * 3).astype(np.int64)
    with unchanged(X=X_int):
        from_ints = outputs(fit(make(estimator_class), X_int, y), X_int)
    X_float = X_int.astype(np.float32)
    from_floats = outputs(fit(make(estimator_class), X_float, y), X_float)
    np.testing.assert_array_equal(from_ints, from_floats)


# --- integer ids for an embedding network ---------------------------------------


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (lambda X: X + 3, r"ids from 3 to 12, but"),
        (lambda X: X - 1, r"ids from -1 to 8, but"),
        (lambda X: X + 0.5, r"non-integer values \(e\.g\. \d\.5\), but"),
    ],
    ids=["too large", "negative", "fractional"],
)
def test_ids_an_embedding_cannot_look_up_are_refused(estimator_class, ids, message):
    source = EmbeddingSource()
    estimator = make(estimator_class, source)
    _, y = data(estimator)
    X = np.arange(30 * 5).reshape(30, 5) % 10
    bad = ids(X)
    expected = r".*first layer '([\w.]*\.)?embedding' \(Embedding\(10, 4\)\) reads "
    expected += r"integer ids from 0 to 9"
    with unchanged(X=bad, source=source):
        with pytest.raises(ValueError, match=message + expected):
            fit(estimator, bad, y)
        fit(estimator, X, y)
        with pytest.raises(ValueError, match=message + expected):
            predict_or_transform(estimator, bad)


# --- y --------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator_class", estimator_params(_supervised()))
def test_y_of_the_wrong_length_names_both_lengths(estimator_class):
    estimator = make(estimator_class)
    X, y = data(estimator)
    with (
        unchanged(X=X, y=y),
        pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[30, 29\]"),
    ):
        fit(estimator, X, y[:-1])


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_a_single_class_is_refused_by_classifiers_only(estimator_class):
    estimator = make(estimator_class)
    X, _ = data(estimator)
    y = targets(estimator, np.full(X.shape[0], 7))
    if kind(estimator) == "classifier":
        with pytest.raises(
            ValueError, match=r"at least 2 classes; y holds only one class: 7"
        ):
            fit(estimator, X, y)
    else:
        fit(estimator, X, y)
        assert np.isfinite(outputs(estimator, X)).all()


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_continuous_y_is_refused_by_classifiers_only(estimator_class):
    estimator = make(estimator_class)
    X, _ = data(estimator)
    y = targets(estimator, np.linspace(0, 1, X.shape[0]))
    if kind(estimator) == "classifier":
        with pytest.raises(ValueError, match="Unknown label type: continuous"):
            fit(estimator, X, y)
    else:
        fit(estimator, X, y)
        assert np.isfinite(outputs(estimator, X)).all()


_NAMES = np.array(["cat", "dog", "emu"])
_LABELS = {
    "str": lambda codes: _NAMES[codes],
    "object": lambda codes: _NAMES[codes].astype(object),
    "Series of str": lambda codes: pd.Series(_NAMES[codes]),
    "Categorical": lambda codes: pd.Series(pd.Categorical(_NAMES[codes])),
    "sparse ints": lambda codes: np.array([-5, 10, 1000])[codes],
}


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
@pytest.mark.parametrize("labels", list(_LABELS), ids=list(_LABELS))
def test_labels_of_any_type_round_trip_through_predict(estimator_class, labels):
    estimator = make(estimator_class)
    X, _ = data(estimator)
    codes = np.arange(X.shape[0]) % 3
    y = _LABELS[labels](codes)
    if kind(estimator) == "regressor":
        y = targets(estimator, y)
    numeric = labels == "sparse ints"
    with unchanged(X=X, y=y):
        if kind(estimator) == "regressor" and not numeric:
            with pytest.raises(ValueError, match=r"needs numeric targets.*classifier"):
                fit(estimator, X, y)
            return
        fit(estimator, X, y)
    if kind(estimator) != "classifier":
        return
    expected_classes = np.unique(np.asarray(y))
    np.testing.assert_array_equal(estimator.classes_, expected_classes)
    # The same fit on integer codes predicts the same classes.
    by_code = fit(make(estimator_class), X, codes)
    np.testing.assert_array_equal(
        estimator.predict(X), expected_classes[by_code.predict(X)]
    )


@pytest.mark.parametrize("estimator_class", estimator_params(_supervised()))
def test_labels_that_mix_strings_and_numbers_are_refused(estimator_class):
    estimator = make(estimator_class)
    X, _ = data(estimator)
    y = np.array(["cat", 2, "emu"], dtype=object)[np.arange(X.shape[0]) % 3]
    if kind(estimator) == "classifier":
        match = r"y mixes labels of types \['int', 'str'\].*all strings or all numbers"
        with pytest.raises(TypeError, match=match):
            fit(estimator, X, y)
    else:
        with pytest.raises(ValueError, match="needs numeric targets"):
            fit(estimator, X, y)


# --- sample_weight ------------------------------------------------------------------


def _weighted():
    return [cls for cls in public_estimators() if _takes_sample_weight(cls)]


@pytest.mark.parametrize("estimator_class", estimator_params(_weighted()))
@pytest.mark.parametrize(
    ("weights", "error", "message"),
    [
        (lambda n: -np.ones(n), ValueError, r"negative values.*must be >= 0"),
        (lambda n: np.ones(n - 1), ValueError, r"shape == \(29,\), expected \(30,\)"),
        (lambda n: np.full(n, np.nan), ValueError, "sample_weight contains NaN"),
        (lambda n: np.zeros(n), ValueError, "at least one non-zero"),
    ],
    ids=["negative", "wrong length", "nan", "all zero"],
)
def test_bad_sample_weight_is_refused(estimator_class, weights, error, message):
    source = mlp_source()
    estimator = make(estimator_class, source)
    X, y = data(estimator)
    sample_weight = weights(X.shape[0])
    with (
        unchanged(X=X, y=y, sample_weight=sample_weight, source=source),
        pytest.raises(error, match=message),
    ):
        fit(estimator, X, y, sample_weight=sample_weight)
    assert not hasattr(estimator, "n_features_in_")


@pytest.mark.parametrize("estimator_class", estimator_params(_weighted()))
def test_fit_with_sample_weight_leaves_every_input_unchanged(estimator_class):
    source = mlp_source()
    estimator = make(estimator_class, source)
    X, y = data(estimator)
    sample_weight = np.linspace(0.5, 2, X.shape[0])
    with unchanged(X=X, y=y, sample_weight=sample_weight, source=source):
        fit(estimator, X, y, sample_weight=sample_weight)
        outputs(estimator, X)


# --- before fit ---------------------------------------------------------------------


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_methods_before_fit_raise_not_fitted(estimator_class):
    estimator = make(estimator_class)
    X, _ = data(estimator)
    methods = [
        name
        for name in ("predict", "predict_proba", "transform", "score")
        if hasattr(estimator, name)
    ]
    assert methods
    for name in methods:
        args = (X, np.zeros(X.shape[0])) if name == "score" else (X,)
        with pytest.raises(NotFittedError, match=r"not fitted yet.*Call 'fit'"):
            getattr(estimator, name)(*args)

"""Bad input, on every public estimator: it works correctly or says what is wrong.

This is the reliability matrix. Each case either gives the right result
(asserted) or raises ValueError / TypeError / NotFittedError (or the
FileNotFoundError, ConnectionError … named below) with a message naming what
was wrong and what was expected. Whatever happens, nothing the user passed
(X, y, sample_weight, the source network, files) is modified. Each case is
tried inside ``matrix.case(area, ...)``, which counts it for the table on the
Reliability page (``docs/reliability_matrix.txt``, see tests/_matrix.py). The
estimators come from ``sktransfer.__all__`` through ``tests/_factories.py``.
"""

import inspect
import sys
import time

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
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
    network_estimators,
    outputs,
    predict_or_transform,
    public_estimators,
    targets,
)
from sklearn.exceptions import NotFittedError
from torch import nn

from sktransfer import (
    DistilledClassifier,
    DistilledRegressor,
    JointTrainingClassifier,
    JointTrainingRegressor,
    SourceData,
    SourceModelClassifier,
    SourceModelRegressor,
    TrainingDivergedError,
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
def test_non_finite_X_is_refused(matrix, estimator_class, value, message, method):
    source = mlp_source()
    estimator = make(estimator_class, source)
    X, y = data(estimator)
    bad = X.copy()
    bad[3, 1] = value
    with matrix.case("X values", X=bad, y=y, source=source):
        if method == "fit":
            with pytest.raises(ValueError, match=message):
                fit(estimator, bad, y)
        else:
            fit(estimator, X, y)
            with pytest.raises(ValueError, match=message):
                predict_or_transform(estimator, bad)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_wrong_feature_count_names_the_source_networks_width(matrix, estimator_class):
    source = mlp_source()
    estimator = make(estimator_class, source)
    X, y = data(estimator, n_features=7)
    with (
        matrix.case("X shape", X=X, y=y, source=source),
        pytest.raises(
            ValueError,
            match=r"X has 7 features, but the source network's first layer '0' "
            r"expects 4 input features",
        ),
    ):
        fit(estimator, X, y)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_wrong_feature_count_after_fit_names_both_counts(matrix, estimator_class):
    estimator = make(estimator_class)
    X, y = data(estimator)
    fit(estimator, X, y)
    wide = np.zeros((5, 7), dtype=np.float32)
    with (
        matrix.case("X shape", X=wide),
        pytest.raises(
            ValueError, match=r"X has 7 features, but \w+ is expecting 4 features"
        ),
    ):
        predict_or_transform(estimator, wide)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_non_numeric_X_is_refused_naming_its_column(matrix, estimator_class):
    estimator = make(estimator_class)
    X, y = data(estimator)
    frame = pd.DataFrame(X, columns=list("abcd"))
    frame["d"] = pd.Categorical(np.where(X[:, 3] > 0, "high", "low"))
    with (
        matrix.case("X values", X=frame, y=y),
        pytest.raises(
            ValueError,
            match=r"X holds strings in column 'd' \(e\.g\. '(high|low)' in row 0\), "
            r"but the source network reads numbers\. Encode such columns first",
        ),
    ):
        fit(estimator, frame, y)
    text = X.astype(str)
    with (
        matrix.case("X values", X=text, y=y),
        pytest.raises(
            ValueError, match=r"X holds strings, but the source network is not a text"
        ),
    ):
        fit(estimator, text, y)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
@pytest.mark.parametrize("method", ["fit", "predict"])
def test_values_beyond_float32_are_refused_naming_the_columns(
    matrix, estimator_class, method
):
    # Finite in float64, infinite once converted to the network's float32.
    source = mlp_source()
    estimator = make(estimator_class, source)
    X, y = data(estimator)
    huge = X.astype(np.float64) * 1e39
    message = (
        r"X holds values up to \d\.\d+e\+39 in absolute value in columns 0 to 3, "
        r"beyond the range of float32 \(±3\.4e\+38\)"
    )
    with matrix.case("X values", X=huge, y=y, source=source):
        if method == "fit":
            with pytest.raises(ValueError, match=message):
                fit(estimator, huge, y)
        else:
            fit(estimator, X, y)
            with pytest.raises(ValueError, match=message):
                predict_or_transform(estimator, huge)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_one_column_beyond_float32_is_named(matrix, estimator_class):
    estimator = make(estimator_class)
    X, y = data(estimator)
    frame = pd.DataFrame(X.astype(np.float64), columns=list("abcd"))
    frame.loc[5, "c"] = -1e300
    with (
        matrix.case("X values", X=frame, y=y),
        pytest.raises(
            ValueError, match=r"up to 1e\+300 in absolute value in column 'c'"
        ),
    ):
        fit(estimator, frame, y)


def _may_choose_a_linear_model(estimator):
    return type(estimator).__name__.startswith("AutoTransfer")


def _summing_source():
    """mlp_source whose first layer sums its inputs: 3e38 + 3e38 overflows."""
    source = mlp_source()
    with torch.no_grad():
        source[0].weight.fill_(1.0)
    return source


def _close_to_float32_max(X):
    """Values of float32 (3e38), whose sums in the network are not."""
    return np.full(X.shape, 3e38, dtype=np.float32)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_inputs_that_overflow_the_network_never_give_nan_outputs(
    matrix, estimator_class
):
    # Representable in float32, but far too large for the network's weights:
    # the outputs would be NaN. predict_proba / transform refuse, naming the
    # first row, and so does a classifier's predict (not class 0 of NaN).
    estimator = make(estimator_class, _summing_source())
    X, y = data(estimator)
    fit(estimator, X, y)
    huge = _close_to_float32_max(X)
    message = (
        r"The network's outputs for row 0 of X are not finite \(NaN or infinite\)\. "
        r"X holds values up to 3e\+38 in absolute value"
    )
    methods = [outputs]
    if kind(estimator) == "classifier":
        methods.append(type(estimator).predict)
    for method in methods:
        with matrix.case("X values", X=huge):
            if _may_choose_a_linear_model(estimator):
                # A linear model may compute the outputs: they are finite.
                result = method(estimator, huge)
                assert np.isfinite(np.asarray(result, dtype=float)).all()
                continue
            with pytest.raises(ValueError, match=message):
                method(estimator, huge)


@pytest.mark.parametrize("estimator_class", estimator_params(network_estimators()))
def test_fitting_inputs_that_overflow_the_network_blames_them_not_the_lr(
    matrix, estimator_class
):
    estimator = make(estimator_class, _summing_source())
    X, y = data(estimator)
    huge = _close_to_float32_max(X)
    with (
        matrix.case("training faults", X=huge, y=y),
        pytest.raises(
            TrainingDivergedError,
            match=r"on the first batch, before any update: the loss is \w+\. The "
            r"learning rate cannot be the cause.*The inputs are the likely cause",
        ),
    ):
        fit(estimator, huge, y)
    assert not hasattr(estimator, "n_features_in_")


def _with_strings_in_column_c(X):
    frame = pd.DataFrame(X, columns=list("abcd")).astype({"c": object})
    frame.loc[4, "c"] = "n/a"
    return frame


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
@pytest.mark.parametrize(
    ("container", "column"),
    [
        (_with_strings_in_column_c, "column 'c'"),
        (lambda X: _with_strings_in_column_c(X).to_numpy(), "column 2"),
    ],
    ids=["DataFrame", "object array"],
)
@pytest.mark.parametrize("method", ["fit", "predict"])
def test_strings_in_a_column_that_is_not_the_first_are_named(
    matrix, estimator_class, container, column, method
):
    estimator = make(estimator_class)
    X, y = data(estimator)
    bad = container(X)
    message = rf"X holds strings in {column} \(e\.g\. 'n/a' in row 4\), but the "
    message += r"source network reads numbers\. Encode such columns first"
    with matrix.case("X values", X=bad, y=y):
        if method == "fit":
            with pytest.raises(ValueError, match=message):
                fit(estimator, bad, y)
        else:
            fit(estimator, X, y)
            with pytest.raises(ValueError, match=message):
                predict_or_transform(estimator, bad)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
@pytest.mark.parametrize(
    ("missing", "shown"), [(pd.NA, "<NA>"), (None, "None")], ids=["pd.NA", "None"]
)
@pytest.mark.parametrize("method", ["fit", "predict"])
def test_missing_values_in_object_columns_are_named(
    matrix, estimator_class, missing, shown, method
):
    estimator = make(estimator_class)
    X, y = data(estimator)
    bad = pd.DataFrame(X, columns=list("abcd")).astype(object)
    bad.iloc[7, 1] = missing
    message = rf"X holds a missing value \({shown}\) in column 'b', row 7; .*"
    message += "SimpleImputer"
    with matrix.case("X values", X=bad, y=y):
        if method == "fit":
            with pytest.raises(ValueError, match=message):
                fit(estimator, bad, y)
        else:
            fit(estimator, pd.DataFrame(X, columns=list("abcd")), y)
            with pytest.raises(ValueError, match=message):
                predict_or_transform(estimator, bad)


# --- X: shape ----------------------------------------------------------------------


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_1d_X_is_refused_with_the_reshape_hint(matrix, estimator_class):
    estimator = make(estimator_class)
    X, y = data(estimator)
    column = X[:, 0]
    with (
        matrix.case("X shape", X=column, y=y),
        pytest.raises(
            ValueError, match=r"(?s)Expected 2D array, got 1D array.*reshape"
        ),
    ):
        fit(estimator, column, y)


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
    DistilledRegressor: (
        {"alpha": 0.0},
        r"Distillation needs the source network's outputs, one vector of shape "
        r"\(n_source_outputs,\) per sample, but on samples of shape \(2, 4\) it "
        r"gives outputs of shape \(2, 3\) per sample",
    ),
    JointTrainingRegressor: (
        {"source_weight": 0.0},
        r"fits the source head '2' to one source label per sample, so it needs "
        r"one logit per source class .*, but on samples of shape \(2, 4\) it gives "
        r"outputs of shape \(2, 3\) per sample",
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
def test_3d_X_through_a_linear_network_gives_one_output_per_sample(
    matrix, estimator_class
):
    # A Linear layer acts on the last axis: (n, 2, 4) gives (n, 2, 8) features,
    # which a new head must flatten; the source head (one output per position)
    # cannot be reused.
    source = mlp_source()
    settings, _ = _FITS_SOURCE_OUTPUTS.get(estimator_class, ({}, None))
    estimator = make(estimator_class, source, **settings)
    X, y = _3d_X(estimator)
    with matrix.case("X shape", X=X, y=y, source=source):
        fit(estimator, X, y)
        result = outputs(estimator, X)
        expected = {
            "transformer": (30, 16),
            "classifier": (30, 3),
            "regressor": (30,),
        }
        assert result.shape == expected[kind(estimator)]
        if kind(estimator) != "transformer":
            fitted = getattr(estimator, "estimator_", estimator)  # a wrapper's
            assert fitted.head_choice_ == "new"
            assert predict_or_transform(estimator, X).shape == (30,)


@pytest.mark.parametrize(
    "estimator_class", estimator_params(list(_FITS_SOURCE_OUTPUTS))
)
def test_3d_X_is_refused_where_the_sources_outputs_per_position_would_be_fitted(
    matrix, estimator_class
):
    source = mlp_source()
    estimator = make(estimator_class, source)
    X, y = _3d_X(estimator)
    _, message = _FITS_SOURCE_OUTPUTS[estimator_class]
    with (
        matrix.case("X shape", X=X, y=y, source=source),
        pytest.raises(ValueError, match=message),
    ):
        fit(estimator, X, y)
    assert not hasattr(estimator, "n_features_in_")


@pytest.mark.parametrize(
    "estimator_class", estimator_params(list(_PREDICTS_WITH_SOURCE_OUTPUTS))
)
def test_3d_X_is_refused_where_the_source_predicts_per_position(
    matrix, estimator_class
):
    source = mlp_source()
    estimator = make(estimator_class, source)
    X, y = _3d_X(estimator)
    message = _PREDICTS_WITH_SOURCE_OUTPUTS[estimator_class]
    with (
        matrix.case("X shape", X=X, y=y, source=source),
        pytest.raises(ValueError, match=message),
    ):
        fit(estimator, X, y)
    assert not hasattr(estimator, "n_features_in_")


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_samples_of_another_shape_than_in_fit_are_refused(matrix, estimator_class):
    estimator = make(estimator_class)
    X, y = data(estimator)
    fit(estimator, X, y)
    other = np.zeros((5, 2, 4), dtype=np.float32)
    with (
        matrix.case("X shape", X=other),
        pytest.raises(
            ValueError,
            match=r"X has samples of shape \(2, 4\), but \w+ was fitted on samples "
            r"of shape \(4,\)",
        ),
    ):
        predict_or_transform(estimator, other)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_flat_X_for_a_conv_network_names_the_dimensions_it_expects(
    matrix, estimator_class
):
    source = conv_source()
    estimator = make(estimator_class, source)
    X, y = data(estimator, n_features=64)
    with (
        matrix.case("X shape", X=X, y=y, source=source),
        pytest.raises(ValueError, match=r"X has 2 dimensions.*expects 4-D input"),
    ):
        fit(estimator, X, y)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_images_of_another_size_than_in_fit_are_refused(matrix, estimator_class):
    source = conv_source()
    estimator = make(estimator_class, source)
    X, y = data(estimator, n_features=64)
    fit(estimator, X.reshape(-1, 1, 8, 8), y)
    small = np.zeros((5, 1, 6, 6), dtype=np.float32)
    with (
        matrix.case("X shape", X=small, source=source),
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
def test_sparse_X_is_refused_suggesting_toarray(
    matrix, estimator_class, container, method
):
    estimator = make(estimator_class)
    X, y = data(estimator)
    sparse = container(X)
    message = r"Sparse data was passed for X, but dense data is required.*toarray"
    with matrix.case("X values", X=sparse, y=y):
        if method == "fit":
            with pytest.raises(TypeError, match=message):
                fit(estimator, sparse, y)
        else:
            fit(estimator, X, y)
            with pytest.raises(TypeError, match=message):
                predict_or_transform(estimator, sparse)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_empty_X_is_refused(matrix, estimator_class):
    estimator = make(estimator_class)
    X, y = data(estimator)
    message = r"0 sample\(s\) \(shape=\(0, 4\)\) while a minimum of 1 is required"
    with matrix.case("X values"), pytest.raises(ValueError, match=message):
        fit(estimator, X[:0], y[:0])
    fit(estimator, X, y)
    with matrix.case("X values"), pytest.raises(ValueError, match=message):
        predict_or_transform(estimator, X[:0])


# --- networks: every network that reads X is accepted ------------------------------

N_SIGNAL = 40


def _unflatten_cnn():
    """A 1-D CNN for flat signals: its forward starts by adding the channel axis."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Unflatten(1, (1, N_SIGNAL)),
        nn.Conv1d(1, 2, kernel_size=5),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(2 * (N_SIGNAL - 4), 3),
    )


class _ViewCNN(nn.Module):
    """The same CNN, reshaping with ``x.view`` in its own ``forward``."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(1, 2, kernel_size=5)
        self.fc = nn.Linear(2 * (N_SIGNAL - 4), 3)

    def forward(self, x):
        x = x.view(x.shape[0], 1, N_SIGNAL)
        return self.fc(torch.relu(self.conv(x)).flatten(1))


_RESHAPING = {"Unflatten first": _unflatten_cnn, "x.view in forward": _ViewCNN}


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
@pytest.mark.parametrize("make_source", list(_RESHAPING.values()), ids=list(_RESHAPING))
def test_networks_that_reshape_flat_X_themselves_are_accepted(
    matrix, estimator_class, make_source
):
    # The first layer with parameters is a Conv1d, which reads 3-D input; the
    # network makes it so from 2-D X.
    source = make_source()
    estimator = make(estimator_class, source)
    X, y = data(estimator, n_features=N_SIGNAL)
    with matrix.case("networks", X=X, y=y, source=source):
        fit(estimator, X, y)
        result = outputs(estimator, X)
        expected = {"transformer": 2 * (N_SIGNAL - 4), "classifier": 3}
        assert result.shape[0] == X.shape[0]
        if kind(estimator) in expected:
            assert result.shape[1] == expected[kind(estimator)]
        assert np.isfinite(result).all()


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
@pytest.mark.parametrize(
    ("make_source", "where"),
    [
        (_unflatten_cnn, r"in layer '0' \(Unflatten\)"),
        (_ViewCNN, r"in the forward of \(_ViewCNN\)"),
    ],
    ids=list(_RESHAPING),
)
def test_x_that_a_reshaping_network_cannot_read_names_where_it_failed(
    matrix, estimator_class, make_source, where
):
    source = make_source()
    estimator = make(estimator_class, source)
    X, y = data(estimator, n_features=30)
    with (
        matrix.case("networks", X=X, y=y, source=source),
        pytest.raises(
            ValueError,
            match=r"could not process samples of shape \(30,\) "
            rf"\(it failed {where}\): ",
        ),
    ):
        fit(estimator, X, y)


def _batch_norm_source():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(N_FEATURES, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)
    )


@pytest.mark.parametrize("estimator_class", estimator_params(network_estimators()))
def test_batch_normalization_with_batches_of_one_sample_is_refused(
    matrix, estimator_class
):
    source = _batch_norm_source()
    estimator = make(estimator_class, source, batch_size=1)
    X, y = data(estimator)
    with (
        matrix.case("networks", X=X, y=y, source=source),
        pytest.raises(
            ValueError,
            match=r"normalizes batches \('[\w.]*1': BatchNorm1d\), which needs at "
            r"least two samples per training batch, but batch_size=1",
        ),
    ):
        fit(estimator, X, y)
    with matrix.case("networks", X=X, y=y, source=source):
        fit(make(estimator_class, source, batch_size=2), X, y)


def _freezes():
    return [cls for cls in network_estimators() if "freeze" in _constructor_params(cls)]


def _constructor_params(cls):
    return inspect.signature(cls.__init__).parameters


@pytest.mark.parametrize("estimator_class", estimator_params(_freezes()))
@pytest.mark.parametrize("unfreeze_at", [None, 3])
def test_freezing_every_parameter_is_refused(matrix, estimator_class, unfreeze_at):
    source = mlp_source()
    estimator = make(
        estimator_class, source, freeze=["body", "head"], unfreeze_at=unfreeze_at
    )
    X, y = data(estimator)
    until = "for the whole fit" if unfreeze_at is None else "until epoch 3"
    with (
        matrix.case("networks", X=X, y=y, source=source),
        pytest.raises(
            ValueError,
            match=rf"freeze=\['body', 'head'\] freezes every parameter of the network "
            rf"{until}.*PretrainedFeatureTransformer",
        ),
    ):
        fit(estimator, X, y)


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
def test_layout_and_dtype_of_X_do_not_change_the_results(matrix, estimator_class):
    estimator = make(estimator_class)
    X, y = data(estimator)
    reference = outputs(fit(make(estimator_class), X, y), X)
    for name, variant in _variants(X).items():
        assert not isinstance(variant, np.ndarray) or np.array_equal(variant, X)
        with matrix.case("X layout and dtype", X=variant, y=y):
            result = outputs(fit(make(estimator_class), variant, y), variant)
            np.testing.assert_array_equal(result, reference, err_msg=name)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_integer_X_gives_the_results_of_the_same_values_as_floats(
    matrix, estimator_class
):
    estimator = make(estimator_class)
    X, y = data(estimator)
    X_int = np.round(X * 3).astype(np.int64)
    X_float = X_int.astype(np.float32)
    from_floats = outputs(fit(make(estimator_class), X_float, y), X_float)
    with matrix.case("X layout and dtype", X=X_int):
        from_ints = outputs(fit(make(estimator_class), X_int, y), X_int)
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
def test_ids_an_embedding_cannot_look_up_are_refused(
    matrix, estimator_class, ids, message
):
    source = EmbeddingSource()
    estimator = make(estimator_class, source)
    _, y = data(estimator)
    X = np.arange(30 * 5).reshape(30, 5) % 10
    bad = ids(X)
    expected = r".*first layer '([\w.]*\.)?embedding' \(Embedding\(10, 4\)\) reads "
    expected += r"integer ids from 0 to 9"
    with (
        matrix.case("integer ids", X=bad, source=source),
        pytest.raises(ValueError, match=message + expected),
    ):
        fit(estimator, bad, y)
    fit(estimator, X, y)
    with (
        matrix.case("integer ids", X=bad, source=source),
        pytest.raises(ValueError, match=message + expected),
    ):
        predict_or_transform(estimator, bad)


# --- y --------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator_class", estimator_params(_supervised()))
def test_y_of_the_wrong_length_names_both_lengths(matrix, estimator_class):
    estimator = make(estimator_class)
    X, y = data(estimator)
    with (
        matrix.case("y", X=X, y=y),
        pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[30, 29\]"),
    ):
        fit(estimator, X, y[:-1])


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_a_single_class_is_refused_by_classifiers_only(matrix, estimator_class):
    estimator = make(estimator_class)
    X, _ = data(estimator)
    y = targets(estimator, np.full(X.shape[0], 7))
    with matrix.case("y", X=X, y=y):
        if kind(estimator) == "classifier":
            with pytest.raises(
                ValueError, match=r"at least 2 classes; y holds only one class: 7"
            ):
                fit(estimator, X, y)
        else:
            fit(estimator, X, y)
            assert np.isfinite(outputs(estimator, X)).all()


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_continuous_y_is_refused_by_classifiers_only(matrix, estimator_class):
    estimator = make(estimator_class)
    X, _ = data(estimator)
    y = targets(estimator, np.linspace(0, 1, X.shape[0]))
    with matrix.case("y", X=X, y=y):
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
def test_labels_of_any_type_round_trip_through_predict(matrix, estimator_class, labels):
    estimator = make(estimator_class)
    X, _ = data(estimator)
    codes = np.arange(X.shape[0]) % 3
    y = _LABELS[labels](codes)
    if kind(estimator) == "regressor":
        y = targets(estimator, y)
    numeric = labels == "sparse ints"
    with matrix.case("y", X=X, y=y):
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
def test_labels_that_mix_strings_and_numbers_are_refused(matrix, estimator_class):
    estimator = make(estimator_class)
    X, _ = data(estimator)
    y = np.array(["cat", 2, "emu"], dtype=object)[np.arange(X.shape[0]) % 3]
    with matrix.case("y", X=X, y=y):
        if kind(estimator) == "classifier":
            match = r"y mixes labels of types \['int', 'str'\].*all strings or all "
            with pytest.raises(TypeError, match=match + "numbers"):
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
def test_bad_sample_weight_is_refused(matrix, estimator_class, weights, error, message):
    source = mlp_source()
    estimator = make(estimator_class, source)
    X, y = data(estimator)
    sample_weight = weights(X.shape[0])
    with (
        matrix.case(
            "sample weights", X=X, y=y, sample_weight=sample_weight, source=source
        ),
        pytest.raises(error, match=message),
    ):
        fit(estimator, X, y, sample_weight=sample_weight)
    assert not hasattr(estimator, "n_features_in_")


@pytest.mark.parametrize("estimator_class", estimator_params(_weighted()))
def test_fit_with_sample_weight_leaves_every_input_unchanged(matrix, estimator_class):
    source = mlp_source()
    estimator = make(estimator_class, source)
    X, y = data(estimator)
    sample_weight = np.linspace(0.5, 2, X.shape[0])
    with matrix.case(
        "sample weights", X=X, y=y, sample_weight=sample_weight, source=source
    ):
        fit(estimator, X, y, sample_weight=sample_weight)
        outputs(estimator, X)


_BAD_WEIGHTS = {
    "negative": (lambda n: -np.ones(n), r"negative values.*must be >= 0"),
    "wrong length": (lambda n: np.ones(n - 1), r"shape == \(29,\), expected \(30,\)"),
    "nan": (lambda n: np.full(n, np.nan), "sample_weight contains NaN"),
    "all zero": (lambda n: np.zeros(n), "at least one non-zero"),
}


@pytest.mark.parametrize(
    ("weights", "message"), list(_BAD_WEIGHTS.values()), ids=list(_BAD_WEIGHTS)
)
def test_bad_source_data_weights_are_refused_like_sample_weight(
    matrix, weights, message
):
    source = mlp_source()
    estimator = make(JointTrainingClassifier, source)
    X, y = data(estimator)
    source_weight = weights(X.shape[0])
    source_data = SourceData(X, y, source_weight)
    with (
        matrix.case("sample weights", X=X, y=y, weights=source_weight, source=source),
        pytest.raises(ValueError, match=r"SourceData's sample_weight .*" + message),
    ):
        estimator.fit(X, y, source_data=source_data)
    assert not hasattr(estimator, "n_features_in_")


# --- source data ----------------------------------------------------------------------


def _source_X_with(change):
    def bad(X):
        X = X.astype(object if change == "strings" else np.float64)
        X[2, 3] = {"nan": np.nan, "strings": "n/a", "overflow": 1e39}[change]
        return X

    return bad


@pytest.mark.parametrize(
    ("bad_source_X", "message"),
    [
        (_source_X_with("nan"), "Input SourceData's X contains NaN"),
        (
            _source_X_with("strings"),
            r"SourceData's X holds strings in column 3 \(e\.g\. 'n/a' in row 2\)",
        ),
        (
            _source_X_with("overflow"),
            r"SourceData's X holds values up to 1e\+39 in absolute value in column 3",
        ),
        (
            lambda X: X[:, :3],
            r"SourceData's X has samples of shape \(3,\), the X given to fit of "
            r"shape \(4,\)",
        ),
    ],
    ids=["nan", "strings", "overflow", "other width"],
)
def test_bad_source_data_is_refused(matrix, bad_source_X, message):
    source = mlp_source()
    estimator = make(JointTrainingClassifier, source)
    X, y = data(estimator)
    X_source = bad_source_X(X)
    with (
        matrix.case("source data", X=X, X_source=X_source, source=source),
        pytest.raises(ValueError, match=message),
    ):
        estimator.fit(X, y, source_data=SourceData(X_source, y))


# --- set-up: device, early stopping, weights files -----------------------------------


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
@pytest.mark.parametrize(
    ("device", "message"),
    [
        (
            "cuda:99",
            r"device='cuda:99' cannot be used: (this torch .* was built "
            r"without CUDA|no CUDA GPU is visible|this machine has \d+ CUDA)",
        ),
        ("gpu", r"device='gpu' is not a torch device.*Use e\.g\. 'cpu', 'cuda'"),
    ],
    ids=["absent GPU", "misspelt"],
)
def test_a_device_torch_cannot_use_is_refused_saying_why(
    matrix, estimator_class, device, message
):
    source = mlp_source()
    estimator = make(estimator_class, source, device=device)
    X, y = data(estimator)
    with (
        matrix.case("set-up", X=X, y=y, source=source),
        pytest.raises(ValueError, match=message),
    ):
        fit(estimator, X, y)


@pytest.mark.parametrize(
    "estimator_class",
    estimator_params(
        [c for c in network_estimators() if "early_stopping" in _constructor_params(c)]
    ),
)
def test_early_stopping_on_too_few_samples_says_what_the_split_needs(
    matrix, estimator_class
):
    source = mlp_source()
    estimator = make(estimator_class, source, early_stopping=True)
    if kind(estimator) == "classifier":
        # 2 samples of each of 3 classes: 1 held out, 1 class short.
        X, y = data(estimator, n_samples=6)
        message = r"holds out .* \(1\), which leaves 5 .*one sample of each of the 3"
    else:
        X, y = data(estimator, n_samples=1)
        message = r"holds out .* \(1\), which leaves 0 to train on: both parts"
    with (
        matrix.case("set-up", X=X, y=y, source=source),
        pytest.raises(ValueError, match=message + r".*early_stopping=False"),
    ):
        fit(estimator, X, y)


def _garbage(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"not weights " * 8)
    return path


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
@pytest.mark.parametrize(
    ("weights_file", "error", "message"),
    [
        (
            lambda tmp_path: tmp_path,
            IsADirectoryError,
            r"is a directory; pass the weights file in it",
        ),
        (
            lambda tmp_path: _garbage(tmp_path, "model.safetensors"),
            ValueError,
            r"model\.safetensors' is not a valid \.safetensors file .*: ",
        ),
        (
            lambda tmp_path: _garbage(tmp_path, "model.pt"),
            ValueError,
            r"Refused to load '.*model\.pt': torch's safe loader .* cannot read it",
        ),
        (
            lambda tmp_path: tmp_path / "missing.pt",
            FileNotFoundError,
            r"missing\.pt' does not exist",
        ),
    ],
    ids=["directory", "bad safetensors", "bad torch file", "missing"],
)
def test_unusable_weights_files_are_refused_naming_the_path(
    matrix, estimator_class, weights_file, error, message, tmp_path
):
    source = mlp_source()
    path = weights_file(tmp_path)
    estimator = make(estimator_class, source, source_weights=path)
    X, y = data(estimator)
    with (
        matrix.case("set-up", X=X, y=y, source=source, weights_file=tmp_path),
        pytest.raises(error, match=message),
    ):
        fit(estimator, X, y)


# --- named sources, offline -----------------------------------------------------------


def test_an_uncached_hugging_face_model_fails_at_once_offline(matrix, monkeypatch):
    pytest.importorskip("transformers")
    from huggingface_hub import constants

    from sktransfer import PretrainedFeatureTransformer
    from sktransfer.sources import huggingface_model

    # Nothing listens on port 9 of this machine: the Hub is unreachable.
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    spec = huggingface_model("sktransfer-tests/never-cached-model")
    texts = ["a text", "another"]
    started = time.perf_counter()
    with (
        matrix.case("named sources", texts=texts),
        pytest.raises(
            ConnectionError,
            match=r"Cannot download 'sktransfer-tests/never-cached-model': the "
            r"Hugging Face Hub \(http://127\.0\.0\.1:9\) cannot be reached "
            r"\(offline\?\), and the model is not in the local cache",
        ),
    ):
        PretrainedFeatureTransformer(spec).fit(texts)
    assert time.perf_counter() - started < 15  # no minute of retries


def test_torchvision_weights_that_cannot_be_downloaded_are_reported(
    matrix, monkeypatch
):
    # torchvision's own download, offline, as a stand-in package: what is
    # tested is sktransfer's reading of its failure.
    import types
    import urllib.error

    from sktransfer import PretrainedFeatureTransformer
    from sktransfer.sources import torchvision_model

    class _Weights:
        url = "https://download.pytorch.org/models/net-1234.pth"

        def get_state_dict(self, **kwargs):
            raise urllib.error.URLError("[Errno -2] Name or service not known")

        def __repr__(self):
            return "Net_Weights.IMAGENET1K_V1"

    class _WeightsEnum:
        __members__ = {"IMAGENET1K_V1": _Weights()}

        @staticmethod
        def verify(weights):
            return _Weights()

    models = types.ModuleType("torchvision.models")
    models.get_model_builder = lambda name: lambda weights=None: mlp_source()
    models.get_model_weights = lambda name: _WeightsEnum
    torchvision = types.ModuleType("torchvision")
    torchvision.models = models
    monkeypatch.setitem(sys.modules, "torchvision", torchvision)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    X = np.zeros((3, N_FEATURES), dtype=np.float32)
    with (
        matrix.case("named sources", X=X),
        pytest.raises(
            ConnectionError,
            match=r"Cannot download the Net_Weights\.IMAGENET1K_V1 weights of 'net' "
            r"from https://download\.pytorch\.org/models/net-1234\.pth \(\[Errno -2\] "
            r"Name or service not known; offline\?\)\. Put the file into torch\.hub's "
            r"cache",
        ),
    ):
        PretrainedFeatureTransformer(torchvision_model("net")).fit(X)


# --- before fit ---------------------------------------------------------------------


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_methods_before_fit_raise_not_fitted(matrix, estimator_class):
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
        with (
            matrix.case("before fit", X=X),
            pytest.raises(NotFittedError, match=r"not fitted yet.*Call 'fit'"),
        ):
            getattr(estimator, name)(*args)

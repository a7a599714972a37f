"""FineTunedClassifier / FineTunedRegressor: parameter and structure transfer.

Training starts from the source network's weights (or, with
``reinitialize=True``, from fresh weights of the same architecture); the head
is kept or replaced, parts can be frozen or learn more slowly, and the user's
network is never touched. Fits are tiny (iris, digits subsets) so that every
claim is checked exactly, most of them with ``torch.equal``.
"""

import pickle
import re

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from torch import nn

from sktransfer import FineTunedClassifier, FineTunedRegressor

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_REG, Y_REG = make_regression(
    n_samples=120, n_features=4, n_informative=4, noise=1.0, random_state=0
)
Y_REG = Y_REG / Y_REG.std()

_DIGITS = load_digits()
X_IMAGES = (_DIGITS.images / 16.0)[:, None, :, :]  # (n, 1, 8, 8)
Y_DIGITS = _DIGITS.target

# Few epochs with a rate that learns iris in them.
FAST = {"max_epochs": 20, "lr": 0.02, "batch_size": 16}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # The nets here are tiny: a second intra-op thread only spins, and on a
    # loaded 2-core machine it makes each step ~10x slower.
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


# --- sources -------------------------------------------------------------------


def _mlp(n_outputs=3, seed=0, n_hidden=8):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(4, n_hidden), nn.ReLU(), nn.Linear(n_hidden, n_outputs)
    )


def _deep_mlp(n_outputs=3):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, n_outputs)
    )


def _train_mode_source(n_outputs=3):
    """A source whose state would show any eval() / requires_grad_ / training leak."""
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Linear(4, 8),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(8, n_outputs),
    )
    return module.train().requires_grad_(True)


def _dropout_source(n_outputs=3):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, n_outputs)
    )


def _conv_source_with_linear_head(n_outputs=10):
    """Conv body ending in Flatten, so the body already gives 2-D features."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, kernel_size=3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, n_outputs),
    )


def _conv_source_with_conv_head(n_outputs=10):
    """Fully convolutional: the head is a conv, so the body gives (n, 4, 6, 6)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, kernel_size=3),
        nn.ReLU(),
        nn.Conv2d(4, n_outputs, kernel_size=6),
        nn.Flatten(),
    )


class ScalesInputInPlace(nn.Module):
    """A source that normalizes its input in place, as some forwards do."""

    def __init__(self, n_outputs=3):
        super().__init__()
        torch.manual_seed(0)
        self.hidden = nn.Linear(4, 8)
        self.head = nn.Linear(8, n_outputs)

    def forward(self, x):
        x /= 10.0
        return self.head(torch.relu(self.hidden(x)))


# --- helpers -------------------------------------------------------------------


def _snapshot(module):
    return {
        "state": {key: value.clone() for key, value in module.state_dict().items()},
        "training": [submodule.training for submodule in module.modules()],
        "requires_grad": [param.requires_grad for param in module.parameters()],
    }


def _assert_unchanged(module, snapshot):
    state = module.state_dict()
    assert state.keys() == snapshot["state"].keys()
    for key, before in snapshot["state"].items():
        assert state[key].dtype == before.dtype, key
        assert torch.equal(state[key], before), key
    assert [submodule.training for submodule in module.modules()] == snapshot[
        "training"
    ]
    assert [param.requires_grad for param in module.parameters()] == snapshot[
        "requires_grad"
    ]


def _parameters(module):
    return {name: param.detach().clone() for name, param in module.named_parameters()}


def _source_body_parameters(source, head_name):
    """The source's parameters as named in ``module_.body`` (head excluded)."""
    return {
        name: param
        for name, param in _parameters(source).items()
        if not name.startswith(head_name + ".")
    }


def _equal_names(fitted, reference):
    return sorted(
        name for name in reference if torch.equal(fitted[name], reference[name])
    )


def _source_outputs(source, X):
    source = source.eval()
    with torch.no_grad():
        return source(torch.as_tensor(X, dtype=torch.float32)).double()


def _predictions(estimator, X):
    if hasattr(estimator, "predict_proba"):
        return estimator.predict_proba(X)
    return estimator.predict(X)


def _source_predictions(source, X, estimator):
    """What ``_predictions`` gives for an estimator that is exactly ``source``."""
    outputs = _source_outputs(source, X)
    if hasattr(estimator, "predict_proba"):
        return torch.softmax(outputs, dim=1).numpy()
    return outputs.numpy().ravel()


def _iris_split():
    return train_test_split(
        X_IRIS, Y_IRIS, test_size=0.5, stratify=Y_IRIS, random_state=0
    )


# --- sklearn meta-estimators ---------------------------------------------------


def test_pipeline_passes_the_transformed_inputs_to_the_classifier():
    pipeline = make_pipeline(
        FunctionTransformer(np.log1p),
        FineTunedClassifier(_mlp(), random_state=0, **FAST),
    )

    pipeline.fit(X_IRIS, Y_IRIS)
    direct = FineTunedClassifier(_mlp(), random_state=0, **FAST)
    direct.fit(np.log1p(X_IRIS), Y_IRIS)

    np.testing.assert_array_equal(
        pipeline.predict_proba(X_IRIS), direct.predict_proba(np.log1p(X_IRIS))
    )
    assert pipeline.score(X_IRIS, Y_IRIS) > 0.8


@pytest.mark.parametrize(
    ("estimator", "X", "y", "better_than"),
    [
        (FineTunedClassifier(_mlp(), random_state=0, **FAST), X_IRIS, Y_IRIS, 0.6),
        (FineTunedRegressor(_mlp(1), random_state=0, **FAST), X_REG, Y_REG, 0.5),
    ],
    ids=["classifier-accuracy", "regressor-r2"],
)
def test_cross_val_score_gives_a_better_than_chance_score_per_fold(
    estimator, X, y, better_than
):
    scores = cross_val_score(estimator, X, y, cv=3)

    assert scores.shape == (3,)
    assert (scores > better_than).all(), scores


def test_grid_search_over_lr_picks_the_rate_that_learns():
    # A random new head: at lr=1e-6 it stays random (a linear probe would
    # score well before any step).
    search = GridSearchCV(
        FineTunedClassifier(_mlp(5), head_init="random", random_state=0, **FAST),
        {"lr": [1e-6, 0.02]},
        cv=3,
        scoring="accuracy",
    ).fit(X_IRIS, Y_IRIS)

    assert search.best_params_ == {"lr": 0.02}
    assert search.best_estimator_.lr == 0.02
    assert search.best_score_ > 0.8
    assert search.cv_results_["mean_test_score"][0] < 0.6


def test_grid_search_over_freeze_trains_a_different_model_per_candidate():
    search = GridSearchCV(
        FineTunedClassifier(_mlp(), random_state=0, **FAST),
        {"freeze": [None, "body"]},
        cv=3,
        scoring="neg_log_loss",
    ).fit(X_IRIS, Y_IRIS)

    scores = [search.cv_results_[f"split{i}_test_score"] for i in range(3)]
    # Same random_state: if freeze were ignored both candidates would be the
    # same model, fold by fold, to the last bit.
    assert all(split[0] != split[1] for split in scores)
    best = search.best_estimator_
    assert best.freeze == search.best_params_["freeze"]
    reference = clone(search.estimator).set_params(**search.best_params_)
    np.testing.assert_array_equal(
        best.predict_proba(X_IRIS), reference.fit(X_IRIS, Y_IRIS).predict_proba(X_IRIS)
    )


def test_parallel_grid_search_gives_the_same_results_as_a_sequential_one():
    estimator = FineTunedClassifier(
        _dropout_source(), random_state=0, max_epochs=5, lr=0.02, batch_size=16
    )
    grid = {"lr": [0.005, 0.02], "head": ["reuse", "new"]}

    sequential = GridSearchCV(estimator, grid, cv=2, scoring="neg_log_loss")
    parallel = GridSearchCV(estimator, grid, cv=2, scoring="neg_log_loss", n_jobs=2)
    sequential.fit(X_IRIS, Y_IRIS)
    parallel.fit(X_IRIS, Y_IRIS)

    np.testing.assert_allclose(
        parallel.cv_results_["mean_test_score"],
        sequential.cv_results_["mean_test_score"],
        rtol=1e-6,
    )
    assert parallel.best_params_ == sequential.best_params_


# --- the user's source module is never modified ----------------------------------


@pytest.mark.parametrize(
    ("estimator_class", "X", "y"),
    [(FineTunedClassifier, X_IRIS, Y_IRIS), (FineTunedRegressor, X_REG, Y_REG)],
    ids=["classifier", "regressor"],
)
def test_users_source_is_bit_identical_after_fit_cv_and_parallel_grid_search(
    estimator_class, X, y
):
    n_outputs = 3 if estimator_class is FineTunedClassifier else 1
    source = _train_mode_source(n_outputs)
    before = _snapshot(source)
    settings = {"random_state": 0, "max_epochs": 3, "lr": 0.05, "batch_size": 16}
    estimator = estimator_class(source, head="reuse", **settings)

    estimator.fit(X, y)
    assert estimator.head_choice_ == "reuse"
    assert estimator.module_.head is not source[4]
    _assert_unchanged(source, before)

    estimator.set_params(head="new", freeze="body", unfreeze_at=2).fit(X, y)
    estimator.predict(X)
    _assert_unchanged(source, before)

    estimator.set_params(head="auto", freeze=None, unfreeze_at=None)
    estimator.set_params(reinitialize=True).fit(X, y)
    _assert_unchanged(source, before)

    estimator.set_params(reinitialize=False, body_lr_ratio=0.1)
    cross_val_score(estimator, X, y, cv=2)
    _assert_unchanged(source, before)

    search = GridSearchCV(
        estimator, {"head": ["reuse", "new"], "freeze": [None, "body"]}, cv=2, n_jobs=2
    ).fit(X, y)
    _assert_unchanged(source, before)
    assert estimator.source_module is source
    assert search.best_estimator_.module_ is not source


# --- head policies ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("estimator_class", "source", "X", "y"),
    [
        (FineTunedClassifier, _mlp(3), X_IRIS, Y_IRIS),
        (FineTunedRegressor, _mlp(1), X_REG, Y_REG),
    ],
    ids=["classifier", "regressor"],
)
def test_reused_head_starts_from_the_source_network(estimator_class, source, X, y):
    # One SGD step at a negligible rate: the fitted network is its start.
    estimator = estimator_class(
        source,
        head="reuse",
        max_epochs=1,
        lr=1e-12,
        optimizer=torch.optim.SGD,
        random_state=0,
    ).fit(X, y)

    assert estimator.head_choice_ == "reuse"
    np.testing.assert_allclose(
        _predictions(estimator, X), _source_predictions(source, X, estimator), atol=1e-6
    )


def test_reused_head_keeps_the_source_head_weights():
    source = _mlp(3)

    estimator = FineTunedClassifier(
        source, head="reuse", freeze="head", random_state=0, **FAST
    ).fit(X_IRIS, Y_IRIS)

    head = estimator.module_.head
    assert isinstance(head, nn.Linear)
    assert head is not source[2]
    assert torch.equal(head.weight, source[2].weight)
    assert torch.equal(head.bias, source[2].bias)
    # ... while the body did train, so the fit was not a no-op.
    assert not torch.equal(estimator.module_.body[0].weight, source[0].weight)


def test_reuse_of_a_head_of_another_width_names_both_widths():
    with pytest.raises(ValueError, match=r"5 outputs, but the target needs 3"):
        FineTunedClassifier(_mlp(5), head="reuse", **FAST).fit(X_IRIS, Y_IRIS)

    with pytest.raises(ValueError, match=r"1 outputs, but the target needs 2"):
        FineTunedRegressor(_mlp(1), head="reuse", **FAST).fit(
            X_REG, np.c_[Y_REG, -Y_REG]
        )


@pytest.mark.parametrize("source_width", [3, 5])
def test_new_head_is_a_fresh_linear_layer_sized_from_the_classes(source_width):
    source = _mlp(source_width, n_hidden=8)

    estimator = FineTunedClassifier(
        source,
        head="new",
        max_epochs=1,
        lr=1e-12,
        optimizer=torch.optim.SGD,
        random_state=0,
    ).fit(X_IRIS, Y_IRIS)

    head = estimator.module_.head
    assert estimator.head_choice_ == "new"
    assert type(head) is nn.Linear
    assert (head.in_features, head.out_features) == (8, 3)
    assert not torch.allclose(head.weight, source[2].weight[:3], atol=1e-3)
    # The body is still the source's.
    torch.testing.assert_close(estimator.module_.body[0].weight, source[0].weight)


# head="auto" decides from evidence: see test_head_choice.py.


@pytest.mark.parametrize(
    ("y", "expected_choice", "n_outputs", "prediction_shape"),
    [
        (Y_REG, "reuse", 1, (120,)),
        (Y_REG[:, None], "reuse", 1, (120, 1)),
        (np.c_[Y_REG, -Y_REG], "new", 2, (120, 2)),
    ],
    ids=["1-D", "one-column", "two-columns"],
)
def test_regressor_outputs_follow_the_shape_of_y(
    y, expected_choice, n_outputs, prediction_shape
):
    regressor = FineTunedRegressor(
        _mlp(1), head=expected_choice, random_state=0, **FAST
    ).fit(X_REG, y)

    assert regressor.head_choice_ == expected_choice
    assert regressor.n_outputs_ == n_outputs
    assert regressor.module_.head.out_features == n_outputs
    assert regressor.predict(X_REG).shape == prediction_shape
    assert regressor.score(X_REG, y) > 0.5


def test_conv_body_ending_in_flatten_reuses_or_replaces_the_linear_head():
    X_train, X_test, y_train, y_test = train_test_split(
        X_IMAGES[:600], Y_DIGITS[:600], test_size=0.5, random_state=0
    )
    settings = {"max_epochs": 10, "lr": 0.01, "batch_size": 32, "random_state": 0}

    ten_classes = FineTunedClassifier(
        _conv_source_with_linear_head(10), head="reuse", **settings
    )
    ten_classes.fit(X_train, y_train)
    three = y_train < 3
    three_classes = FineTunedClassifier(_conv_source_with_linear_head(10), **settings)
    three_classes.fit(X_train[three], y_train[three])

    assert ten_classes.head_choice_ == "reuse"
    assert ten_classes.n_features_in_ == 1
    assert ten_classes.score(X_test, y_test) > 0.7
    assert three_classes.head_choice_ == "new"
    head = three_classes.module_.head
    assert (head.in_features, head.out_features) == (144, 3)
    assert three_classes.predict_proba(X_test[:5]).shape == (5, 3)


def test_new_head_flattens_n_d_features_of_the_body():
    three = Y_DIGITS < 3
    X_train, X_test, y_train, y_test = train_test_split(
        X_IMAGES[three], Y_DIGITS[three], test_size=0.5, random_state=0
    )

    classifier = FineTunedClassifier(
        _conv_source_with_conv_head(10),
        max_epochs=10,
        lr=0.01,
        batch_size=32,
        random_state=0,
    ).fit(X_train, y_train)

    assert classifier.head_choice_ == "new"
    head = classifier.module_.head
    assert [type(layer) for layer in head] == [nn.Flatten, nn.Linear]
    assert (head[1].in_features, head[1].out_features) == (144, 3)
    assert classifier.score(X_test, y_test) > 0.8


def test_convolutional_head_of_matching_width_is_reused():
    # A final 1x1 / full-size conv is a classifier head too (SqueezeNet-style):
    # its width is what it outputs, 10 here, as many as the digits' classes.
    source = _conv_source_with_conv_head(10)

    classifier = FineTunedClassifier(
        source,
        head="reuse",
        max_epochs=1,
        lr=1e-12,
        optimizer=torch.optim.SGD,
        random_state=0,
    ).fit(X_IMAGES[:200], Y_DIGITS[:200])

    assert classifier.head_choice_ == "reuse"
    np.testing.assert_allclose(
        classifier.predict_proba(X_IMAGES[:20]),
        _source_predictions(source, X_IMAGES[:20], classifier),
        atol=1e-6,
    )


def test_reused_head_ending_in_softmax_predicts_the_source_probabilities():
    torch.manual_seed(0)
    source = nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), nn.Softmax(dim=1)
    )

    classifier = FineTunedClassifier(
        source,
        head="reuse",
        max_epochs=1,
        lr=1e-12,
        optimizer=torch.optim.SGD,
        random_state=0,
    ).fit(X_IRIS, Y_IRIS)

    # Not the softmax of the source's probabilities.
    np.testing.assert_allclose(
        classifier.predict_proba(X_IRIS),
        _source_outputs(source, X_IRIS).numpy(),
        atol=1e-5,
    )


# --- freezing ----------------------------------------------------------------------


def test_frozen_body_is_unchanged_after_fit_while_the_head_trains():
    source = _train_mode_source()
    body_before = _source_body_parameters(source, "4")

    estimator = FineTunedClassifier(source, freeze="body", random_state=0, **FAST).fit(
        X_IRIS, Y_IRIS
    )

    body_after = _parameters(estimator.module_.body)
    assert body_after.keys() == body_before.keys()
    assert _equal_names(body_after, body_before) == sorted(body_before)
    assert not torch.equal(estimator.module_.head.weight, source[4].weight)


def test_unfreeze_at_keeps_the_body_frozen_until_that_epoch():
    source = _mlp()
    body_before = _source_body_parameters(source, "2")
    settings = {"freeze": "body", "unfreeze_at": 3, "lr": 0.02, "random_state": 0}

    two_epochs = FineTunedClassifier(source, max_epochs=2, **settings)
    two_epochs.fit(X_IRIS, Y_IRIS)
    three_epochs = FineTunedClassifier(source, max_epochs=3, **settings)
    three_epochs.fit(X_IRIS, Y_IRIS)

    # Epochs 1 and 2: only the head trains.
    after_two = _parameters(two_epochs.module_.body)
    assert _equal_names(after_two, body_before) == sorted(body_before)
    assert not torch.equal(two_epochs.module_.head.weight, source[2].weight)
    # Epoch 3: the body trains as well.
    after_three = _parameters(three_epochs.module_.body)
    assert _equal_names(after_three, body_before) == []
    assert all(p.requires_grad for p in three_epochs.module_.parameters())


def test_freeze_accepts_a_list_of_module_name_prefixes():
    source = _deep_mlp()
    before = _parameters(source)

    estimator = FineTunedClassifier(
        source, head="reuse", freeze=["body.0", "head"], random_state=0, **FAST
    ).fit(X_IRIS, Y_IRIS)

    after = _parameters(estimator.module_)
    for name in ("0.weight", "0.bias"):
        assert torch.equal(after[f"body.{name}"], before[name]), name
    for name in ("weight", "bias"):
        assert torch.equal(after[f"head.{name}"], before[f"4.{name}"]), name
    for name in ("2.weight", "2.bias"):
        assert not torch.equal(after[f"body.{name}"], before[name]), name


def test_freeze_name_that_matches_nothing_is_refused_listing_the_names():
    with pytest.raises(
        ValueError, match="freeze='encoder' matches no parameter"
    ) as exc_info:
        FineTunedClassifier(_deep_mlp(), freeze=["body.0", "encoder"], **FAST).fit(
            X_IRIS, Y_IRIS
        )

    for name in ("body.0", "body.2", "head"):
        assert repr(name) in str(exc_info.value)


def test_unfreeze_at_without_freeze_is_refused():
    with pytest.raises(ValueError, match=r"unfreeze_at=3 needs something to unfreeze"):
        FineTunedClassifier(_mlp(), unfreeze_at=3, **FAST).fit(X_IRIS, Y_IRIS)


# --- discriminative learning rates -------------------------------------------------


def test_body_lr_ratio_sets_the_learning_rate_of_the_body_parameters():
    estimator = FineTunedClassifier(
        _deep_mlp(), lr=0.02, body_lr_ratio=0.1, max_epochs=1, random_state=0
    ).fit(X_IRIS, Y_IRIS)

    lr_of = {
        id(param): group["lr"]
        for group in estimator.net_.optimizer_.param_groups
        for param in group["params"]
    }
    n_grouped = sum(
        len(group["params"]) for group in estimator.net_.optimizer_.param_groups
    )
    named = dict(estimator.module_.named_parameters())
    assert n_grouped == len(lr_of) == len(named)  # each parameter exactly once
    for name, param in named.items():
        expected = 0.002 if name.startswith("body.") else 0.02
        assert lr_of[id(param)] == pytest.approx(expected), name


def test_body_lr_ratio_zero_leaves_the_body_weights_unchanged():
    source = _deep_mlp()
    body_before = _source_body_parameters(source, "4")

    estimator = FineTunedClassifier(
        source,
        body_lr_ratio=0.0,
        optimizer=torch.optim.SGD,
        random_state=0,
        **FAST,
    ).fit(X_IRIS, Y_IRIS)

    body_after = _parameters(estimator.module_.body)
    assert _equal_names(body_after, body_before) == sorted(body_before)
    assert not torch.equal(estimator.module_.head.weight, source[4].weight)


# --- structure transfer -----------------------------------------------------------


def test_reinitialize_starts_from_fresh_weights_of_the_same_architecture():
    source = _deep_mlp()
    before = _parameters(source)

    estimator = FineTunedClassifier(
        source,
        reinitialize=True,
        max_epochs=1,
        lr=1e-12,
        optimizer=torch.optim.SGD,
        random_state=0,
    ).fit(X_IRIS, Y_IRIS)

    module = estimator.module_
    assert [type(layer) for layer in module.body] == [
        nn.Linear,
        nn.ReLU,
        nn.Linear,
        nn.ReLU,
        nn.Identity,
    ]
    after = {
        name.replace("body.", "").replace("head.", "4."): param
        for name, param in _parameters(module).items()
    }
    assert {name: p.shape for name, p in after.items()} == {
        name: p.shape for name, p in before.items()
    }
    for name, param in after.items():
        assert not torch.allclose(param, before[name], atol=1e-3), name


def test_reinitialized_baseline_learns_from_scratch():
    X_train, X_test, y_train, y_test = _iris_split()

    baseline = FineTunedClassifier(
        _mlp(n_hidden=16),
        reinitialize=True,
        max_epochs=40,
        lr=0.02,
        batch_size=16,
        random_state=0,
    ).fit(X_train, y_train)

    assert baseline.score(X_test, y_test) > 0.85  # chance is 1/3


# --- labels and probabilities -------------------------------------------------------


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["setosa", "versicolor", "virginica"]),
        np.array([2, 5, 9]),
    ],
    ids=["strings", "non-contiguous-ints"],
)
def test_classes_come_from_the_labels_and_predictions_use_them(labels):
    y = labels[Y_IRIS]

    classifier = FineTunedClassifier(_mlp(), random_state=0, **FAST).fit(X_IRIS, y)
    y_pred = classifier.predict(X_IRIS)

    np.testing.assert_array_equal(classifier.classes_, labels)
    assert y_pred.dtype == labels.dtype
    assert set(y_pred) <= set(labels)
    np.testing.assert_array_equal(
        y_pred, labels[classifier.predict_proba(X_IRIS).argmax(axis=1)]
    )
    assert accuracy_score(y, y_pred) > 0.8


def test_predict_proba_rows_are_distributions_over_the_classes():
    classifier = FineTunedClassifier(_mlp(5), random_state=0, **FAST)

    proba = classifier.fit(X_IRIS, Y_IRIS).predict_proba(X_IRIS)

    assert proba.shape == (150, 3)
    assert (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)


def test_score_is_the_accuracy_of_predict():
    X_train, X_test, y_train, y_test = _iris_split()
    classifier = FineTunedClassifier(_mlp(), random_state=0, max_epochs=3, lr=0.01)

    classifier.fit(X_train, y_train)

    assert classifier.score(X_test, y_test) == accuracy_score(
        y_test, classifier.predict(X_test)
    )


def test_a_single_class_is_refused():
    with pytest.raises(ValueError, match=r"at least 2 classes.*only one class"):
        FineTunedClassifier(_mlp(), **FAST).fit(X_IRIS[:50], Y_IRIS[:50])


def test_continuous_targets_are_refused_by_the_classifier():
    with pytest.raises(ValueError, match="continuous"):
        FineTunedClassifier(_mlp(), **FAST).fit(X_REG, Y_REG)


# --- sample weights ---------------------------------------------------------------


def _weighted_and_equivalent_data(X, y, kind):
    order = np.random.RandomState(0).permutation(X.shape[0])
    X, y = X[order], y[order]
    n_kept = 2 * X.shape[0] // 3
    if kind == "zero-weight-drops-rows":
        weight = np.r_[np.ones(n_kept), np.zeros(X.shape[0] - n_kept)]
        return (X, y, weight), (X[:n_kept], y[:n_kept])
    weight = np.r_[np.full(n_kept, 2.0), np.ones(X.shape[0] - n_kept)]
    repeats = weight.astype(int)
    return (X, y, weight), (np.repeat(X, repeats, axis=0), np.repeat(y, repeats))


@pytest.mark.parametrize("kind", ["zero-weight-drops-rows", "integer-weight-repeats"])
@pytest.mark.parametrize(
    ("estimator_class", "source", "X", "y"),
    [
        (FineTunedClassifier, _mlp(3), X_IRIS, Y_IRIS),
        (FineTunedRegressor, _mlp(1), X_REG, Y_REG),
    ],
    ids=["classifier", "regressor"],
)
def test_sample_weight_weighs_each_rows_loss(estimator_class, source, X, y, kind):
    # One full batch per epoch and plain SGD: each step follows the gradient of
    # the weighted mean loss, whatever the order of the rows in the batch.
    (X_w, y_w, weight), (X_eq, y_eq) = _weighted_and_equivalent_data(X, y, kind)
    # The linear probe solves to a tolerance, not to the bit: a random new
    # head keeps this test exact (test_linear_probe.py weighs the probe).
    settings = {
        "max_epochs": 5,
        "lr": 0.1,
        "batch_size": 1000,
        "optimizer": torch.optim.SGD,
        "random_state": 0,
        "head_init": "random",
    }

    weighted = estimator_class(source, **settings).fit(X_w, y_w, sample_weight=weight)
    equivalent = estimator_class(source, **settings).fit(X_eq, y_eq)

    weighted_params = _parameters(weighted.module_)
    for name, param in _parameters(equivalent.module_).items():
        torch.testing.assert_close(weighted_params[name], param, rtol=1e-5, atol=1e-6)
    # ... and the weights did make a difference.
    unweighted = estimator_class(source, **settings).fit(X_w, y_w)
    assert not torch.allclose(
        _parameters(unweighted.module_)["body.0.weight"],
        weighted_params["body.0.weight"],
        rtol=1e-5,
        atol=1e-6,
    )


def test_sample_weight_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="sample_weight"):
        FineTunedClassifier(_mlp(), **FAST).fit(
            X_IRIS, Y_IRIS, sample_weight=np.ones(100)
        )


# --- determinism ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("estimator_class", "X", "y"),
    [(FineTunedClassifier, X_IRIS, Y_IRIS), (FineTunedRegressor, X_REG, Y_REG)],
    ids=["classifier", "regressor"],
)
def test_same_random_state_gives_bit_identical_predictions(estimator_class, X, y):
    # Dropout, a new head and shuffled batches all draw random numbers.
    def fit_and_predict(random_state):
        estimator = estimator_class(
            _dropout_source(5), head="new", random_state=random_state, **FAST
        )
        return _predictions(estimator.fit(X, y), X)

    first, second, other = fit_and_predict(0), fit_and_predict(0), fit_and_predict(1)

    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other)


@pytest.mark.parametrize("random_state", [None, 0])
def test_fit_leaves_torchs_global_random_state_as_it_was(random_state):
    classifier = FineTunedClassifier(
        _dropout_source(5), head="new", random_state=random_state, max_epochs=2
    )
    torch.manual_seed(123)
    before = torch.get_rng_state()

    classifier.fit(X_IRIS, Y_IRIS)

    assert torch.equal(torch.get_rng_state(), before)


# --- early stopping ---------------------------------------------------------------


def test_early_stopping_stops_when_the_validation_loss_stops_improving():
    # At a negligible rate the validation loss is flat from the first epoch:
    # n_iter_no_change epochs later, training stops.
    classifier = FineTunedClassifier(
        _mlp(),
        early_stopping=True,
        n_iter_no_change=3,
        validation_fraction=0.1,
        max_epochs=50,
        lr=1e-9,
        random_state=0,
    ).fit(X_IRIS, Y_IRIS)

    assert classifier.n_iter_ == 4
    assert classifier.n_iter_ == len(classifier.history_)
    assert "valid_loss" in classifier.history_[-1]
    first_epoch = classifier.history_[0]["batches"]
    assert sum(b["train_batch_size"] for b in first_epoch if "train_loss" in b) == 135
    assert sum(b["valid_batch_size"] for b in first_epoch if "valid_loss" in b) == 15


def test_early_stopping_ends_a_real_training_before_max_epochs():
    classifier = FineTunedClassifier(
        _mlp(),
        early_stopping=True,
        n_iter_no_change=5,
        max_epochs=300,
        lr=0.05,
        batch_size=16,
        random_state=0,
    ).fit(X_IRIS, Y_IRIS)

    assert classifier.n_iter_ < 300
    assert len(classifier.history_[:, "valid_loss"]) == classifier.n_iter_


def test_without_early_stopping_every_epoch_trains_on_every_sample():
    classifier = FineTunedClassifier(_mlp(), random_state=0, **FAST)

    classifier.fit(X_IRIS, Y_IRIS)

    assert classifier.n_iter_ == FAST["max_epochs"]
    assert "valid_loss" not in classifier.history_[-1]
    for epoch in classifier.history_:
        assert sum(b["train_batch_size"] for b in epoch["batches"]) == 150


# --- progress output --------------------------------------------------------------


@pytest.mark.parametrize("early_stopping", [False, True])
def test_verbose_zero_prints_nothing(capsys, early_stopping):
    FineTunedClassifier(
        _mlp(), early_stopping=early_stopping, n_iter_no_change=1, max_epochs=5
    ).fit(X_IRIS, Y_IRIS)

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_verbose_one_prints_a_table_of_losses(capsys):
    FineTunedClassifier(_mlp(), early_stopping=True, max_epochs=3, verbose=1).fit(
        X_IRIS, Y_IRIS
    )

    out = capsys.readouterr().out
    assert "train_loss" in out
    assert "valid_loss" in out
    epoch_rows = [line for line in out.splitlines() if re.match(r"\s*[1-3]\s", line)]
    assert len(epoch_rows) == 3


# --- inputs ---------------------------------------------------------------------


def test_image_input_trains_a_conv_net():
    classifier = FineTunedClassifier(
        _conv_source_with_linear_head(10),
        max_epochs=5,
        lr=0.01,
        batch_size=32,
        random_state=0,
    ).fit(X_IMAGES[:400], Y_DIGITS[:400])

    assert classifier.predict_proba(X_IMAGES[400:410]).shape == (10, 10)
    assert classifier.score(X_IMAGES[400:700], Y_DIGITS[400:700]) > 0.5


def test_input_of_the_wrong_width_is_refused_naming_both_widths():
    with pytest.raises(ValueError, match=r"X has 5 features.*expects 4 input features"):
        FineTunedClassifier(_mlp(), **FAST).fit(np.zeros((10, 5)), Y_IRIS[::15])


def test_conv_net_given_flat_input_is_refused():
    with pytest.raises(ValueError, match=r"X has 2 dimensions.*expects 4-D input"):
        FineTunedClassifier(_conv_source_with_linear_head(), **FAST).fit(
            X_IMAGES[:50].reshape(50, -1), Y_DIGITS[:50]
        )


def test_predict_on_another_width_than_fit_is_refused():
    classifier = FineTunedClassifier(_mlp(), max_epochs=1).fit(X_IRIS, Y_IRIS)

    with pytest.raises(ValueError, match=r"X has 3 features.*expecting 4 features"):
        classifier.predict(X_IRIS[:, :3])


def test_dataframe_input_records_feature_names_and_trains_as_an_array():
    frame = pd.DataFrame(X_IRIS, columns=load_iris().feature_names)

    from_frame = FineTunedClassifier(_mlp(), random_state=0, **FAST)
    from_frame.fit(frame, Y_IRIS)
    from_array = FineTunedClassifier(_mlp(), random_state=0, **FAST)
    from_array.fit(X_IRIS, Y_IRIS)

    np.testing.assert_array_equal(
        from_frame.feature_names_in_, np.array(load_iris().feature_names, dtype=object)
    )
    assert from_frame.n_features_in_ == 4
    assert not hasattr(from_array, "feature_names_in_")
    frame_params = _parameters(from_frame.module_)
    for name, param in _parameters(from_array.module_).items():
        assert torch.equal(frame_params[name], param), name
    assert from_frame.predict_proba(frame).shape == (150, 3)


def test_predictions_do_not_depend_on_the_memory_layout_of_X():
    # A DataFrame's values are column-major: the same numbers in either
    # layout must give the same predictions.
    classifier = FineTunedClassifier(_mlp(), random_state=0, **FAST)
    classifier.fit(X_IRIS, Y_IRIS)

    np.testing.assert_array_equal(
        classifier.predict_proba(np.asfortranarray(X_IRIS)),
        classifier.predict_proba(np.ascontiguousarray(X_IRIS)),
    )


@pytest.mark.parametrize(
    ("estimator_class", "source", "X", "y"),
    [
        (FineTunedClassifier, ScalesInputInPlace(3), X_IRIS, Y_IRIS),
        (FineTunedRegressor, ScalesInputInPlace(1), X_REG, Y_REG),
    ],
    ids=["classifier", "regressor"],
)
def test_inputs_are_not_modified_even_by_a_network_that_changes_its_input(
    estimator_class, source, X, y
):
    # float32 and C-contiguous: no conversion would hide a shared buffer.
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = y.astype(np.float32) if estimator_class is FineTunedRegressor else y.copy()
    weight = np.linspace(0.5, 1.5, X.shape[0], dtype=np.float32)
    X_before, y_before, weight_before = X.copy(), y.copy(), weight.copy()

    estimator = estimator_class(source, max_epochs=2, batch_size=16, random_state=0)
    estimator.fit(X, y, sample_weight=weight)
    estimator.predict(X)

    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)
    np.testing.assert_array_equal(weight, weight_before)


def test_batch_norm_source_trains_when_the_last_batch_holds_one_sample():
    # 145 = 9 * 16 + 1: a batch-norm layer cannot normalise a batch of one.
    source = _train_mode_source()

    classifier = FineTunedClassifier(source, random_state=0, **FAST)
    classifier.fit(X_IRIS[:145], Y_IRIS[:145])

    assert classifier.score(X_IRIS, Y_IRIS) > 0.6


# --- persistence and cloning -----------------------------------------------------


@pytest.mark.parametrize(
    ("estimator", "X", "y"),
    [
        (
            FineTunedClassifier(_dropout_source(), random_state=0, **FAST),
            X_IRIS,
            Y_IRIS,
        ),
        (FineTunedRegressor(_dropout_source(1), random_state=0, **FAST), X_REG, Y_REG),
    ],
    ids=["classifier", "regressor"],
)
def test_pickle_round_trip_of_a_fitted_estimator_predicts_identically(estimator, X, y):
    estimator.fit(X, y)

    restored = pickle.loads(pickle.dumps(estimator))

    np.testing.assert_array_equal(restored.predict(X), estimator.predict(X))
    if hasattr(estimator, "predict_proba"):
        np.testing.assert_array_equal(
            restored.predict_proba(X), estimator.predict_proba(X)
        )
    assert restored.head_choice_ == estimator.head_choice_


def test_clone_of_a_fitted_estimator_is_unfitted_and_refits_identically():
    fitted = FineTunedClassifier(_dropout_source(), random_state=0, **FAST)
    fitted.fit(X_IRIS, Y_IRIS)

    unfitted = clone(fitted)

    assert not hasattr(unfitted, "module_")
    assert not hasattr(unfitted, "classes_")
    with pytest.raises(NotFittedError):
        unfitted.predict(X_IRIS)
    np.testing.assert_array_equal(
        unfitted.fit(X_IRIS, Y_IRIS).predict_proba(X_IRIS),
        fitted.predict_proba(X_IRIS),
    )


@pytest.mark.parametrize(
    ("n_samples", "expected_epochs"),
    [(20, 100), (100, 75), (960, 30)],
    ids=["one batch: capped at 100", "four batches: 300 steps", "many: at least 30"],
)
def test_auto_epochs_give_300_steps_within_30_to_100_epochs(n_samples, expected_epochs):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(n_samples, 4)).astype(np.float32)
    y = np.arange(n_samples) % 3

    estimator = FineTunedClassifier(
        _mlp(), max_epochs="auto", batch_size=32, lr=1e-3, random_state=0
    ).fit(X, y)

    assert estimator.n_iter_ == expected_epochs

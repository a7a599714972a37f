"""Scorers that estimate target performance without target labels.

The covariate-shift toy: source inputs N(-1, 1), target inputs N(1, 1), one
labelling y = [x > 0] for both. A threshold at 1.5 is right on most source
rows but wrong on half the target's; a threshold at -1 is the reverse. A
plain score on source rows prefers the first, the target prefers the second.
"""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer.adaptation import (
    deep_embedded_validation_scorer,
    importance_weighted_scorer,
    prediction_entropy_scorer,
)


class _Threshold(ClassifierMixin, BaseEstimator):
    """Predicts 1 above a fixed threshold of the first feature."""

    def __init__(self, threshold=0.0):
        self.threshold = threshold

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def predict(self, X):
        return (np.asarray(X)[:, 0] > self.threshold).astype(int)


def _covariate_shift(n_rows=400, seed=0, shift=1.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(-shift, 1.0, size=(n_rows, 1))
    y = (X[:, 0] > 0).astype(int)
    X_target = rng.normal(shift, 1.0, size=(n_rows, 1))
    return X, y, X_target, (X_target[:, 0] > 0).astype(int)


def _quietly(make_scorer, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return make_scorer(*args, **kwargs)


BAD, GOOD = _Threshold(1.5).fit(None, None), _Threshold(-1.0).fit(None, None)


def test_the_toy_fools_a_plain_score():
    X, y, X_target, y_target = _covariate_shift()
    assert BAD.score(X, y) > GOOD.score(X, y) + 0.1
    assert GOOD.score(X_target, y_target) > BAD.score(X_target, y_target) + 0.3


@pytest.mark.parametrize("method", ["classifier", "kmm", "kliep"])
def test_importance_weighted_scorer_ranks_the_models_as_the_target_would(method):
    X, y, X_target, _ = _covariate_shift()
    scorer = _quietly(
        importance_weighted_scorer, X_target, method=method, random_state=0
    )

    assert scorer(GOOD, X, y) > scorer(BAD, X, y)


class _ThresholdOnSignals(_Threshold):
    """_Threshold on samples of shape (1, 1): the first value of each signal."""

    def predict(self, X):
        return super().predict(np.asarray(X).reshape(len(X), -1))


def test_importance_weighted_scorer_compares_n_d_samples_as_flat_vectors():
    X, y, X_target, _ = _covariate_shift()
    signals, target_signals = X[:, None, :], X_target[:, None, :]
    scorer = _quietly(importance_weighted_scorer, target_signals, random_state=0)
    flat = _quietly(importance_weighted_scorer, X_target, random_state=0)

    good = _ThresholdOnSignals(-1.0).fit(None, None)
    bad = _ThresholdOnSignals(1.5).fit(None, None)
    assert scorer(good, signals, y) == flat(GOOD, X, y)
    assert scorer(good, signals, y) > scorer(bad, signals, y)


def test_importance_weighted_scorer_estimates_the_target_accuracy():
    # A milder shift: under a strong one, few source rows carry most of the
    # weight, and even the true ratio gives an estimate of high variance.
    X, y, X_target, y_target = _covariate_shift(n_rows=2000, shift=0.5)
    scorer = _quietly(importance_weighted_scorer, X_target, random_state=0)
    true_ratio = np.exp(X[:, 0])  # N(0.5, 1) over N(-0.5, 1)
    for model in (GOOD, BAD):
        estimate = scorer(model, X, y)
        assert estimate == pytest.approx(model.score(X_target, y_target), abs=0.05)
        with_true_ratio = np.average(model.predict(X) == y, weights=true_ratio)
        assert estimate == pytest.approx(with_true_ratio, abs=0.03)


def test_deep_embedded_validation_ranks_the_models_as_the_target_would():
    X, y, X_target, _ = _covariate_shift()
    scorer = _quietly(deep_embedded_validation_scorer, X_target, random_state=0)

    good, bad = scorer(GOOD, X, y), scorer(BAD, X, y)

    assert good > bad
    assert -1 <= bad < good <= 0  # minus an error rate


class _Scaled(TransformerMixin, _Threshold):
    """A model whose features (transform) differ from its inputs."""

    def transform(self, X):
        return 10 * np.asarray(X)


def test_deep_embedded_validation_uses_the_models_features():
    X, y, X_target, _ = _covariate_shift()
    scorer = _quietly(deep_embedded_validation_scorer, X_target, random_state=0)
    seen = []

    class _Recording(_Scaled):
        def transform(self, X):
            seen.append(len(X))
            return super().transform(X)

    scorer(_Recording(-1.0).fit(None, None), X, y)

    assert seen == [len(X), len(X_target)]


def test_deep_embedded_validation_with_log_loss_and_for_regressors():
    X, y, X_target, _ = _covariate_shift()
    log_loss = _quietly(
        deep_embedded_validation_scorer, X_target, loss="log_loss", random_state=0
    )
    model = LogisticRegression().fit(X, y)
    assert log_loss(model, X, y) < 0

    squared = _quietly(deep_embedded_validation_scorer, X_target, random_state=0)
    regressor = Ridge().fit(X, X[:, 0])
    assert squared(regressor, X, X[:, 0]) == pytest.approx(0, abs=1e-3)


def test_prediction_entropy_scorer_prefers_the_confident_model():
    X, y, X_target, _ = _covariate_shift()
    scorer = _quietly(prediction_entropy_scorer, X_target)
    unsure = LogisticRegression(C=1e-3).fit(X, y)
    confident = LogisticRegression(C=1e3).fit(X, y)

    assert scorer(confident, X, y) > scorer(unsure, X, y)
    assert -np.log(2) <= scorer(unsure, X, y) <= 0


@pytest.mark.parametrize(
    "make_scorer",
    [
        importance_weighted_scorer,
        deep_embedded_validation_scorer,
        prediction_entropy_scorer,
    ],
)
def test_each_scorer_warns_once_that_it_is_an_estimate(make_scorer):
    X, y, X_target, _ = _covariate_shift(n_rows=100)
    with pytest.warns(UserWarning, match="estimate") as record:
        scorer = make_scorer(X_target)
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scorer(LogisticRegression().fit(X, y), X, y)


@pytest.mark.parametrize(
    ("make_scorer", "params"),
    [
        (importance_weighted_scorer, {"random_state": 0}),
        (deep_embedded_validation_scorer, {"random_state": 0}),
        (prediction_entropy_scorer, {}),
    ],
)
def test_grid_search_uses_each_scorer(make_scorer, params):
    X, y, X_target, _ = _covariate_shift(n_rows=120)
    scorer = _quietly(make_scorer, X_target, **params)
    search = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression()),
        {"logisticregression__C": [0.01, 1.0]},
        scoring=scorer,
        cv=3,
    )

    search.fit(X, y)

    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    # Scorers travel to joblib workers by pickling.
    assert pickle.loads(pickle.dumps(scorer))(search, X, y) == pytest.approx(
        scorer(search, X, y)
    )


def test_importance_weighted_scorer_takes_any_metric_name():
    X, y, X_target, _ = _covariate_shift(n_rows=100)
    scorer = _quietly(
        importance_weighted_scorer, X_target, metric="neg_log_loss", random_state=0
    )
    assert scorer(LogisticRegression().fit(X, y), X, y) < 0


def test_importance_weighted_scorer_refuses_an_unknown_metric_at_once():
    with pytest.raises(ValueError, match="not a valid scoring value"):
        _quietly(importance_weighted_scorer, np.zeros((5, 1)), metric="accuracyy")


def test_importance_weighted_scorer_refuses_non_finite_target_rows():
    X_target = np.zeros((5, 1))
    X_target[2] = np.nan
    with pytest.raises(ValueError, match="X_target"):
        _quietly(importance_weighted_scorer, X_target)

"""Importance weights ``p_target(x) / p_source(x)`` of source rows.

On one-dimensional Gaussian shifts the true density ratio is known in closed
form: every method's weights must rank the source rows like it.
"""

import numpy as np
import pytest
import torch
from scipy import sparse
from scipy.stats import norm, spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from sktransfer import JointTrainingRegressor, SourceData
from sktransfer.adaptation import importance_weights

METHODS = ["classifier", "kmm", "kliep"]


def _shift(target_mean, target_std, n_rows=300, seed=0):
    """Source N(0, 1), target N(mean, std²), and the true ratio at the source."""
    rng = np.random.default_rng(seed)
    X_source = rng.normal(0.0, 1.0, size=(n_rows, 1))
    X_target = rng.normal(target_mean, target_std, size=(n_rows, 1))
    ratio = norm.pdf(X_source[:, 0], target_mean, target_std) / norm.pdf(
        X_source[:, 0], 0.0, 1.0
    )
    return X_source, X_target, ratio


@pytest.mark.parametrize("method", METHODS)
def test_weights_follow_the_true_ratio_of_a_mean_shift(method):
    X_source, X_target, ratio = _shift(1.0, 1.0)

    weights = importance_weights(X_source, X_target, method=method, random_state=0)

    assert spearmanr(weights, ratio).statistic > 0.8


@pytest.mark.parametrize("method", METHODS)
def test_weights_follow_a_ratio_that_rises_and_falls(method):
    # A narrower target: the ratio peaks inside the source's range. A linear
    # domain classifier cannot express that, a quadratic one can.
    X_source, X_target, ratio = _shift(0.5, 0.6, seed=1)
    quadratic = make_pipeline(
        PolynomialFeatures(2), StandardScaler(), LogisticRegression()
    )

    weights = importance_weights(
        X_source, X_target, method=method, estimator=quadratic, random_state=0
    )

    assert spearmanr(weights, ratio).statistic > 0.8


@pytest.mark.parametrize("method", METHODS)
def test_weights_are_finite_nonnegative_with_mean_one(method):
    X_source, X_target, _ = _shift(2.0, 0.5, n_rows=100)

    weights = importance_weights(X_source, X_target, method=method, random_state=0)

    assert weights.shape == (100,)
    assert np.isfinite(weights).all()
    assert (weights >= 0).all()
    assert weights.mean() == pytest.approx(1.0)


@pytest.mark.parametrize("method", METHODS)
def test_weights_of_the_same_distribution_are_close_to_one(method):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))

    weights = importance_weights(X[:200], X[200:], method=method, random_state=0)

    assert np.median(np.abs(weights - 1)) < 0.5


@pytest.mark.parametrize("method", METHODS)
def test_a_fixed_random_state_gives_the_same_weights(method):
    X_source, X_target, _ = _shift(1.0, 1.0, n_rows=100)
    first = importance_weights(X_source, X_target, method=method, random_state=3)
    again = importance_weights(X_source, X_target, method=method, random_state=3)
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("method", METHODS)
def test_no_weight_exceeds_max_weight(method):
    X_source, X_target, _ = _shift(1.5, 0.7, n_rows=200)
    free = importance_weights(X_source, X_target, method=method, random_state=0)

    capped = importance_weights(
        X_source, X_target, method=method, max_weight=3.0, random_state=0
    )

    assert free.max() > 3.0
    assert capped.max() == pytest.approx(3.0)
    assert capped.mean() == pytest.approx(1.0)
    if method != "kmm":  # KMM's bound B changes its optimisation problem
        # The cap changes no order below it.
        below = capped < 3.0 - 1e-9
        assert spearmanr(capped[below], free[below]).statistic > 0.99


@pytest.mark.parametrize("method", ["kmm", "kliep"])
def test_a_given_bandwidth_is_used(method):
    X_source, X_target, _ = _shift(1.0, 1.0, n_rows=100)
    narrow = importance_weights(
        X_source, X_target, method=method, bandwidth=0.1, random_state=0
    )
    wide = importance_weights(
        X_source, X_target, method=method, bandwidth=10.0, random_state=0
    )
    assert not np.allclose(narrow, wide)


def test_weights_train_joint_training_as_source_data():
    X_source, X_target, _ = _shift(1.0, 1.0, n_rows=60)
    weights = importance_weights(X_source, X_target, random_state=0)
    X_source = X_source.astype(np.float32)
    X_target = X_target.astype(np.float32)
    torch.manual_seed(0)
    source = torch.nn.Sequential(
        torch.nn.Linear(1, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)
    )
    regressor = JointTrainingRegressor(source, max_epochs=2, random_state=0)

    regressor.fit(
        X_target[:20],
        X_target[:20, 0],
        source_data=SourceData(X_source, X_source[:, 0], sample_weight=weights),
    )

    assert regressor.n_source_samples_ == 60


# --- bad input ------------------------------------------------------------------


def test_different_feature_counts_are_refused():
    with pytest.raises(ValueError, match="X_source has 2 features but X_target has 3"):
        importance_weights(np.zeros((10, 2)), np.zeros((10, 3)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_refused_naming_the_domain(bad):
    X_target = np.ones((10, 2))
    X_target[3, 1] = bad
    with pytest.raises(ValueError, match="X_target"):
        importance_weights(np.zeros((10, 2)), X_target)


def test_sparse_input_is_refused_with_how_to_convert():
    with pytest.raises(TypeError, match=r"toarray"):
        importance_weights(sparse.random(10, 2, format="csr"), np.zeros((10, 2)))


def test_n_dimensional_input_is_refused_with_what_to_do():
    with pytest.raises(ValueError, match=r"must be 2-D.*flatten"):
        importance_weights(np.zeros((10, 2, 2)), np.zeros((10, 4)))


def test_a_single_row_is_refused():
    with pytest.raises(ValueError, match="minimum of 2"):
        importance_weights(np.zeros((1, 2)), np.zeros((10, 2)))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"method": "ratio"}, "method"),
        ({"max_weight": 0.5}, "max_weight"),
        ({"bandwidth": -1.0}, "bandwidth"),
        ({"cv": 1}, "cv"),
    ],
)
def test_invalid_parameters_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        importance_weights(np.zeros((10, 2)), np.ones((10, 2)), **params)

"""A new head starts as a linear probe on the frozen source features (LP-FT)."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris, make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from torch import nn

from sktransfer import (
    FineTunedClassifier,
    FineTunedRegressor,
    KnowledgeRegularizedClassifier,
)
from sktransfer._linear_probe import PROBE_ALPHA, PROBE_C, fit_linear_probe
from sktransfer.datasets import load_digits_transfer, pretrain_source_network

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_IRIS = X_IRIS.astype(np.float32)
# One step of SGD at a vanishing rate: the fitted network is where training
# started, i.e. the source body with the probe as its head.
NO_TRAINING = {
    "max_epochs": 1,
    "lr": 1e-12,
    "optimizer": torch.optim.SGD,
    "random_state": 0,
}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


def _source(n_outputs=5):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, n_outputs))


def _scaled_features(source, X):
    with torch.no_grad():
        features = source[:-1](torch.as_tensor(X)).double().numpy()
    centred = features - features.mean(axis=0)
    return centred / np.sqrt(np.square(centred).mean())


def test_the_new_head_starts_as_a_logistic_regression_on_the_source_features():
    source = _source()
    probe = LogisticRegression(C=PROBE_C, max_iter=1000).fit(
        _scaled_features(source, X_IRIS), Y_IRIS
    )

    estimator = FineTunedClassifier(source, head="new", **NO_TRAINING)
    estimator.fit(X_IRIS, Y_IRIS)

    np.testing.assert_allclose(
        estimator.predict_proba(X_IRIS),
        probe.predict_proba(_scaled_features(source, X_IRIS)),
        atol=1e-4,
    )
    # The probe trains the head only: the body is the source's.
    torch.testing.assert_close(estimator.module_.body[0].weight, source[0].weight)


def test_a_binary_probe_scores_both_classes():
    source = _source()
    two = Y_IRIS > 0
    probe = LogisticRegression(C=PROBE_C, max_iter=1000).fit(
        _scaled_features(source, X_IRIS[two]), Y_IRIS[two]
    )

    estimator = FineTunedClassifier(source, **NO_TRAINING).fit(X_IRIS[two], Y_IRIS[two])

    np.testing.assert_allclose(
        estimator.predict_proba(X_IRIS[two]),
        probe.predict_proba(_scaled_features(source, X_IRIS[two])),
        atol=1e-4,
    )


def test_the_regressor_probe_is_a_ridge_regression():
    X, y = make_regression(n_samples=120, n_features=4, noise=1.0, random_state=0)
    X = X.astype(np.float32)
    source = _source(n_outputs=1)
    probe = Ridge(alpha=PROBE_ALPHA).fit(_scaled_features(source, X), y)

    estimator = FineTunedRegressor(source, head="new", **NO_TRAINING).fit(X, y)

    np.testing.assert_allclose(
        estimator.predict(X), probe.predict(_scaled_features(source, X)), rtol=1e-4
    )


def test_head_init_random_keeps_the_old_untrained_head():
    source = _source()
    probed = FineTunedClassifier(source, head="new", **NO_TRAINING)
    random = FineTunedClassifier(source, head="new", head_init="random", **NO_TRAINING)

    probed.fit(X_IRIS, Y_IRIS)
    random.fit(X_IRIS, Y_IRIS)

    assert probed.score(X_IRIS, Y_IRIS) > 0.8
    assert random.score(X_IRIS, Y_IRIS) < 0.5
    assert not torch.equal(probed.module_.head.weight, random.module_.head.weight)


def test_the_probe_weighs_rows_like_repeated_rows():
    source = _source()
    weight = np.r_[np.full(100, 2.0), np.ones(50)]
    repeated = np.repeat(np.arange(150), weight.astype(int))

    weighted = FineTunedClassifier(source, head="new", **NO_TRAINING).fit(
        X_IRIS, Y_IRIS, sample_weight=weight
    )
    copies = FineTunedClassifier(source, head="new", **NO_TRAINING).fit(
        X_IRIS[repeated], Y_IRIS[repeated]
    )

    np.testing.assert_allclose(
        weighted.predict_proba(X_IRIS), copies.predict_proba(X_IRIS), atol=1e-3
    )


def test_a_class_absent_from_the_probes_rows_is_never_predicted_by_it():
    head = nn.Linear(6, 3)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 6))
    y = np.r_[np.zeros(20, int), np.full(20, 2)]
    features[y == 2] += 2.0

    assert fit_linear_probe(head, features, y, np.ones(40), "classification")

    with torch.no_grad():
        scores = head(torch.as_tensor(features, dtype=torch.float32))
    assert set(scores.argmax(dim=1).tolist()) == {0, 2}


def test_a_single_class_leaves_the_head_as_it_was():
    head = nn.Linear(6, 2)
    before = head.weight.detach().clone()

    fitted = fit_linear_probe(
        head, np.ones((5, 6)), np.zeros(5, int), np.ones(5), "classification"
    )

    assert not fitted
    assert torch.equal(head.weight, before)


def test_knowledge_regularized_estimators_start_from_the_probe_too():
    source = _source()
    plain = FineTunedClassifier(source, head="new", **NO_TRAINING).fit(X_IRIS, Y_IRIS)
    regularized = KnowledgeRegularizedClassifier(
        source, head="new", lam=0.1, **NO_TRAINING
    ).fit(X_IRIS, Y_IRIS)

    np.testing.assert_allclose(
        regularized.predict_proba(X_IRIS), plain.predict_proba(X_IRIS), atol=1e-6
    )


@pytest.mark.slow
def test_a_probed_head_moves_the_pretrained_body_less_than_a_random_one():
    # LP-FT's point: a random head's first gradients distort the features.
    task = load_digits_transfer(n_target_per_class=10, random_state=0)
    source = pretrain_source_network(task.X_source, task.y_source, max_epochs=20)
    settings = {"head": "new", "max_epochs": 30, "random_state": 0}

    def body_drift(head_init):
        estimator = FineTunedClassifier(source, head_init=head_init, **settings)
        estimator.fit(task.X_target, task.y_target)
        return sum(
            (fitted - original).pow(2).sum().item()
            for fitted, original in zip(
                estimator.module_.body.parameters(),
                source[:-1].parameters(),
                strict=True,
            )
        )

    assert body_drift("linear_probe") < 0.5 * body_drift("random")

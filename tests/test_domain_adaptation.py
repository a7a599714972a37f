"""DomainAdaptationClassifier / Regressor: fine-tuning that uses unlabelled target rows.

What a user relies on: ``lam=0`` *is* fine-tuning; without unlabelled data
the estimator says what to pass; each method does what it is named for (the
alignment terms shrink the discrepancy they measure, the prediction terms
make target predictions confident and, on a shift they suit, more accurate);
a term's own parameters (DANN's discriminator) train; the class-probability
terms are refused for regression; ``lam`` is tunable by ``GridSearchCV``
with a label-free scorer; and the source network is never modified.
"""

import warnings

import numpy as np
import pytest
import sklearn
import torch
from sklearn.datasets import make_moons
from sklearn.model_selection import GridSearchCV
from torch import nn

from sktransfer import (
    DomainAdaptationClassifier,
    DomainAdaptationRegressor,
    FineTunedClassifier,
    FineTunedRegressor,
    KnowledgeRegularizedClassifier,
    UnlabeledData,
)
from sktransfer.adaptation import CORAL, MMD, prediction_entropy_scorer
from sktransfer.knowledge import KnowledgeTerm

FAST = {"max_epochs": 5, "lr": 0.01, "batch_size": 32, "random_state": 0}


def _rotated(X, degrees):
    angle = np.deg2rad(degrees)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    )
    return X @ rotation.T


def _moons_task(seed):
    """Two moons; the target domain is the same task rotated by 35 degrees."""
    X_source, y_source = make_moons(600, noise=0.1, random_state=seed)
    X_target, y_target = make_moons(600, noise=0.1, random_state=seed + 100)
    X_source = (X_source - [0.5, 0.25]).astype(np.float32)
    X_target = _rotated(X_target - [0.5, 0.25], 35).astype(np.float32)
    torch.manual_seed(seed)
    network = nn.Sequential(
        nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2)
    )
    source = FineTunedClassifier(
        network, head="reuse", max_epochs=50, lr=1e-2, random_state=0
    ).fit(X_source, y_source)
    return source.module_, X_source, y_source, X_target, y_target


@pytest.fixture(scope="module")
def moons():
    return _moons_task(0)


def _adapted(source, X, y, X_unlabelled, **params):
    settings = {"head": "reuse", "random_state": 0, **params}
    return DomainAdaptationClassifier(source, **settings).fit(
        X, y, unlabeled_data=UnlabeledData(X_unlabelled)
    )


def test_lam_zero_is_fine_tuning(moons):
    source, X, y, X_target, _ = moons
    adapted = _adapted(source, X, y, X_target, lam=0.0, **FAST)
    fine_tuned = FineTunedClassifier(source, head="reuse", **FAST).fit(X, y)

    np.testing.assert_array_equal(
        adapted.predict_proba(X_target), fine_tuned.predict_proba(X_target)
    )


def test_without_unlabelled_data_it_says_what_to_pass(moons):
    source, X, y, _, _ = moons
    with pytest.raises(ValueError, match=r"unlabeled_data=UnlabeledData\(X_target\)"):
        DomainAdaptationClassifier(source, **FAST).fit(X, y)


@pytest.mark.parametrize("method", ["mcc", "entropy"])
def test_prediction_terms_help_where_the_shift_keeps_the_classes_apart(moons, method):
    # Rotated moons: the target classes stay separated by a low-density gap,
    # the assumption of both terms. Fine-tuning on the source rows alone
    # scores about 0.70 on the target; MCC about 0.81, entropy about 0.77.
    source, X, y, X_target, y_target = moons
    unlabelled, test = X_target[:300], slice(300, None)
    plain = _adapted(source, X, y, unlabelled, lam=0.0)
    adapted = _adapted(source, X, y, unlabelled, method=method, lam=1.0)

    gain = adapted.score(X_target[test], y_target[test]) - plain.score(
        X_target[test], y_target[test]
    )
    assert gain > 0.04


@pytest.mark.parametrize(
    ("method", "term"), [("coral", CORAL()), ("mmd", MMD())], ids=["coral", "mmd"]
)
def test_alignment_terms_shrink_the_discrepancy_they_measure(moons, method, term):
    source, X, y, X_target, _ = moons
    plain = _adapted(source, X, y, X_target, lam=0.0, **FAST)
    adapted = _adapted(source, X, y, X_target, method=method, lam=10.0, **FAST)

    def discrepancy(model):
        with torch.no_grad():
            body = model.module_.body
            return float(
                term.loss(body(torch.tensor(X[:300])), body(torch.tensor(X_target)))
            )

    assert discrepancy(adapted) < 0.5 * discrepancy(plain)


class LearnedScale(KnowledgeTerm, nn.Module):
    """A term with one trainable parameter, recorded when training ends."""

    released = []

    def __init__(self):
        nn.Module.__init__(self)

    def prepare(self, context):
        self.scale = nn.Parameter(torch.ones(()))
        self._start = self.scale.detach().clone()

    def __call__(self, module, inputs, features, outputs, index):
        return (self.scale - 3.0) ** 2

    def release(self):
        LearnedScale.released.append((float(self._start), float(self.scale)))


def test_a_terms_own_parameters_train_with_the_network(moons):
    source, X, y, X_target, _ = moons
    LearnedScale.released = []
    _adapted(source, X, y, X_target, method=LearnedScale(), lam=1.0, **FAST)
    KnowledgeRegularizedClassifier(
        source, knowledge=LearnedScale(), lam=1.0, **FAST
    ).fit(X, y)

    for start, end in LearnedScale.released:
        assert start == 1.0
        assert abs(end - 3.0) < abs(start - 3.0) - 0.5


def test_dann_trains_and_keeps_no_discriminator_after_fit(moons):
    source, X, y, X_target, _ = moons
    adapted = _adapted(source, X, y, X_target, method="dann", lam=1.0, **FAST)

    plain = _adapted(source, X, y, X_target, lam=0.0, **FAST)
    assert not np.array_equal(adapted.predict_proba(X), plain.predict_proba(X))
    names = [name for name, _ in adapted.module_.named_parameters()]
    assert all(name.startswith(("body.", "head.")) for name in names)


def test_the_source_network_is_never_modified(moons):
    source, X, y, X_target, _ = moons
    before = {k: v.clone() for k, v in source.state_dict().items()}
    for method in ("coral", "mmd", "dann", "mcc", "entropy"):
        _adapted(source, X, y, X_target, method=method, **FAST)
    for key, value in source.state_dict().items():
        assert torch.equal(value, before[key]), key


def _regression_task():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4)).astype(np.float32)
    y = X[:, 0] - 2 * X[:, 1]
    torch.manual_seed(0)
    source = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    return source, X, y, (X * 1.5 + 0.5).astype(np.float32)


@pytest.mark.parametrize("method", ["coral", "mmd", "dann"])
def test_the_regressor_adapts_with_the_feature_terms(method):
    source, X, y, X_target = _regression_task()
    regressor = DomainAdaptationRegressor(source, method=method, lam=1.0, **FAST)
    regressor.fit(X, y, unlabeled_data=UnlabeledData(X_target))

    assert regressor.predict(X_target).shape == (200,)
    plain = DomainAdaptationRegressor(source, lam=0.0, **FAST).fit(
        X, y, unlabeled_data=UnlabeledData(X_target)
    )
    np.testing.assert_array_equal(
        plain.predict(X), FineTunedRegressor(source, **FAST).fit(X, y).predict(X)
    )


@pytest.mark.parametrize("method", ["mcc", "entropy"])
def test_the_regressor_refuses_the_class_probability_terms(method):
    source, X, y, X_target = _regression_task()
    with pytest.raises(ValueError, match="use 'coral', 'mmd' or 'dann'"):
        DomainAdaptationRegressor(source, method=method, **FAST).fit(
            X, y, unlabeled_data=UnlabeledData(X_target)
        )


@pytest.mark.parametrize("routing", [False, True], ids=["plain", "routing"])
def test_lam_is_tuned_by_grid_search_with_a_label_free_scorer(moons, routing):
    source, X, y, X_target, _ = moons
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "an estimate" warning
        scorer = prediction_entropy_scorer(X_target)
    search = GridSearchCV(
        DomainAdaptationClassifier(source, method="entropy", head="reuse", **FAST),
        {"lam": [0.0, 1.0]},
        scoring=scorer,
        cv=2,
    )
    with sklearn.config_context(enable_metadata_routing=routing):
        search.fit(X, y, unlabeled_data=UnlabeledData(X_target))

    # Entropy minimisation makes the target predictions more confident,
    # which is what this scorer rewards.
    assert search.best_params_ == {"lam": 1.0}

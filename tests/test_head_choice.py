"""head="auto": the source head is reused on evidence, never on widths alone."""

import copy

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris, make_regression
from torch import nn

from sktransfer import (
    FineTunedClassifier,
    FineTunedRegressor,
    FusionClassifier,
    KnowledgeRegularizedClassifier,
)
from sktransfer._head_choice import (
    MIN_KAPPA,
    classification_evidence,
    regression_evidence,
)
from sktransfer.datasets import load_digits_transfer, pretrain_source_network

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_IRIS = X_IRIS.astype(np.float32)
FAST = {"max_epochs": 5, "lr": 0.01, "batch_size": 32, "random_state": 0}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


@pytest.fixture(scope="module")
def iris_source():
    """A network that has learned iris: output i means class i."""
    return pretrain_source_network(
        X_IRIS, Y_IRIS, hidden_layer_sizes=(16,), max_epochs=60, lr=0.01
    )


def _permuted_outputs(source, order):
    """The same network with its outputs in another order."""
    permuted = copy.deepcopy(source)
    with torch.no_grad():
        permuted[-1].weight.copy_(source[-1].weight[order])
        permuted[-1].bias.copy_(source[-1].bias[order])
    return permuted


def test_a_source_that_predicts_the_labels_keeps_its_head(iris_source):
    estimator = FineTunedClassifier(iris_source, **FAST).fit(X_IRIS, Y_IRIS)

    assert estimator.head_choice_ == "reuse"
    assert estimator.head_choice_reason_.startswith("reused: ")
    assert "kappa" in estimator.head_choice_reason_


def test_equal_widths_with_outputs_of_other_meaning_get_a_new_head(iris_source):
    # Same network, same width, but output i now scores class i+1: nothing
    # but the width matches, and the width must not decide.
    shifted = _permuted_outputs(iris_source, [1, 2, 0])

    estimator = FineTunedClassifier(shifted, **FAST).fit(X_IRIS, Y_IRIS)

    assert estimator.head_choice_ == "new"
    assert estimator.head_choice_reason_.startswith("not reused: ")


def test_an_untrained_source_of_matching_width_gets_a_new_head():
    torch.manual_seed(0)
    untrained = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

    estimator = FineTunedClassifier(untrained, **FAST).fit(X_IRIS, Y_IRIS)

    assert estimator.head_choice_ == "new"


def test_five_source_digits_do_not_lend_their_head_to_five_other_digits():
    # The trap that motivated the evidence rule: digits 0-4 -> 5-9, equal widths.
    task = load_digits_transfer(n_target_per_class=10, random_state=0)
    source = pretrain_source_network(task.X_source, task.y_source, max_epochs=10)

    estimator = FineTunedClassifier(source, **FAST).fit(task.X_target, task.y_target)

    assert estimator.head_choice_ == "new"


def test_a_head_of_another_width_is_replaced_and_the_reason_names_both_widths(
    iris_source,
):
    two_classes = Y_IRIS < 2

    estimator = FineTunedClassifier(iris_source, **FAST).fit(
        X_IRIS[two_classes], Y_IRIS[two_classes]
    )

    assert estimator.head_choice_ == "new"
    assert "has 3 outputs" in estimator.head_choice_reason_
    assert "needs 2" in estimator.head_choice_reason_


def test_source_classes_decide_without_looking_at_the_predictions():
    torch.manual_seed(0)
    untrained = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 5))

    estimator = FineTunedClassifier(
        untrained, source_classes=[9, 2, 0, 1, 7], **FAST
    ).fit(X_IRIS, Y_IRIS)

    assert estimator.head_choice_ == "reuse"
    assert "source_classes" in estimator.head_choice_reason_
    assert estimator.module_.head.out_features == 3


@pytest.mark.parametrize("head", ["reuse", "new"])
def test_an_explicit_head_is_recorded_as_asked_for(iris_source, head):
    estimator = FineTunedClassifier(iris_source, head=head, **FAST).fit(X_IRIS, Y_IRIS)

    assert estimator.head_choice_ == head
    assert estimator.head_choice_reason_ == f"head={head!r} was asked for"


def test_knowledge_regularized_and_fusion_follow_the_same_evidence(iris_source):
    shifted = _permuted_outputs(iris_source, [2, 0, 1])

    for estimator_class in (KnowledgeRegularizedClassifier, FusionClassifier):
        right = estimator_class(iris_source, **FAST).fit(X_IRIS, Y_IRIS)
        wrong = estimator_class(shifted, **FAST).fit(X_IRIS, Y_IRIS)
        assert right.head_choice_ == "reuse", estimator_class.__name__
        assert wrong.head_choice_ == "new", estimator_class.__name__


def test_the_source_runs_once_per_fit_for_the_decision_and_the_probe():
    # The decision reads the source's outputs, the new head's linear probe
    # its features: one frozen pass over the training rows serves both.
    torch.manual_seed(0)
    passes = []

    class CountingLayer(nn.Module):
        def forward(self, inputs):
            if torch.is_inference_mode_enabled():
                passes.append(inputs.shape[0])
            return inputs

    source = nn.Sequential(CountingLayer(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    estimator = FineTunedClassifier(source, max_epochs=1, batch_size=256)
    estimator.fit(X_IRIS, Y_IRIS)

    assert estimator.head_choice_ == "new"
    assert passes == [150]


# --- regression ------------------------------------------------------------------


X_REG, Y_REG = make_regression(n_samples=200, n_features=4, noise=5.0, random_state=0)
X_REG = X_REG.astype(np.float32)
Y_REG = (Y_REG / Y_REG.std()).astype(np.float32)


@pytest.fixture(scope="module")
def regression_source():
    return (
        FineTunedRegressor(
            torch.nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1)),
            head="reuse",
            reinitialize=True,
            max_epochs=60,
            lr=0.01,
            random_state=0,
        )
        .fit(X_REG, Y_REG)
        .module_
    )


def test_a_regression_source_that_predicts_y_keeps_its_head(regression_source):
    estimator = FineTunedRegressor(regression_source, **FAST).fit(X_REG, Y_REG)

    assert estimator.head_choice_ == "reuse"
    assert "Pearson r" in estimator.head_choice_reason_


def test_a_regression_source_anticorrelated_with_y_gets_a_new_head(
    regression_source,
):
    estimator = FineTunedRegressor(regression_source, **FAST).fit(X_REG, -Y_REG)

    assert estimator.head_choice_ == "new"


# --- the evidence tests themselves -----------------------------------------------


def _one_hot_scores(predicted, n_classes):
    return np.eye(n_classes)[predicted]


def test_chance_agreement_is_what_independent_predictions_would_reach():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=400)
    independent = rng.integers(0, 4, size=400)

    agrees, _, description = classification_evidence(
        _one_hot_scores(independent, 4), y, 4
    )

    assert not agrees
    assert "chance 25%" in description


def test_agreement_far_above_chance_is_evidence():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=40)
    predicted = np.where(rng.random(40) < 0.6, y, rng.integers(0, 4, size=40))

    agrees, weak, _ = classification_evidence(_one_hot_scores(predicted, 4), y, 4)

    assert agrees
    assert not weak


def test_a_significant_but_slight_agreement_is_not_enough():
    # 20,000 samples make a 4-point excess over chance highly significant,
    # but a kappa of 0.05 says the outputs mostly mean something else.
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, size=20_000)
    predicted = np.where(rng.random(20_000) < 0.05, y, rng.integers(0, 5, size=20_000))

    agrees, weak, description = classification_evidence(
        _one_hot_scores(predicted, 5), y, 5
    )

    assert not agrees
    assert weak
    kappa = float(description.split("kappa ")[1].split(",")[0])
    assert 0 < kappa < MIN_KAPPA


def test_a_constant_prediction_is_no_evidence():
    y = np.array([0, 1] * 20)

    agrees, _, _ = classification_evidence(_one_hot_scores(np.zeros(40, int), 2), y, 2)

    assert not agrees


def test_regression_evidence_needs_every_column_to_correlate():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(100, 2))
    good = y + 0.3 * rng.normal(size=(100, 2))
    one_bad = np.c_[good[:, 0], rng.normal(size=100)]

    assert regression_evidence(good, y)[0]
    assert not regression_evidence(one_bad, y)[0]
    assert not regression_evidence(np.zeros((100, 2)), y)[0]

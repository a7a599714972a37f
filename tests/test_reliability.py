"""Training faults: divergence and interruption leave no half-fitted model.

Divergence is detected early (a loss far above its first value, non-finite
outputs after the last update), and the likely cause is named correctly: the
inputs when the loss is not finite before any update, the learning rate when
it explodes after updates. The cases count in the reliability matrix
(tests/_matrix.py).
"""

import numpy as np
import pytest
import torch
from _factories import data, estimator_params, fit, make, network_estimators
from sklearn.datasets import load_iris

from sktransfer import (
    FineTunedClassifier,
    FineTunedRegressor,
    KnowledgeRegularizedClassifier,
    TrainingDivergedError,
)

X, y = load_iris(return_X_y=True)


def _source():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
    )


class _InterruptAfter(torch.nn.Module):
    """Linear layer that raises KeyboardInterrupt in its n-th training call."""

    def __init__(self, n_calls):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)
        self.n_calls = n_calls
        self.calls = 0

    def forward(self, inputs):
        if self.training:
            self.calls += 1
            if self.calls >= self.n_calls:
                raise KeyboardInterrupt
        return self.linear(inputs)


@pytest.mark.parametrize(
    "estimator",
    [
        FineTunedClassifier(
            _source(), lr=1e12, optimizer=torch.optim.SGD, max_epochs=3
        ),
        KnowledgeRegularizedClassifier(
            _source(), lam=1.0, lr=1e12, optimizer=torch.optim.SGD, max_epochs=3
        ),
    ],
)
def test_divergent_fit_raises_naming_the_epoch_and_a_remedy(matrix, estimator):
    large = X * 1e6
    with (
        matrix.case("training faults", X=large, y=y),
        pytest.raises(
            TrainingDivergedError,
            match=r"epoch \d+ \(step \d+\).*The learning rate is the likely cause: "
            r"lower lr \(now 1e\+12 with SGD\).*The inputs are large too \(values up "
            r"to 7\.9e\+06",
        ),
    ):
        estimator.fit(large, y)
    assert not hasattr(estimator, "classes_")
    assert not hasattr(estimator, "module_")


# AutoTransfer* trains its networks on cross-validation folds, with the
# default optimizer: its divergence is the first network's, tested in
# test_auto_transfer.py.
SINGLE_NETWORK = estimator_params(
    [c for c in network_estimators() if not c.__name__.startswith("AutoTransfer")]
)


@pytest.mark.parametrize("estimator_class", SINGLE_NETWORK)
def test_a_loss_far_above_its_first_value_stops_training_and_blames_the_lr(
    matrix, estimator_class
):
    # Adam at lr=1e6 keeps the loss finite (1e12 and above), but it has
    # diverged: on well-scaled inputs the learning rate is the cause.
    estimator = make(estimator_class, lr=1e6, max_epochs=5)
    X_small, y_small = data(estimator)
    with (
        matrix.case("training faults", X=X_small, y=y_small),
        pytest.raises(
            TrainingDivergedError,
            match=r"in epoch 1 \(step \d+\): the loss (rose from \S+ to \S+, more "
            r"than 1e\+04 times its first value|became \w+)\. The learning rate is "
            r"the likely cause: lower lr \(now 1e\+06 with Adam\)",
        ),
    ):
        fit(estimator, X_small, y_small)
    assert not hasattr(estimator, "n_features_in_")


@pytest.mark.parametrize("estimator_class", SINGLE_NETWORK)
def test_weights_that_one_last_step_made_useless_are_caught_at_fit(
    matrix, estimator_class
):
    # One SGD step at lr=1e38: its loss was finite (computed before the
    # step), but no output of the network is afterwards.
    estimator = make(
        estimator_class,
        lr=1e38,
        optimizer=torch.optim.SGD,
        max_epochs=1,
        batch_size=64,
    )
    X_small, y_small = data(estimator)
    with (
        matrix.case("training faults", X=X_small, y=y_small),
        pytest.raises(
            TrainingDivergedError,
            match=r"after the last update the network's outputs are NaN or infinite, "
            r"although the loss was finite before it\. The learning rate is the "
            r"likely cause: lower lr \(now 1e\+38 with SGD\)",
        ),
    ):
        fit(estimator, X_small, y_small)
    assert not hasattr(estimator, "n_features_in_")


def test_a_near_perfect_start_and_an_outlier_are_not_mistaken_for_divergence():
    # The source already fits y (first batch loss ~0), but one row is an
    # outlier: its batch's loss is thousands of times the first, and still
    # ordinary training.
    torch.manual_seed(0)
    source = torch.nn.Sequential(torch.nn.Linear(4, 1))
    with torch.no_grad():
        y_exact = source(torch.from_numpy(X).float()).squeeze(1).numpy()
    y_outlier = y_exact.astype(np.float64)
    y_outlier[17] += 50.0
    estimator = FineTunedRegressor(
        source, lr=1e-4, max_epochs=3, batch_size=4, random_state=0
    )
    estimator.fit(X, y_outlier)
    losses = [loss for epoch in estimator.history_ for loss in _batch_losses(epoch)]
    assert max(losses) > 1000 * min(losses)
    assert estimator.n_iter_ == 3


def _batch_losses(epoch):
    return [batch["train_loss"] for batch in epoch["batches"]]


def test_divergence_message_mentions_lam_only_with_a_knowledge_term():
    plain = FineTunedClassifier(
        _source(), lr=1e12, optimizer=torch.optim.SGD, max_epochs=3
    )
    with pytest.raises(TrainingDivergedError) as plain_error:
        plain.fit(X * 1e6, y)
    assert "lam" not in str(plain_error.value)
    regularized = KnowledgeRegularizedClassifier(
        _source(), lam=1.0, lr=1e12, optimizer=torch.optim.SGD, max_epochs=3
    )
    with pytest.raises(TrainingDivergedError, match="lam"):
        regularized.fit(X * 1e6, y)


def test_keyboard_interrupt_propagates_and_leaves_the_estimator_unfitted(matrix):
    source = torch.nn.Sequential(torch.nn.Identity(), _InterruptAfter(n_calls=3))
    estimator = FineTunedClassifier(source, max_epochs=5, random_state=0)
    with matrix.case("training faults", X=X, y=y), pytest.raises(KeyboardInterrupt):
        estimator.fit(X, y)
    assert not hasattr(estimator, "classes_")
    assert not hasattr(estimator, "n_features_in_")
    assert source[1].calls == 0  # the user's module was never run


def test_interrupted_refit_keeps_the_previous_fit_intact(matrix):
    estimator = FineTunedClassifier(_source(), max_epochs=2, random_state=0)
    estimator.fit(X, y)
    before = estimator.predict_proba(X)
    estimator.set_params(
        source_module=torch.nn.Sequential(
            torch.nn.Identity(), _InterruptAfter(n_calls=2)
        )
    )
    y_two = np.where(y == 2, 1, y)
    with (
        matrix.case("training faults", X=X, y=y_two),
        pytest.raises(KeyboardInterrupt),
    ):
        estimator.fit(X, y_two)
    np.testing.assert_array_equal(estimator.classes_, [0, 1, 2])
    np.testing.assert_array_equal(estimator.predict_proba(X), before)

"""Training faults: divergence and interruption leave no half-fitted model."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris

from sktransfer import (
    FineTunedClassifier,
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
def test_divergent_fit_raises_naming_the_epoch_and_a_remedy(estimator):
    with pytest.raises(TrainingDivergedError, match=r"epoch \d+.*learning rate"):
        estimator.fit(X * 1e6, y)
    assert not hasattr(estimator, "classes_")
    assert not hasattr(estimator, "module_")


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


def test_keyboard_interrupt_propagates_and_leaves_the_estimator_unfitted():
    source = torch.nn.Sequential(torch.nn.Identity(), _InterruptAfter(n_calls=3))
    estimator = FineTunedClassifier(source, max_epochs=5, random_state=0)
    with pytest.raises(KeyboardInterrupt):
        estimator.fit(X, y)
    assert not hasattr(estimator, "classes_")
    assert not hasattr(estimator, "n_features_in_")
    assert source[1].calls == 0  # the user's module was never run


def test_interrupted_refit_keeps_the_previous_fit_intact():
    estimator = FineTunedClassifier(_source(), max_epochs=2, random_state=0)
    estimator.fit(X, y)
    before = estimator.predict_proba(X)
    estimator.set_params(
        source_module=torch.nn.Sequential(
            torch.nn.Identity(), _InterruptAfter(n_calls=2)
        )
    )
    with pytest.raises(KeyboardInterrupt):
        estimator.fit(X[:, :4], np.where(y == 2, 1, y))
    np.testing.assert_array_equal(estimator.classes_, [0, 1, 2])
    np.testing.assert_array_equal(estimator.predict_proba(X), before)

"""FusionClassifier: a frozen source network beside a trainable target network.

What a user relies on: the source part of the fitted network is the source,
bit for bit (weights and batch-norm statistics), it never enters the
optimizer and never switches to training mode; ``"sum"`` adds the two
networks' logits with the documented head policy, ``"concat"`` reads both
networks' features; ``target_module=None`` is a freshly initialised copy of
the source architecture; nothing the user passed is modified.
"""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.model_selection import cross_val_score
from sklearn.utils._param_validation import InvalidParameterError
from torch import nn

from sktransfer import FusionClassifier

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_IRIS = ((X_IRIS - X_IRIS.mean(0)) / X_IRIS.std(0)).astype(np.float32)
FAST = {"max_epochs": 10, "lr": 0.02, "batch_size": 16, "random_state": 0}


def _source(n_outputs=3):
    """Batch norm and dropout: any training-mode leak changes the state."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 16),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(16, n_outputs),
    ).eval()


def _snapshot(module):
    return {key: value.clone() for key, value in module.state_dict().items()}, [
        m.training for m in module.modules()
    ]


def _assert_unchanged(module, snapshot):
    state, training = snapshot
    assert module.state_dict().keys() == state.keys()
    for key, value in module.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert [m.training for m in module.modules()] == training


def _optimized_ids(estimator):
    return {
        id(parameter)
        for group in estimator.net_.optimizer_.param_groups
        for parameter in group["params"]
    }


def _source_parts(estimator):
    module = estimator.module_
    parts = [module.source_body]
    if estimator.fusion == "sum" and estimator.head_choice_ == "reuse":
        parts.append(module.source_head)
    return parts


CASES = [
    ("sum", 3, "reuse"),
    ("sum", 5, "new"),
    ("concat", 3, "new"),
]
IDS = ["sum-source-head", "sum-new-head", "concat"]


@pytest.mark.parametrize(("fusion", "n_outputs", "head_choice"), CASES, ids=IDS)
def test_source_part_is_frozen_bit_identical_and_outside_the_optimizer(
    fusion, n_outputs, head_choice
):
    source = _source(n_outputs)
    before = _snapshot(source)

    head = head_choice if fusion == "sum" else "auto"
    estimator = FusionClassifier(source, fusion=fusion, head=head, **FAST)
    estimator.fit(X_IRIS, Y_IRIS).predict_proba(X_IRIS)

    assert estimator.head_choice_ == head_choice
    _assert_unchanged(source, before)
    fitted_source = dict(estimator.module_.source_body.module.state_dict())
    if head_choice == "reuse":
        head = estimator.module_.source_head.module.state_dict()
        fitted_source.update({f"4.{key}": value for key, value in head.items()})
    for key, value in fitted_source.items():
        # Batch-norm running statistics included: the source ran in eval mode.
        assert torch.equal(value, before[0][key]), key
    optimized = _optimized_ids(estimator)
    for part in _source_parts(estimator):
        assert all(id(p) not in optimized for p in part.parameters())
        assert not any(p.requires_grad for p in part.parameters())
    trainable = [
        p
        for name, p in estimator.module_.named_parameters()
        if not name.startswith("source_body")
        and not (head_choice == "reuse" and name.startswith("source_head"))
    ]
    assert trainable
    assert {id(p) for p in trainable} == optimized


def test_source_part_stays_in_eval_mode_when_the_network_trains():
    estimator = FusionClassifier(_source(), **FAST).fit(X_IRIS, Y_IRIS)

    estimator.module_.train()

    assert estimator.module_.target_body.training
    assert not any(m.training for m in estimator.module_.source_body.module.modules())


def test_sum_adds_the_frozen_source_logits_to_the_target_logits():
    source = _source()
    estimator = FusionClassifier(source, fusion="sum", head="reuse", **FAST)
    module = estimator.fit(X_IRIS, Y_IRIS).module_.eval()
    inputs = torch.as_tensor(X_IRIS)

    with torch.no_grad():
        expected = source(inputs) + module.target_head(module.target_body(inputs))
        outputs = module(inputs)

    torch.testing.assert_close(outputs, expected)
    np.testing.assert_allclose(
        estimator.predict_proba(X_IRIS),
        torch.softmax(expected.double(), 1).numpy(),
        rtol=1e-5,
    )


def test_concat_head_reads_the_source_and_the_target_features():
    source = _source(5)
    target = nn.Sequential(nn.Linear(4, 7), nn.Tanh(), nn.Linear(7, 2))

    estimator = FusionClassifier(source, target, fusion="concat", **FAST)
    estimator.fit(X_IRIS, Y_IRIS)

    assert estimator.module_.head.in_features == 16 + 7
    assert estimator.module_.head.out_features == 3
    assert estimator.score(X_IRIS, Y_IRIS) > 0.8


@pytest.mark.parametrize("fusion", ["sum", "concat"])
def test_default_target_is_a_freshly_initialised_copy_of_the_source(fusion):
    source = _source()
    estimator = FusionClassifier(source, fusion=fusion, max_epochs=1, random_state=0)
    estimator.set_params(lr=1e-9).fit(X_IRIS, Y_IRIS)

    target_weight = estimator.module_.target_body[0].weight
    assert target_weight.shape == source[0].weight.shape
    assert not torch.allclose(target_weight, source[0].weight)
    assert isinstance(estimator.module_.target_body[1], nn.BatchNorm1d)


def test_given_target_network_starts_from_its_own_weights():
    torch.manual_seed(3)
    target = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    before = _snapshot(target)

    estimator = FusionClassifier(_source(), target, lr=1e-9, max_epochs=1)
    estimator.fit(X_IRIS, Y_IRIS)

    _assert_unchanged(target, before)
    fitted = estimator.module_.target_body[0].weight.detach()
    torch.testing.assert_close(fitted, target[0].weight, atol=1e-6, rtol=0)
    # Its final layer has one output per class, so it is kept as well.
    torch.testing.assert_close(
        estimator.module_.target_head.weight.detach(),
        target[2].weight,
        atol=1e-6,
        rtol=0,
    )


def test_head_reuse_refuses_a_source_of_another_width():
    estimator = FusionClassifier(_source(5), head="reuse", **FAST)

    with pytest.raises(ValueError, match="head='new' or 'auto'"):
        estimator.fit(X_IRIS, Y_IRIS)


def test_head_new_trains_a_head_on_the_frozen_source_features():
    estimator = FusionClassifier(_source(3), head="new", **FAST).fit(X_IRIS, Y_IRIS)

    assert estimator.head_choice_ == "new"
    head = estimator.module_.source_head
    assert isinstance(head, nn.Linear)
    assert all(id(p) in _optimized_ids(estimator) for p in head.parameters())


def test_unknown_fusion_is_refused():
    with pytest.raises(InvalidParameterError, match="fusion"):
        FusionClassifier(_source(), fusion="mean", **FAST).fit(X_IRIS, Y_IRIS)


@pytest.mark.parametrize("fusion", ["sum", "concat"])
def test_fusion_is_deterministic_cross_validates_and_pickles(fusion):
    estimator = FusionClassifier(_source(), fusion=fusion, **FAST)

    first = estimator.fit(X_IRIS, Y_IRIS).predict_proba(X_IRIS)
    second = clone(estimator).fit(X_IRIS, Y_IRIS).predict_proba(X_IRIS)
    restored = pickle.loads(pickle.dumps(estimator))

    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(restored.predict_proba(X_IRIS), first)
    scores = cross_val_score(estimator, X_IRIS, Y_IRIS, cv=3)
    assert scores.mean() > 0.7

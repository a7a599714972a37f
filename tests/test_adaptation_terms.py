"""The domain adaptation terms of ``sktransfer.adaptation``, one by one.

Each term is prepared by hand with a :class:`SourceContext` holding
unlabelled target inputs (no estimator, no training loop) and its value is
checked against its docstring's formula, computed here with numpy. When the
unlabelled batch holds every unlabelled row, the value does not depend on
their order, so it can be computed on all rows at once.
"""

import numpy as np
import pytest
import torch
from torch import nn

from sktransfer._data import InMemoryDataset
from sktransfer._modules import BodyHeadModule
from sktransfer.adaptation import (
    CORAL,
    MMD,
    DomainAdversarial,
    EntropyMinimization,
    MinimumClassConfusion,
)
from sktransfer.adaptation._terms import ADAPTATION_METHODS
from sktransfer.knowledge import KnowledgeTerm, SourceContext

N_LABELLED = 12
N_UNLABELLED = 20


def _network(batch_norm=False):
    torch.manual_seed(0)
    layers = [nn.Linear(4, 5), nn.Tanh()]
    if batch_norm:
        layers.insert(1, nn.BatchNorm1d(5))
    return BodyHeadModule(nn.Sequential(*layers), nn.Linear(5, 3))


def _inputs(n_rows, shift=0.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n_rows, 4, generator=generator) + shift


def _context(
    network,
    unlabelled=None,
    *,
    task="classification",
    seed=0,
    batch_size=N_UNLABELLED,
):
    labelled = _inputs(N_LABELLED)
    return SourceContext(
        source_module=None,
        target_module=network,
        training_data=InMemoryDataset(labelled, torch.zeros(N_LABELLED)),
        batch_size=256,
        training_batch_size=batch_size,
        task=task,
        generator=torch.Generator().manual_seed(seed),
        unlabeled_data=(
            None
            if unlabelled is None
            else InMemoryDataset(unlabelled, torch.arange(len(unlabelled)))
        ),
    )


def _call(term, network):
    """One training step's call, on the labelled rows as one batch."""
    inputs = _inputs(N_LABELLED)
    features, outputs = network.forward_with_features(inputs)
    return term(network, inputs, features, outputs, torch.arange(N_LABELLED))


def _numpy(tensor):
    return tensor.detach().double().numpy()


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _entropy(p):
    return -(p * np.log(p)).sum(axis=-1)


# --- the protocol, for every term ---------------------------------------------


@pytest.mark.parametrize("name", sorted(ADAPTATION_METHODS))
def test_every_method_is_a_knowledge_term_made_with_defaults(name):
    assert isinstance(ADAPTATION_METHODS[name](), KnowledgeTerm)


@pytest.mark.parametrize("name", sorted(ADAPTATION_METHODS))
def test_every_term_without_unlabeled_data_says_how_to_pass_it(name):
    term = ADAPTATION_METHODS[name]()
    with pytest.raises(ValueError, match=r"unlabeled_data=UnlabeledData\(X_target\)"):
        term.prepare(_context(_network()))


@pytest.mark.parametrize("term_class", [MinimumClassConfusion, EntropyMinimization])
def test_prediction_terms_refuse_regression(term_class):
    with pytest.raises(ValueError, match="regressor"):
        term_class().prepare(_context(_network(), _inputs(5), task="regression"))


@pytest.mark.parametrize("term_class", [CORAL, MMD, DomainAdversarial])
def test_feature_terms_work_for_regression(term_class):
    network = _network()
    term = term_class()
    term.prepare(_context(network, _inputs(N_UNLABELLED), task="regression"))
    assert torch.isfinite(_call(term, network))


@pytest.mark.parametrize(
    ("term", "message"),
    [
        (MMD(kernel_multipliers=(0.0, 1.0)), "kernel_multipliers"),
        (MMD(kernel_multipliers=()), "kernel_multipliers"),
        (MinimumClassConfusion(temperature=0), "temperature"),
        (EntropyMinimization(diversity=-1), "diversity"),
        (DomainAdversarial(hidden_units=(0,)), "hidden_units"),
        (DomainAdversarial(reversal_coefficient=-1), "reversal_coefficient"),
    ],
)
def test_invalid_parameters_are_refused_in_prepare(term, message):
    with pytest.raises(ValueError, match=message):
        term.prepare(_context(_network(), _inputs(N_UNLABELLED)))


@pytest.mark.parametrize("name", sorted(ADAPTATION_METHODS))
def test_the_same_generator_seed_gives_the_same_values(name):
    def values(seed):
        network = _network()
        term = ADAPTATION_METHODS[name]()
        # Batches smaller than the unlabelled set: their order matters.
        term.prepare(
            _context(network, _inputs(N_UNLABELLED, 1.0), seed=seed, batch_size=6)
        )
        return [_call(term, network).item() for _ in range(5)]

    assert values(0) == values(0)
    assert values(0) != values(1)


@pytest.mark.parametrize("name", sorted(ADAPTATION_METHODS))
def test_release_drops_the_stream(name):
    network = _network()
    term = ADAPTATION_METHODS[name]()
    term.prepare(_context(network, _inputs(N_UNLABELLED)))
    term.release()
    assert term._stream is None


@pytest.mark.parametrize("name", sorted(ADAPTATION_METHODS))
def test_gradients_reach_the_body_through_the_unlabelled_batch(name):
    network = _network()
    term = ADAPTATION_METHODS[name]()
    term.prepare(_context(network, _inputs(N_UNLABELLED, 1.0)))
    inputs = _inputs(N_LABELLED)
    # The labelled features carry no gradient: whatever reaches the body
    # comes from the unlabelled batch the term draws.
    with torch.no_grad():
        features, outputs = network.forward_with_features(inputs)
    term(network, inputs, features, outputs, torch.arange(N_LABELLED)).backward()
    assert network.body[0].weight.grad.abs().sum() > 0


# --- CORAL --------------------------------------------------------------------


def test_coral_is_zero_for_identical_features():
    features = _inputs(30)
    assert CORAL().loss(features, features.clone()).item() == 0.0


def test_coral_matches_the_covariance_formula():
    network = _network()
    unlabelled = _inputs(N_UNLABELLED, shift=1.0, seed=1) * 2
    term = CORAL()
    term.prepare(_context(network, unlabelled))

    value = _call(term, network).item()

    labelled_features = _numpy(network.body(_inputs(N_LABELLED)))
    unlabelled_features = _numpy(network.body(unlabelled))
    difference = np.cov(labelled_features, rowvar=False) - np.cov(
        unlabelled_features, rowvar=False
    )
    expected = (difference**2).sum() / (4 * labelled_features.shape[1] ** 2)
    assert value == pytest.approx(expected, rel=1e-5)
    assert value > 0


def test_coral_flattens_features_of_any_shape():
    features = _inputs(8).reshape(8, 2, 2)
    flat = features.reshape(8, 4)
    assert CORAL().loss(features, 2 * features).item() == pytest.approx(
        CORAL().loss(flat, 2 * flat).item()
    )


# --- MMD ----------------------------------------------------------------------


def _numpy_mmd(source, target, multipliers=(0.5, 1, 2, 4, 8)):
    pooled = np.concatenate([source, target])
    distances = ((pooled[:, None, :] - pooled[None, :, :]) ** 2).sum(axis=-1)
    n = len(pooled)
    scale = distances.sum() / (n * (n - 1))
    kernel = np.mean([np.exp(-distances / (m * scale)) for m in multipliers], axis=0)
    n_source = len(source)
    return (
        kernel[:n_source, :n_source].mean()
        + kernel[n_source:, n_source:].mean()
        - 2 * kernel[:n_source, n_source:].mean()
    )


def test_mmd_is_zero_for_the_same_samples():
    features = _inputs(30)
    assert MMD().loss(features, features.clone()).item() == pytest.approx(0, abs=1e-6)


def test_mmd_matches_the_formula_with_unequal_batch_sizes():
    network = _network()
    unlabelled = _inputs(N_UNLABELLED, shift=0.5, seed=1)
    term = MMD(kernel_multipliers=(1.0, 3.0))
    term.prepare(_context(network, unlabelled))

    value = _call(term, network).item()

    expected = _numpy_mmd(
        _numpy(network.body(_inputs(N_LABELLED))),
        _numpy(network.body(unlabelled)),
        (1.0, 3.0),
    )
    assert value == pytest.approx(expected, rel=1e-4)


def test_mmd_is_nonnegative_and_grows_with_the_shift():
    source = _inputs(40, seed=0)
    values = [
        MMD().loss(source, _inputs(30, shift, seed=1)).item() for shift in (0, 1, 3)
    ]
    assert all(value >= 0 for value in values)
    assert values[0] < values[1] < values[2]


# --- DANN ---------------------------------------------------------------------


def _prepared_adversarial(network, seed=0, **params):
    term = DomainAdversarial(**params)
    term.prepare(_context(network, _inputs(N_UNLABELLED, 1.0), seed=seed))
    return term


def test_dann_is_a_module_whose_parameters_are_the_discriminators():
    term = DomainAdversarial(hidden_units=(7, 3))
    assert isinstance(term, nn.Module)
    assert list(term.parameters()) == []

    term = _prepared_adversarial(_network(), hidden_units=(7, 3))

    shapes = [tuple(parameter.shape) for parameter in term.parameters()]
    assert shapes == [(7, 5), (7,), (3, 7), (3,), (1, 3), (1,)]
    assert all(parameter.requires_grad for parameter in term.parameters())


def test_dann_release_drops_the_discriminator():
    term = _prepared_adversarial(_network())
    term.release()
    assert list(term.parameters()) == []


def test_dann_discriminator_is_seeded_by_the_context_generator():
    def weights(seed):
        term = _prepared_adversarial(_network(), seed=seed)
        return [parameter.detach().clone() for parameter in term.parameters()]

    first, again, other = weights(0), weights(0), weights(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])


def test_dann_leaves_torchs_global_random_state_alone():
    state = torch.random.get_rng_state()
    _prepared_adversarial(_network())
    assert torch.equal(state, torch.random.get_rng_state())


def test_dann_probe_does_not_move_batch_norm_statistics():
    network = _network(batch_norm=True)
    network.train()
    before = network.body[1].running_mean.clone()
    _prepared_adversarial(network)
    assert torch.equal(before, network.body[1].running_mean)
    assert network.body.training


def test_dann_loss_is_the_discriminators_cross_entropy():
    network = _network()
    term = _prepared_adversarial(network)
    labelled = network.body(_inputs(N_LABELLED)).detach()
    unlabelled = network.body(_inputs(N_UNLABELLED, 1.0)).detach()

    value = term.loss(labelled, unlabelled).item()

    def logits(features):
        return _numpy(term.discriminator(features).squeeze(1))

    def bce(z, label):
        p = 1 / (1 + np.exp(-z))
        return -np.mean(label * np.log(p) + (1 - label) * np.log(1 - p))

    expected = 0.5 * (bce(logits(labelled), 1) + bce(logits(unlabelled), 0))
    assert value == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("coefficient", [1.0, 0.3])
def test_dann_reverses_the_bodys_gradient_but_not_the_discriminators(coefficient):
    network = _network()
    term = _prepared_adversarial(network, reversal_coefficient=coefficient)
    labelled_inputs = _inputs(N_LABELLED)
    unlabelled_inputs = _inputs(N_UNLABELLED, 1.0)

    term.loss(network.body(labelled_inputs), network.body(unlabelled_inputs)).backward()
    reversed_body = network.body[0].weight.grad.clone()
    reversed_discriminator = term.discriminator[0].weight.grad.clone()

    # The same loss without the reversal layer, by hand.
    network.zero_grad()
    term.zero_grad()
    logits = term.discriminator(
        torch.cat([network.body(labelled_inputs), network.body(unlabelled_inputs)])
    ).squeeze(1)
    plain = 0.5 * (
        nn.functional.binary_cross_entropy_with_logits(
            logits[:N_LABELLED], torch.ones(N_LABELLED)
        )
        + nn.functional.binary_cross_entropy_with_logits(
            logits[N_LABELLED:], torch.zeros(N_UNLABELLED)
        )
    )
    plain.backward()

    torch.testing.assert_close(
        reversed_body, -coefficient * network.body[0].weight.grad
    )
    torch.testing.assert_close(
        reversed_discriminator, term.discriminator[0].weight.grad
    )
    assert reversed_body.abs().sum() > 0


def test_dann_repr_shows_its_parameters():
    assert repr(DomainAdversarial(hidden_units=(8,), reversal_coefficient=0.5)) == (
        "DomainAdversarial(hidden_units=(8,), reversal_coefficient=0.5)"
    )


# --- MCC and entropy minimisation -----------------------------------------------


def _numpy_mcc(logits, temperature):
    p = _softmax(logits / temperature)
    certainty = 1 + np.exp(-_entropy(p))
    weights = len(p) * certainty / certainty.sum()
    confusion = (p * weights[:, None]).T @ p
    confusion = confusion / confusion.sum(axis=0, keepdims=True)
    return (confusion.sum() - np.trace(confusion)) / p.shape[1]


def test_mcc_matches_the_formula_on_the_unlabelled_outputs():
    network = _network()
    unlabelled = _inputs(N_UNLABELLED, shift=0.5, seed=1) * 3
    term = MinimumClassConfusion(temperature=2.0)
    term.prepare(_context(network, unlabelled))

    value = _call(term, network).item()

    assert value == pytest.approx(
        _numpy_mcc(_numpy(network(unlabelled)), 2.0), rel=1e-5
    )


def test_mcc_is_lower_for_confident_predictions_of_distinct_classes():
    confident = torch.tensor([[8.0, 0, 0], [0, 8.0, 0], [0, 0, 8.0]])
    assert MinimumClassConfusion().loss(confident) < MinimumClassConfusion().loss(
        torch.zeros(3, 3)
    )


def test_mcc_reads_one_binary_logit_as_two_classes():
    logits = _inputs(6)[:, :1]
    two_columns = torch.cat([torch.zeros_like(logits), logits], dim=1)
    assert MinimumClassConfusion().loss(logits).item() == pytest.approx(
        MinimumClassConfusion().loss(two_columns).item()
    )


@pytest.mark.parametrize("diversity", [0.0, 1.0, 0.5])
def test_entropy_minimization_matches_the_formula(diversity):
    network = _network()
    unlabelled = _inputs(N_UNLABELLED, shift=0.5, seed=1) * 3
    term = EntropyMinimization(diversity=diversity)
    term.prepare(_context(network, unlabelled))

    value = _call(term, network).item()

    p = _softmax(_numpy(network(unlabelled)))
    expected = _entropy(p).mean() - diversity * _entropy(p.mean(axis=0))
    assert value == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_entropy_minimization_prefers_diverse_confident_predictions():
    term = EntropyMinimization()
    diverse = torch.tensor([[9.0, 0], [0, 9.0]])
    collapsed = torch.tensor([[9.0, 0], [9.0, 0]])
    unsure = torch.zeros(2, 2)
    assert term.loss(diverse) < term.loss(collapsed)
    assert term.loss(diverse) < term.loss(unsure)


# --- a few steps of training ----------------------------------------------------


@pytest.mark.parametrize("term_class", [CORAL, MMD])
def test_minimising_an_alignment_term_brings_the_domains_together(term_class):
    network = _network()
    unlabelled = _inputs(N_UNLABELLED, shift=2.0, seed=1)
    term = term_class()
    term.prepare(_context(network, unlabelled))
    optimizer = torch.optim.Adam(network.body.parameters(), lr=0.05)

    def discrepancy():
        with torch.no_grad():
            return term.loss(
                network.body(_inputs(N_LABELLED)), network.body(unlabelled)
            )

    before = discrepancy()
    for _ in range(30):
        optimizer.zero_grad()
        _call(term, network).backward()
        optimizer.step()
    assert discrepancy() < 0.5 * before

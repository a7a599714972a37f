"""The knowledge terms ``K(θ)`` of ``sktransfer.knowledge``, one by one.

Each term is prepared by hand with a :class:`SourceContext` (no estimator, no
training) and its value is checked against the formula in its docstring,
computed here with plain torch. Gradients must reach the network being
trained and never the source network, and ``release()`` must leave nothing
behind (hooks, cached tensors).
"""

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional

from sktransfer._data import InMemoryDataset
from sktransfer._modules import BodyHeadModule
from sktransfer.knowledge import (
    L2SP,
    FeatureDistillation,
    KnowledgeTerm,
    NewParameterL2,
    OutputDistillation,
    SourceContext,
)

N_ROWS = 10
# Rows of one "training batch", in the order the batches index them.
INDEX = torch.tensor([7, 2, 5, 0])


def _source():
    torch.manual_seed(0)
    body = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU())
    return BodyHeadModule(body, nn.Linear(5, 3))


def _target(source, head_width=None):
    """The source network, moved away from its weights (a head of another width)."""
    target = copy.deepcopy(source)
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in target.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    if head_width is not None:
        target.head = nn.Linear(5, head_width)
    return target


def _inputs():
    torch.manual_seed(2)
    return torch.randn(N_ROWS, 4)


def _context(source, target, *, head_is_new=False, task="classification"):
    # The source keeps requires_grad=True on purpose: a term must not let
    # gradients reach it even when nobody froze it.
    inputs = _inputs()
    return SourceContext(
        source_module=source,
        target_module=target,
        training_data=InMemoryDataset(
            inputs, torch.zeros(len(inputs)), torch.ones(len(inputs))
        ),
        batch_size=3,
        head_is_new=head_is_new,
        task=task,
    )


def _call(term, target, inputs):
    """One training step's call: forward the batch, then evaluate the term."""
    features, outputs = target.forward_with_features(inputs[INDEX])
    return term(target, inputs[INDEX], features, outputs, INDEX)


def _assert_no_gradient(module):
    assert all(parameter.grad is None for parameter in module.parameters())


def _all_forward_hooks(module):
    return [
        (name, hook)
        for name, submodule in module.named_modules()
        for hook in [*submodule._forward_hooks, *submodule._forward_pre_hooks]
    ]


# --- SourceContext ----------------------------------------------------------------


def test_map_batches_runs_batch_by_batch_and_concatenates_in_order():
    context = _context(_source(), _source())
    sizes = []

    def double(batch):
        sizes.append(batch.shape[0])
        return batch * 2

    result = context.map_batches(double)

    assert sizes == [3, 3, 3, 1]
    torch.testing.assert_close(result, context.inputs * 2, rtol=0, atol=0)


def test_map_batches_concatenates_each_part_of_a_tuple_without_gradients():
    source = _source()
    context = _context(source, _target(source))

    features, outputs = context.map_batches(source.forward_with_features)

    with torch.no_grad():
        expected_features, expected_outputs = source.forward_with_features(
            context.inputs
        )
    torch.testing.assert_close(features, expected_features)
    torch.testing.assert_close(outputs, expected_outputs)
    assert not features.requires_grad
    assert not outputs.requires_grad


# --- KnowledgeTerm protocol ---------------------------------------------------------


def test_knowledge_term_base_prepares_and_releases_nothing_and_must_be_called():
    term = KnowledgeTerm()
    source = _source()

    term.prepare(_context(source, _target(source)))
    term.release()

    assert vars(term) == {}
    with pytest.raises(NotImplementedError):
        term(None, None, None, None, None)


def test_repr_of_a_term_shows_its_parameters_not_its_cached_state():
    source = _source()
    term = FeatureDistillation(layers=["0"])
    term.prepare(_context(source, _target(source)))

    assert repr(term) == "FeatureDistillation(layers=['0'])"
    assert repr(OutputDistillation(temperature=3.0)) == (
        "OutputDistillation(temperature=3.0)"
    )
    assert repr(L2SP()) == "L2SP()"
    term.release()


# --- L2SP ---------------------------------------------------------------------------


def _half_squared_distance(target, source, names):
    target_parameters = dict(target.named_parameters())
    source_parameters = dict(source.named_parameters())
    return 0.5 * sum(
        (target_parameters[name] - source_parameters[name]).pow(2).sum()
        for name in names
    )


def test_l2sp_is_half_the_squared_distance_over_body_and_reused_head():
    source = _source()
    target = _target(source)
    term = L2SP()
    term.prepare(_context(source, target, head_is_new=False))

    value = term(target, None, None, None, None)

    names = [name for name, _ in target.named_parameters()]
    assert any(name.startswith("head.") for name in names)
    with torch.no_grad():
        expected = _half_squared_distance(target, source, names)
    torch.testing.assert_close(value.detach(), expected)


def test_l2sp_leaves_out_a_new_head_even_of_the_same_shape():
    source = _source()
    target = _target(source)  # the head has the source head's shape
    term = L2SP()
    term.prepare(_context(source, target, head_is_new=True))

    value = term(target, None, None, None, None)

    body_names = [name for name, _ in target.body.named_parameters()]
    with torch.no_grad():
        expected = _half_squared_distance(target.body, source.body, body_names)
    torch.testing.assert_close(value.detach(), expected)


def test_l2sp_leaves_out_parameters_whose_shape_differs_from_the_source():
    source = _source()
    target = _target(source, head_width=2)
    term = L2SP()
    term.prepare(_context(source, target, head_is_new=False))

    value = term(target, None, None, None, None)

    body_names = [name for name, _ in target.body.named_parameters()]
    with torch.no_grad():
        expected = _half_squared_distance(target.body, source.body, body_names)
    torch.testing.assert_close(value.detach(), expected)


def test_l2sp_is_zero_with_a_zero_gradient_at_the_source_weights():
    source = _source()
    target = copy.deepcopy(source)
    term = L2SP()
    term.prepare(_context(source, target))

    value = term(target, None, None, None, None)
    value.backward()

    assert value.item() == 0.0
    for name, parameter in target.named_parameters():
        assert torch.count_nonzero(parameter.grad) == 0, name


def test_l2sp_gradient_is_the_distance_to_the_source_and_reaches_only_the_target():
    source = _source()
    target = _target(source)
    term = L2SP()
    term.prepare(_context(source, target))

    term(target, None, None, None, None).backward()

    source_parameters = dict(source.named_parameters())
    for name, parameter in target.named_parameters():
        torch.testing.assert_close(
            parameter.grad, (parameter - source_parameters[name]).detach()
        )
    _assert_no_gradient(source)


def test_l2sp_gives_no_gradient_to_frozen_parameters_but_counts_their_distance():
    source = _source()
    target = _target(source)
    frozen = next(iter(target.parameters()))
    frozen.requires_grad_(False)
    term = L2SP()
    term.prepare(_context(source, target))

    value = term(target, None, None, None, None)
    value.backward()

    expected = 0.5 * sum(
        (target_parameter - source_parameter).pow(2).sum()
        for target_parameter, source_parameter in zip(
            target.parameters(), source.parameters(), strict=True
        )
    )
    torch.testing.assert_close(value, expected)
    assert frozen.grad is None
    assert all(
        parameter.grad is not None
        for parameter in target.parameters()
        if parameter.requires_grad
    )


def test_l2sp_measures_the_distance_to_the_source_weights_at_prepare_time():
    source = _source()
    target = _target(source)
    term = L2SP()
    term.prepare(_context(source, target))
    before = term(target, None, None, None, None).detach()

    with torch.no_grad():
        for parameter in source.parameters():
            parameter.add_(1.0)

    torch.testing.assert_close(term(target, None, None, None, None).detach(), before)


def test_l2sp_follows_the_target_weights_as_they_train():
    source = _source()
    target = _target(source)
    term = L2SP()
    term.prepare(_context(source, target))

    with torch.no_grad():
        target.load_state_dict(source.state_dict())

    assert term(target, None, None, None, None).item() == 0.0


# --- NewParameterL2 -------------------------------------------------------------------


def test_new_parameter_l2_is_half_the_squared_norm_of_a_new_head():
    source = _source()
    target = _target(source, head_width=2)
    term = NewParameterL2()
    term.prepare(_context(source, target, head_is_new=True))

    value = term(target, None, None, None, None)
    value.backward()

    expected = 0.5 * (
        target.head.weight.detach().pow(2).sum()
        + target.head.bias.detach().pow(2).sum()
    )
    torch.testing.assert_close(value.detach(), expected)
    torch.testing.assert_close(target.head.weight.grad, target.head.weight.detach())
    _assert_no_gradient(target.body)
    _assert_no_gradient(source)


def test_new_parameter_l2_is_zero_when_the_head_is_reused():
    source = _source()
    target = _target(source)
    term = NewParameterL2()
    term.prepare(_context(source, target, head_is_new=False))

    assert float(term(target, None, None, None, None)) == 0.0


# --- FeatureDistillation ------------------------------------------------------------


def _mean_squared_distance(target, source):
    """Mean over the batch of each row's mean squared difference."""
    difference = target.flatten(start_dim=1) - source.flatten(start_dim=1)
    return difference.pow(2).mean(dim=1).mean()


def test_feature_distillation_compares_the_given_features_with_the_source_body():
    source = _source()
    target = _target(source)
    term = FeatureDistillation()
    context = _context(source, target)
    term.prepare(context)
    features = torch.randn(INDEX.shape[0], 5)

    value = term(target, context.inputs[INDEX], features, None, INDEX)

    with torch.no_grad():
        source_features = source.body(context.inputs[INDEX])
    torch.testing.assert_close(value, _mean_squared_distance(features, source_features))


def test_feature_distillation_averages_n_d_features_per_sample():
    torch.manual_seed(0)
    body = nn.Sequential(nn.Linear(4, 6), nn.Unflatten(1, (2, 3)))
    source = BodyHeadModule(body, nn.Sequential(nn.Flatten(), nn.Linear(6, 3)))
    target = _target(source)
    term = FeatureDistillation()
    context = _context(source, target)
    term.prepare(context)

    value = _call(term, target, context.inputs)

    with torch.no_grad():
        expected = _mean_squared_distance(
            target.body(context.inputs[INDEX]), source.body(context.inputs[INDEX])
        )
    torch.testing.assert_close(value.detach(), expected)


def test_feature_distillation_is_zero_when_the_target_is_the_source():
    source = _source()
    term = FeatureDistillation(layers=["0", "2"])
    target = copy.deepcopy(source)
    term.prepare(_context(source, target))

    # Zero up to float32 rounding: the source ran in batches of 3, not of 4.
    assert abs(_call(term, target, _inputs()).item()) < 1e-10
    term.release()


def test_feature_distillation_at_named_layers_sums_the_distance_of_each_layer():
    source = _source()
    target = _target(source)
    term = FeatureDistillation(layers=["0", "2"])
    context = _context(source, target)
    term.prepare(context)

    value = _call(term, target, context.inputs)

    batch = context.inputs[INDEX]
    with torch.no_grad():
        expected = _mean_squared_distance(
            target.body[0](batch), source.body[0](batch)
        ) + _mean_squared_distance(target.body[:3](batch), source.body[:3](batch))
    torch.testing.assert_close(value.detach(), expected)
    term.release()


def test_feature_distillation_gradient_reaches_the_target_body_only():
    source = _source()
    target = _target(source)
    term = FeatureDistillation(layers=["2"])
    term.prepare(_context(source, target))

    _call(term, target, _inputs()).backward()

    assert torch.count_nonzero(target.body[0].weight.grad) > 0
    assert torch.count_nonzero(target.body[2].weight.grad) > 0
    _assert_no_gradient(target.head)
    _assert_no_gradient(source)
    term.release()


def test_feature_distillation_hooks_the_target_only_until_release():
    source = _source()
    target = _target(source)
    term = FeatureDistillation(layers=["0", "2"])

    term.prepare(_context(source, target))

    assert _all_forward_hooks(source) == []
    assert {name for name, _ in _all_forward_hooks(target)} == {"body.0", "body.2"}
    term.release()
    assert _all_forward_hooks(target) == []


def test_feature_distillation_refuses_an_unknown_layer_naming_it():
    source = _source()
    target = _target(source)
    term = FeatureDistillation(layers=["0", "nope"])

    with pytest.raises(ValueError, match="nope"):
        term.prepare(_context(source, target))

    term.release()
    assert _all_forward_hooks(source) == []
    assert _all_forward_hooks(target) == []


# --- OutputDistillation -------------------------------------------------------------


def _distillation_kl(logits, source_logits, temperature):
    """T² · mean over the batch of KL(softmax(z⁰/T) ‖ softmax(z/T))."""
    source_probabilities = torch.softmax(source_logits / temperature, dim=1)
    kl = (
        source_probabilities
        * (
            torch.log(source_probabilities)
            - torch.log_softmax(logits / temperature, dim=1)
        )
    ).sum(dim=1)
    return kl.mean() * temperature**2


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_output_distillation_with_a_reused_head_is_the_scaled_kl_divergence(
    temperature,
):
    source = _source()
    target = _target(source)
    term = OutputDistillation(temperature=temperature)
    context = _context(source, target, head_is_new=False)
    term.prepare(context)

    value = _call(term, target, context.inputs)

    batch = context.inputs[INDEX]
    with torch.no_grad():
        expected = _distillation_kl(target(batch), source(batch), temperature)
    torch.testing.assert_close(value.detach(), expected)


def test_output_distillation_with_a_new_head_reads_the_source_head_on_target_features():
    source = _source()
    target = _target(source, head_width=2)
    term = OutputDistillation(temperature=2.0)
    context = _context(source, target, head_is_new=True)
    term.prepare(context)

    value = _call(term, target, context.inputs)
    value.backward()

    batch = context.inputs[INDEX]
    with torch.no_grad():
        expected = _distillation_kl(source.head(target.body(batch)), source(batch), 2.0)
    torch.testing.assert_close(value.detach(), expected)
    assert torch.count_nonzero(target.body[0].weight.grad) > 0
    # The new head learns the target task only; the source stays as it was.
    _assert_no_gradient(target.head)
    _assert_no_gradient(source)


def test_output_distillation_gradient_reaches_a_reused_head_but_not_the_source():
    source = _source()
    target = _target(source)
    term = OutputDistillation()
    term.prepare(_context(source, target))

    _call(term, target, _inputs()).backward()

    assert torch.count_nonzero(target.head.weight.grad) > 0
    assert torch.count_nonzero(target.body[0].weight.grad) > 0
    _assert_no_gradient(source)


@pytest.mark.parametrize("head_is_new", [False, True])
def test_output_distillation_for_regression_is_the_mean_squared_difference(
    head_is_new,
):
    source = _source()
    target = _target(source, head_width=2 if head_is_new else None)
    term = OutputDistillation(temperature=4.0)
    context = _context(source, target, head_is_new=head_is_new, task="regression")
    term.prepare(context)

    value = _call(term, target, context.inputs)

    batch = context.inputs[INDEX]
    with torch.no_grad():
        predicted = source.head(target.body(batch)) if head_is_new else target(batch)
        expected = (predicted - source(batch)).pow(2).mean()
    torch.testing.assert_close(value.detach(), expected)
    assert torch.isfinite(value)


def test_output_distillation_is_zero_when_the_target_is_the_source():
    source = _source()
    target = copy.deepcopy(source)
    term = OutputDistillation()
    term.prepare(_context(source, target))

    assert abs(_call(term, target, _inputs()).item()) < 1e-6


def test_output_distillation_matches_torch_kl_div_on_all_rows():
    source = _source()
    target = _target(source)
    term = OutputDistillation(temperature=3.0)
    context = _context(source, target)
    term.prepare(context)
    index = torch.arange(N_ROWS)

    outputs = target(context.inputs)
    value = term(target, context.inputs, None, outputs, index)

    with torch.no_grad():
        expected = functional.kl_div(
            torch.log_softmax(outputs / 3.0, dim=1),
            torch.softmax(source(context.inputs) / 3.0, dim=1),
            reduction="batchmean",
        ) * (3.0**2)
    torch.testing.assert_close(value.detach(), expected)


@pytest.mark.parametrize("temperature", [0, -1.0])
def test_output_distillation_refuses_a_non_positive_temperature(temperature):
    source = _source()

    with pytest.raises(ValueError, match="temperature"):
        OutputDistillation(temperature=temperature).prepare(
            _context(source, _target(source))
        )


def test_output_distillation_computes_the_source_outputs_once_in_prepare():
    source = _source()
    target = _target(source)
    term = OutputDistillation()
    calls = []
    source.register_forward_hook(lambda module, args, output: calls.append(1))
    term.prepare(_context(source, target))
    n_prepare_calls = len(calls)

    for _ in range(3):
        _call(term, target, _inputs())

    assert n_prepare_calls == 4  # ceil(10 rows / batch_size 3)
    assert len(calls) == n_prepare_calls


@pytest.mark.parametrize(
    "term",
    [L2SP(), NewParameterL2(), FeatureDistillation(), OutputDistillation()],
    ids=repr,
)
def test_release_drops_the_cached_source_quantities(term):
    source = _source()
    target = _target(source)
    term.prepare(_context(source, target, head_is_new=True))

    term.release()

    cached = [
        value
        for value in vars(term).values()
        if isinstance(value, torch.Tensor | nn.Module)
        or (isinstance(value, list | tuple) and len(value) > 0)
    ]
    assert cached == []

"""What the multi-network strategies (distillation, fusion, joint training) share.

They train through the same engine and front end as fine-tuning, but build
their network from more than the source's body and head, so they expose only
the training settings, not the fine-tuning ones (head policy, freezing).
"""

from torch import nn

from ._dry_run import check_input_fits_network
from ._fine_tuning import _SHARED_PARAMETERS
from ._network_estimator import (
    TRAINING_CONSTRAINTS,
    BaseNetworkEstimator,
    _probe,
    new_head,
)
from ._source import resolve_source, split_body_head

__all__ = [
    "TRAINING_CONSTRAINTS",
    "TRAINING_PARAMETERS",
    "MultiNetworkEstimator",
    "new_head",
    "output_width_error",
    "probe_network",
    "resolve_other_network",
    "split_network",
]


# The fine-tuning docs from ``max_epochs`` on: the settings every strategy has.
TRAINING_PARAMETERS = _SHARED_PARAMETERS[_SHARED_PARAMETERS.index("    max_epochs") :]


class MultiNetworkEstimator(BaseNetworkEstimator):
    """Base of the strategies that combine the source with other parts.

    Nothing is frozen by a schedule (frozen parts are :class:`FrozenModule`
    and never train) and every part learns at ``lr``.
    """

    def _freeze_schedule(self, module):
        return [], None, []

    def _interpolation(self):
        return 1.0


def resolve_other_network(network, name, probe):
    """A private copy of a second network (student, target), checked on X.

    Parameters
    ----------
    network : nn.Module, fitted skorch net or callable
        What the user passed as parameter ``name``.
    name : str
        The parameter's name, for error messages.
    probe : torch.Tensor
        One training sample, to check that the network reads X.
    """
    try:
        module = resolve_source(network)
    except (TypeError, ValueError) as exc:
        raise type(exc)(str(exc).replace("source_module", name)) from exc
    check_input_fits_network(module, probe.clone(), network_name=name)
    return module


def probe_network(module, probe, name):
    """``module(probe)`` without gradients; errors name the network."""
    try:
        return _probe(module, probe.clone())
    except ValueError as exc:
        raise ValueError(str(exc).replace("The source network", f"The {name}")) from exc


def split_network(module):
    """:func:`split_body_head`, also for a single layer (identity body)."""
    has_children = next(module.children(), None) is not None
    if not has_children and next(module.parameters(), None) is not None:
        return nn.Identity(), module, "(the whole network)"
    return split_body_head(module)


def output_width_error(network_name, layer_name, width, n_classes, classes, remedy):
    """The error for a final layer kept although it does not score the classes.

    ``width`` is what :func:`_output_width` returns: ``(width or None, shape
    of one sample's outputs)``.
    """
    n_outputs, shape = width
    described = (
        f"has {n_outputs} outputs"
        if n_outputs is not None
        else f"gives outputs of shape {shape} per sample"
    )
    return ValueError(
        f"The {network_name}'s final layer {layer_name!r} {described}, "
        f"but the target has {n_classes} classes {classes.tolist()}: one output "
        f"per class is needed. {remedy}"
    )

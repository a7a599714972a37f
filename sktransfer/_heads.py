"""The head component: which head the target network gets, and how it starts.

A strategy that keeps the source body composes it: :func:`choose_head` takes
the ``head`` parameter and the evidence (see :mod:`sktransfer._head_choice`),
:func:`build_head` makes the head, and a new head starts as a linear probe
(:mod:`sktransfer._linear_probe`). The helpers below are the one place that
reads a network's outputs and widths.
"""

import warnings

import torch
from torch import nn

from ._head_choice import HeadDecision
from ._source_classes import select_head_rows

__all__ = [
    "HeadDecision",
    "build_head",
    "choose_head",
    "forward_probe",
    "logits_head",
    "new_head",
    "output_width",
    "output_width_error",
    "reinitialize",
]


def forward_probe(network, probe, name="source network"):
    """``network(probe)`` in eval mode without gradients; errors name it."""
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            outputs = network(probe)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(
            f"The {name} could not process samples of shape "
            f"{tuple(probe.shape[1:])}: {exc}"
        ) from exc
    finally:
        network.train(was_training)
    if isinstance(outputs, (tuple, list)):
        raise ValueError(
            f"The {name} returns a {type(outputs).__name__}; a tensor is needed."
        )
    return outputs


def logits_head(head):
    """``head`` giving logits: a trailing ``Softmax`` becomes ``LogSoftmax``.

    Cross-entropy and ``predict_proba`` take logits; log-probabilities are
    logits of the same distribution.
    """
    if isinstance(head, nn.Sequential) and isinstance(head[-1], nn.Softmax):
        return nn.Sequential(*head[:-1], nn.LogSoftmax(dim=head[-1].dim))
    return head


def output_width(head, features):
    """Outputs per sample of ``head``: ``(width or None, shape of one sample)``.

    The width is None when one sample gives more than a vector (e.g. a linear
    head applied along the last axis of 3-D features).
    """
    was_training = head.training
    head.eval()
    try:
        with torch.no_grad():
            outputs = head(features)
    except (RuntimeError, ValueError, TypeError):
        outputs = None
    finally:
        head.train(was_training)
    if isinstance(outputs, torch.Tensor):
        shape = tuple(outputs.shape[1:])
        return (shape[0] if len(shape) == 1 else None), shape
    linear_layers = [m for m in head.modules() if isinstance(m, nn.Linear)]
    width = linear_layers[-1].out_features if linear_layers else None
    return width, (width,)


def new_head(features, n_outputs, dtype):
    """A freshly initialised linear layer reading ``features`` (flattened)."""
    head = nn.Linear(features[0].numel(), n_outputs)
    if features.ndim > 2:
        head = nn.Sequential(nn.Flatten(), head)
    return head.to(dtype)


def choose_head(
    head,
    *,
    head_name,
    source_width,
    source_shape,
    n_outputs,
    output_description,
    rows,
    missing,
    labelled,
    reinitialize,
    evidence,
):
    """The :class:`HeadDecision` for the ``head`` parameter of one fit.

    Parameters
    ----------
    head : {"auto", "reuse", "new"}
    head_name : str or None
        The source head's name; None for a source without a head.
    source_width, source_shape
        What :func:`output_width` says of the source head.
    n_outputs : int
        Outputs the target needs.
    output_description : str
        What they are, for messages (``"one per class of [0, 1]"``).
    rows, missing
        The source outputs of the target's classes by label, and the classes
        without one (see :func:`~sktransfer._source_classes.rows_of_classes`).
    labelled : bool
        True when ``source_classes`` labels the source outputs.
    reinitialize : bool
        Training from scratch: the choice only sets the architecture.
    evidence : callable
        ``evidence() -> Evidence`` of the source's predictions on the
        training rows, called only when nothing else decides.
    """
    if head_name is None:
        # A headless source (a text encoder, a timm model made with
        # num_classes=0) gives features only: there is nothing to reuse.
        if head == "reuse":
            raise ValueError(
                "head='reuse' needs the source network's head, but it has none "
                "(its output is a feature vector). Use head='new' or 'auto'."
            )
        return HeadDecision(
            False, None, "the source network has no head (it gives features)"
        )
    width_described = (
        f"has {source_width} outputs"
        if source_width is not None
        else f"gives outputs of shape {source_shape} per sample"
    )
    if head == "reuse":
        if missing:
            raise ValueError(
                f"head='reuse' keeps the source head {head_name!r}, but "
                f"source_classes has no output for the classes {missing} of y. "
                "Use head='new' or 'auto'."
            )
        if rows is None and source_width != n_outputs:
            raise ValueError(
                f"head='reuse' keeps the source head {head_name!r}, which "
                f"{width_described}, but the target needs {n_outputs} "
                f"({output_description}). Use head='new' or 'auto'."
            )
        return HeadDecision(True, rows, "head='reuse' was asked for")
    if head == "new":
        return HeadDecision(False, None, "head='new' was asked for")
    if missing:
        return HeadDecision(
            False, None, f"source_classes has no output for the classes {missing} of y"
        )
    if labelled:
        return HeadDecision(
            True, rows, "source_classes names an output for every class of y"
        )
    if source_width != n_outputs:
        return HeadDecision(
            False,
            None,
            f"the source head {width_described}, but the target needs "
            f"{n_outputs} ({output_description})",
        )
    if reinitialize:
        return HeadDecision(
            True, None, "reinitialize=True and the source head's width fits"
        )
    found = evidence()
    if found is None:
        return HeadDecision(
            False, None, "the source head gives no vector of scores per sample"
        )
    if found.agrees:
        return HeadDecision(True, None, f"reused: {found.description}")
    return HeadDecision(False, None, f"not reused: {found.description}")


def build_head(decision, source_head, head_name, features, n_outputs, dtype):
    """The head :func:`choose_head` decided on: the source's, or a new one."""
    if not decision.reuse:
        return new_head(features, n_outputs, dtype)
    head = logits_head(source_head)
    if decision.rows is not None:
        head = select_head_rows(head, decision.rows, head_name)
    return head


def reinitialize(module):
    """Fresh weights everywhere, for structure transfer (the baseline)."""
    kept = []
    for name, submodule in module.named_modules():
        own = [p for p, _ in submodule.named_parameters(recurse=False)]
        if hasattr(submodule, "reset_parameters"):
            submodule.reset_parameters()
        elif own:
            kept.extend(f"{name}.{p}" for p in own)
    if kept:
        warnings.warn(
            "reinitialize=True could not reset these parameters, whose modules "
            f"have no reset_parameters(); they keep the source weights: {kept}",
            UserWarning,
            stacklevel=3,
        )


def output_width_error(network_name, layer_name, width, n_outputs, described, remedy):
    """The error for a final layer kept although it does not give the outputs.

    ``width`` is what :func:`output_width` returns; ``described`` says what
    the target's outputs are (``"one per class of [0, 1]"``).
    """
    n_given, shape = width
    given = (
        f"has {n_given} outputs"
        if n_given is not None
        else f"gives outputs of shape {shape} per sample"
    )
    return ValueError(
        f"The {network_name}'s final layer {layer_name!r} {given}, but the "
        f"target needs {n_outputs} ({described}). {remedy}"
    )

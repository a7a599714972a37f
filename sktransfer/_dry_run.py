"""Does X fit the network? A dry forward pass of one sample decides.

The pass accepts every network that can read X, whatever its ``forward``
does first. When it fails, the error says why: by the first layer's static
description when the failure arose there, on X as given, and otherwise by
the layer where the pass failed.
"""

import torch

from ._source import expected_input_spec, resolve_source

__all__ = ["check_input_fits_network", "resolve_other_network"]


def check_input_fits_network(
    network, sample, *, X_shape=None, name="X", network_name="source network", run=None
):
    """Run one sample of X through ``network``: the check that X fits it.

    A dry forward pass (evaluation mode, no gradients) decides, so that every
    network that can read X is accepted, whatever its ``forward`` does first
    (``nn.Unflatten``, ``x.view(...)``, a custom reshape). Only when the pass
    fails does the static description of the first layer
    (:func:`~sktransfer._source.expected_input_spec`) explain why, and only
    if the failure arose in that layer, on X's samples as given.

    Parameters
    ----------
    network : nn.Module
        Put in evaluation mode for the pass, then back in its mode.
    sample : torch.Tensor
        One sample (or a few) of X, as the network will read it.
    X_shape : tuple of int, default=None
        The shape of X, for messages; ``sample``'s shape when None.
    name, network_name : str
        How messages name X and the network.
    run : callable, default=None
        Runs the pass instead of ``network(sample)`` (e.g. up to one layer).

    Returns
    -------
    outputs : the network's outputs (or ``run``'s)
    """
    X_shape = tuple(sample.shape) if X_shape is None else tuple(X_shape)
    run = network if run is None else run
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            return run(sample)
    except _FORWARD_ERRORS as exc:
        raise _misfit_error(
            network, sample, run, X_shape, name, network_name, exc
        ) from exc
    finally:
        network.train(was_training)


# What torch raises when a tensor does not fit a layer (IndexError: an
# unflatten or a dimension index beyond the input's).
_FORWARD_ERRORS = (RuntimeError, ValueError, TypeError, IndexError)


def _misfit_error(network, sample, run, X_shape, name, network_name, exc):
    failed_in, input_shape = _where_it_fails(network, sample, run)
    spec = expected_input_spec(network)
    if (
        spec is not None
        and failed_in == spec.layer_name
        and input_shape == tuple(sample.shape)
    ):
        layer = network.get_submodule(spec.layer_name)
        if spec.ndim is not None and len(X_shape) != spec.ndim:
            return ValueError(
                f"{name} has {len(X_shape)} dimensions (shape {X_shape}), but the "
                f"{network_name}'s first layer {spec.layer_name!r} "
                f"({type(layer).__name__}) expects {spec.ndim}-D input: "
                "(n_samples, channels, ...spatial)."
            )
        if spec.n_features is not None:
            width = X_shape[spec.feature_axis]
            if width != spec.n_features:
                unit = "channels (axis 1)" if spec.feature_axis == 1 else "features"
                return ValueError(
                    f"{name} has {width} {unit}, but the {network_name}'s "
                    f"{spec.describe()}."
                )
    where = ""
    if failed_in is not None:
        module = network.get_submodule(failed_in)
        label = f"{failed_in!r} " if failed_in else ""
        if next(module.children(), None) is None:
            where = f" (it failed in layer {label}({type(module).__name__}))"
        else:  # in the module's own forward code, e.g. x.view(...)
            where = f" (it failed in the forward of {label}({type(module).__name__}))"
    return ValueError(
        f"The {network_name} could not process samples of shape "
        f"{X_shape[1:]}{where}: {exc}"
    )


def _where_it_fails(network, sample, run):
    """``(name, input shape)`` of the innermost module whose forward failed.

    Runs the failing pass once more with hooks on every module: the module
    entered last and never left is where the error arose (a module's own
    ``forward`` code, e.g. ``x.view``, when all its children returned).
    ``(None, None)`` when that cannot be told.
    """
    entered, left, handles = [], set(), []

    def on_enter(module_name):
        def hook(module, args):
            shape = tuple(args[0].shape) if args and torch.is_tensor(args[0]) else None
            entered.append((module_name, shape))

        return hook

    def on_leave(module_name):
        def hook(module, args, output):
            left.add(module_name)

        return hook

    for module_name, module in network.named_modules():
        handles.append(module.register_forward_pre_hook(on_enter(module_name)))
        handles.append(module.register_forward_hook(on_leave(module_name)))
    try:
        with torch.no_grad():
            run(sample)
    except Exception:  # the error itself is known: only where it arose is sought
        pass
    finally:
        for handle in handles:
            handle.remove()
    for module_name, shape in reversed(entered):
        if module_name not in left:
            return module_name, shape
    return None, None


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

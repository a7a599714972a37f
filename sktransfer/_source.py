"""Source-model layer: turn what the user passed into a private network.

Every estimator goes through :func:`resolve_source`. It accepts a module
instance, a fitted skorch net, a module class / factory, or a named pretrained
model (:mod:`sktransfer.sources`), optionally loads a weights file, and always
returns a *private* network (a deep copy, or a freshly loaded model) so that
nothing done to it (training, moving to a device, replacing the head) can
reach the user's object. The rest of the module splits a network into body
and head and finds named layers; it knows nothing about scikit-learn.
"""

import copy
import os
import pickle
from collections.abc import Mapping

import torch
from torch import nn

from .sources._spec import SourceSpec

__all__ = [
    "InputSpec",
    "expected_input_spec",
    "find_head_name",
    "get_layer",
    "load_state_dict_file",
    "resolve_source",
    "split_body_head",
    "split_network",
]

_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_NDIM = {nn.Conv1d: 3, nn.Conv2d: 4, nn.Conv3d: 5}


def _is_skorch_net(obj):
    try:
        from skorch import NeuralNet
    except ImportError:  # pragma: no cover - skorch is a hard dependency
        return False
    return isinstance(obj, NeuralNet)


def resolve_source(source_module, source_weights=None):
    """Return a private deep copy of the source network.

    Parameters
    ----------
    source_module : nn.Module, fitted skorch net, source spec, or callable
        A module instance (typically with pretrained weights), a fitted skorch
        ``NeuralNet`` (its ``module_`` is used), a named model from
        :mod:`sktransfer.sources` (loaded now), or a module class / factory
        called without arguments.
    source_weights : str or os.PathLike, default=None
        A ``.safetensors`` file or a torch state-dict file loaded into the
        copy with ``weights_only=True``.

    Returns
    -------
    module : nn.Module
        A deep copy; the caller owns it.
    """
    if isinstance(source_module, nn.Module):
        module = copy.deepcopy(source_module)
    elif isinstance(source_module, SourceSpec):
        # Freshly loaded: nobody else holds it, so no copy is needed.
        module = source_module.load()
    elif _is_skorch_net(source_module):
        if not getattr(source_module, "initialized_", False):
            raise ValueError(
                "source_module is a skorch net that has not been initialized or "
                "fitted; pass a fitted net, or its module."
            )
        module = copy.deepcopy(source_module.module_)
    elif callable(source_module):
        module = source_module()
        if not isinstance(module, nn.Module):
            raise TypeError(
                "source_module was called as a factory and returned "
                f"{type(module).__name__}; expected a torch.nn.Module."
            )
        # A factory may hand back an object the user still holds
        # (``lambda: pretrained``); copy it so that it is never trained.
        module = copy.deepcopy(module)
    else:
        raise TypeError(
            "source_module must be a torch.nn.Module, a fitted skorch net, a "
            "named model from sktransfer.sources, or a module class / factory; "
            f"got {type(source_module).__name__}."
        )
    if source_weights is not None:
        state_dict = load_state_dict_file(source_weights)
        _load_state_dict(module, state_dict, source_weights)
    return module


def _load_state_dict(module, state_dict, path):
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise ValueError(
            f"The weights in {os.fspath(path)!r} do not fit source_module: {exc}"
        ) from exc


def load_state_dict_file(path):
    """Load a state dict from a ``.safetensors`` or torch file, safely.

    Torch files are read with ``weights_only=True``: a file that needs to
    unpickle arbitrary Python objects is refused and nothing in it is executed.

    Parameters
    ----------
    path : str or os.PathLike
        The weights file.

    Returns
    -------
    state_dict : dict of str to torch.Tensor
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"source_weights {path!r} is a directory; pass the weights file in "
            "it (a .safetensors file, or a torch state-dict file such as .pt)."
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"source_weights file {path!r} does not exist.")
    save_as = (
        "Save a plain state dict (torch.save(module.state_dict(), path)) or a "
        ".safetensors file."
    )
    if path.endswith(".safetensors"):
        try:
            from safetensors import SafetensorError
            from safetensors.torch import load_file
        except ImportError as exc:
            raise ImportError(
                "Loading a .safetensors file needs the 'safetensors' package: "
                "pip install safetensors (or sktransfer[safetensors])."
            ) from exc
        try:
            return load_file(path, device="cpu")
        except SafetensorError as exc:
            raise ValueError(
                f"{path!r} is not a valid .safetensors file (truncated, "
                f"corrupted, or another format): {exc}. {save_as}"
            ) from exc
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" in str(exc).lower():
            raise ValueError(
                f"Refused to load {path!r}: it needs to unpickle arbitrary Python "
                f"objects, which could execute code. {save_as}"
            ) from exc
        raise ValueError(
            f"Refused to load {path!r}: torch's safe loader (weights_only=True) "
            "cannot read it; it is corrupted, not a torch file, or needs to "
            f"unpickle arbitrary Python objects, which could execute code. {save_as}"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise ValueError(
            f"{path!r} is not a readable torch file (truncated or corrupted?): "
            f"{exc}. {save_as}"
        ) from exc
    if isinstance(loaded, Mapping) and "state_dict" in loaded:
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(
        isinstance(value, torch.Tensor) for value in loaded.values()
    ):
        raise ValueError(
            f"{path!r} does not hold a state dict (a mapping of parameter names "
            f"to tensors); it holds {type(loaded).__name__}."
        )
    return dict(loaded)


def get_layer(module, name):
    """Return the sub-module called ``name`` in ``module.named_modules()``."""
    modules = dict(module.named_modules())
    if name not in modules:
        available = [key for key in modules if key]
        shown = ", ".join(repr(key) for key in available[:20])
        more = f" … and {len(available) - 20} more" if len(available) > 20 else ""
        raise ValueError(
            f"The source network has no layer named {name!r}. Names come from "
            f"named_modules(): {shown}{more}."
        )
    return modules[name]


def find_head_name(module):
    """Name of the network's head, or None when it has none.

    A network with a ``get_classifier()`` method (timm's convention, also
    followed by :class:`~sktransfer.sources.TextEncoder`) names its head: the
    sub-module returned, or no head when that has no parameters (a timm model
    made with ``num_classes=0``, a text encoder). Any other network's head is
    its last leaf module that holds parameters (``fc`` of a torchvision
    ResNet, the last ``Linear`` of a ``Sequential``).
    """
    get_classifier = getattr(module, "get_classifier", None)
    if callable(get_classifier):
        classifier = get_classifier()
        if isinstance(classifier, nn.Module):
            if next(classifier.parameters(), None) is None:
                return None
            for name, submodule in module.named_modules():
                if name and submodule is classifier:
                    return name
    head_name = None
    for name, submodule in module.named_modules():
        has_children = next(submodule.children(), None) is not None
        has_own_params = next(submodule.parameters(recurse=False), None) is not None
        if name and not has_children and has_own_params:
            head_name = name
    if head_name is None:
        raise ValueError(
            "Cannot split the source network into body and head: it has no "
            "sub-module with parameters."
        )
    return head_name


def _set_submodule(module, name, new_submodule):
    parent_name, _, child_name = name.rpartition(".")
    parent = module.get_submodule(parent_name) if parent_name else module
    setattr(parent, child_name, new_submodule)


def split_body_head(module, head_name=None):
    """Split ``module`` in place into body and head.

    The head (by default the final layer with parameters) is replaced by
    ``nn.Identity`` in ``module``, which becomes the body. When the head sits in
    an ``nn.Sequential``, the parameter-free layers after it (softmax, dropout,
    …) act on the head's output, so they are moved into the head as well.

    Parameters
    ----------
    module : nn.Module
        A private copy (see :func:`resolve_source`); it is modified.
    head_name : str, default=None
        The head's name in ``named_modules()``; found by
        :func:`find_head_name` when None.

    Returns
    -------
    body : nn.Module
        ``module`` itself, with the head replaced by ``nn.Identity``.
    head : nn.Module
        The removed layer(s); ``nn.Identity`` for a network without a head
        (then ``module`` is returned whole as the body).
    head_name : str or None
        None when the network has no head.
    """
    if head_name is None:
        head_name = find_head_name(module)
        if head_name is None:
            return module, nn.Identity(), None
    head = get_layer(module, head_name)
    parent_name, _, child_name = head_name.rpartition(".")
    parent = module.get_submodule(parent_name) if parent_name else module
    if isinstance(parent, nn.Sequential):
        names = list(parent._modules)
        trailing = names[names.index(child_name) + 1 :]
        if trailing and not any(
            next(parent._modules[n].parameters(), None) is not None for n in trailing
        ):
            head = nn.Sequential(head, *(parent._modules[n] for n in trailing))
            for n in trailing:
                parent._modules[n] = nn.Identity()
    _set_submodule(module, head_name, nn.Identity())
    return module, head, head_name


class InputSpec:
    """What the first layer of a network expects, when it can be told.

    Attributes
    ----------
    layer_name : str
        Name of the first layer with parameters.
    n_features : int or None
        Width the layer reads (``in_features`` of a Linear, ``in_channels`` of
        a convolution); None when unknown (lazy layers, embeddings).
    feature_axis : int
        Axis of X that holds that width (-1 for Linear, 1 for convolutions).
    ndim : int or None
        Number of dimensions of X (samples included) the layer needs.
    integer_input : bool
        True when the first layer is an embedding, which reads integer ids.
    """

    def __init__(self, layer_name, n_features, feature_axis, ndim, integer_input):
        self.layer_name = layer_name
        self.n_features = n_features
        self.feature_axis = feature_axis
        self.ndim = ndim
        self.integer_input = integer_input

    def describe(self):
        layer = f"first layer {self.layer_name!r}"
        if self.feature_axis == 1:
            return f"{layer} expects {self.n_features} input channels (axis 1)"
        return f"{layer} expects {self.n_features} input features"


def expected_input_spec(module):
    """Infer what ``module`` reads from its first layer with parameters.

    Only a hint: a custom ``forward`` can call its layers in any order, so
    callers confirm it with a probe forward pass. Returns None when the first
    layer is of a kind that does not say.
    """
    for name, submodule in module.named_modules():
        if next(submodule.parameters(recurse=False), None) is None:
            continue
        if isinstance(submodule, nn.modules.lazy.LazyModuleMixin):
            return None
        if isinstance(submodule, nn.Linear):
            return InputSpec(name, submodule.in_features, -1, None, False)
        for conv_type in _CONV_TYPES:
            if type(submodule) is conv_type:
                return InputSpec(
                    name, submodule.in_channels, 1, _CONV_NDIM[conv_type], False
                )
        if isinstance(submodule, (nn.Embedding, nn.EmbeddingBag)):
            return InputSpec(name, None, -1, None, True)
        return None
    return None


def split_network(module):
    """:func:`split_body_head`, also for a single layer (an identity body).

    For networks other than the source (a student, a target network), which
    may be one layer.
    """
    has_children = next(module.children(), None) is not None
    if not has_children and next(module.parameters(), None) is not None:
        return nn.Identity(), module, "(the whole network)"
    return split_body_head(module)

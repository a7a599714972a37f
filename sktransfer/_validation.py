"""Input checks shared by every estimator: does X fit the source network?"""

import numpy as np
import torch

from ._source import expected_input_spec
from .sources._text import TextEncoder, holds_strings

__all__ = [
    "check_input_fits_source",
    "check_input_values",
    "check_no_text",
    "materialize_lazy_layers",
    "network_dtype",
    "positive_strides",
    "reads_integers",
    "to_batch_tensor",
]


def network_dtype(module):
    """Floating dtype of the network's parameters (float32 if it has none)."""
    for parameter in module.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return torch.float32


def reads_integers(module):
    """True when the network's first layer is an embedding (integer ids)."""
    spec = expected_input_spec(module)
    return spec is not None and spec.integer_input


def check_input_fits_source(X, module, name="X"):
    """Raise a ValueError naming both widths when X cannot feed ``module``.

    The check reads the first layer with parameters (see
    :func:`~sktransfer._source.expected_input_spec`); networks whose first
    layer does not say what it reads are confirmed by the caller's probe pass.

    Returns
    -------
    spec : InputSpec or None
    """
    spec = expected_input_spec(module)
    if spec is None:
        return None
    if spec.ndim is not None and X.ndim != spec.ndim:
        raise ValueError(
            f"{name} has {X.ndim} dimensions (shape {X.shape}), but the source "
            f"network's first layer {spec.layer_name!r} "
            f"({type(module.get_submodule(spec.layer_name)).__name__}) expects "
            f"{spec.ndim}-D input: (n_samples, channels, ...spatial)."
        )
    if spec.n_features is not None:
        width = X.shape[spec.feature_axis]
        if width != spec.n_features:
            unit = "channels (axis 1)" if spec.feature_axis == 1 else "features"
            raise ValueError(
                f"{name} has {width} {unit}, but the source network's "
                f"{spec.describe()}."
            )
    return spec


def check_input_values(X, module, name="X"):
    """Raise when the values of X cannot be fed to ``module``.

    X comes out of sklearn's ``validate_data``. What is left to refuse here is
    what torch would otherwise refuse with an error that names neither X nor
    what it should hold: object arrays (a DataFrame column of strings or
    categories), and ids an embedding cannot look up. Fractional values fed to
    an embedding would even be truncated silently.
    """
    if X.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} has dtype {X.dtype} (e.g. a DataFrame column of strings or "
            "categories), but the source network needs numbers. Encode such "
            "columns first, e.g. with sklearn.preprocessing.OrdinalEncoder."
        )
    spec = expected_input_spec(module)
    if spec is None or not spec.integer_input:
        return
    layer = module.get_submodule(spec.layer_name)
    n_ids = layer.num_embeddings
    expected = (
        f"the source network's first layer {spec.layer_name!r} "
        f"({type(layer).__name__}({n_ids}, {layer.embedding_dim})) reads "
        f"integer ids from 0 to {n_ids - 1}"
    )
    if X.dtype.kind == "f":
        fractional = X[np.mod(X, 1) != 0]
        if fractional.size:
            raise ValueError(
                f"{name} holds non-integer values (e.g. {fractional[0].item()}), but "
                f"{expected}."
            )
    low, high = X.min().item(), X.max().item()
    if low < 0 or high >= n_ids:
        raise ValueError(f"{name} holds ids from {low:g} to {high:g}, but {expected}.")


def materialize_lazy_layers(module, X_batch):
    """Give lazy layers their shapes with one seeded forward pass of X_batch.

    Seeded, so that every fit of a network with lazy layers starts from the
    same weights, without touching torch's global random stream.
    """
    from ._engine import seeded

    if not any(
        isinstance(layer, torch.nn.modules.lazy.LazyModuleMixin)
        and layer.has_uninitialized_params()
        for layer in module.modules()
    ):
        return
    dtype = torch.long if reads_integers(module) else torch.float32
    with seeded(0, "cpu"), torch.no_grad():
        module(to_batch_tensor(X_batch, dtype, "cpu"))


def to_batch_tensor(X_batch, dtype, device):
    """Copy a slice of a numpy array into a new tensor on ``device``.

    Only the slice is copied, so memory stays bounded by the batch. The copy
    is never skipped: a network that changes its input in place
    (``x /= 255``, an in-place ReLU first) must not write into the user's X.
    """
    return torch.tensor(positive_strides(X_batch), dtype=dtype, device=device)


def positive_strides(X):
    """X itself, or a copy when torch could not read it.

    torch refuses arrays with a negative stride (``X[::-1]``). A slice of one
    row of such an array still counts as contiguous for numpy, so
    ``np.ascontiguousarray`` alone does not help.
    """
    if any(stride < 0 for stride in X.strides):
        return X.copy()
    return np.ascontiguousarray(X)


def check_no_text(X, network, name="X"):
    """Raise a ValueError saying what to do when X holds strings.

    Strings reach a network only through a tokenizer: the text path of
    :class:`~sktransfer.PretrainedFeatureTransformer`, or token ids made
    beforehand for the estimators that train.
    """
    if not holds_strings(X):
        return
    if isinstance(network, TextEncoder):
        raise ValueError(
            f"{name} holds strings, but this estimator trains on token ids: "
            f"pass source.tokenize(texts) as {name}, where source is the "
            "huggingface_model(...) you passed as source_module."
        )
    raise ValueError(
        f"{name} holds strings, but the source network is not a text model: "
        "it reads numbers. To embed text, pass a "
        "sktransfer.sources.huggingface_model(...) as source_module."
    )

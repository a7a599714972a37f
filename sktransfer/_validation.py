"""Input checks shared by every estimator: does X fit the source network?"""

import numpy as np
import torch

from ._source import expected_input_spec
from .sources._text import TextEncoder, holds_strings

__all__ = [
    "check_input_fits_source",
    "check_no_text",
    "network_dtype",
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


def to_batch_tensor(X_batch, dtype, device):
    """Copy a slice of a numpy array into a new tensor on ``device``.

    Only the slice is copied, so memory stays bounded by the batch. The copy
    is never skipped: a network that changes its input in place
    (``x /= 255``, an in-place ReLU first) must not write into the user's X.
    """
    return torch.tensor(np.ascontiguousarray(X_batch), dtype=dtype, device=device)


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

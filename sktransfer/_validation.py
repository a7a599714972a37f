"""Input checks shared by every estimator: does X fit the source network?"""

import numpy as np
import torch
from sklearn.utils.validation import _check_sample_weight

from ._source import expected_input_spec
from .sources._text import TextEncoder, holds_strings

__all__ = [
    "check_finite_outputs",
    "check_input_values",
    "check_no_text",
    "check_object_values",
    "check_representable",
    "check_sample_weight",
    "check_token_width",
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


def check_input_values(X, module, name="X", feature_names=None):
    """Raise when the values of X cannot be fed to ``module``.

    X comes out of sklearn's ``validate_data``. What is left to refuse here is
    what torch would otherwise refuse with an error that names neither X nor
    what it should hold: object arrays (a DataFrame column of strings or
    categories), and ids an embedding cannot look up. Fractional values fed to
    an embedding would even be truncated silently, and finite float64 values
    beyond the range of the network's dtype would silently become infinite
    (then NaN probabilities).
    """
    if X.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} has dtype {X.dtype} (e.g. a DataFrame column of strings or "
            "categories), but the source network needs numbers. Encode such "
            "columns first, e.g. with sklearn.preprocessing.OrdinalEncoder."
        )
    spec = expected_input_spec(module)
    if spec is None or not spec.integer_input:
        check_representable(X, network_dtype(module), name, feature_names)
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


def check_representable(X, dtype, name="X", feature_names=None):
    """Refuse values of X beyond the largest finite value of ``dtype``.

    Only X of a wider type than the network computes in (float64 X, a
    float32 network) can hold such values; the per-column extremes are two
    reductions over X, no copy of it.
    """
    if not dtype.is_floating_point or X.size == 0:
        return
    limit = torch.finfo(dtype).max
    if X.dtype.kind == "f" and np.finfo(X.dtype).max <= limit:
        return
    if (
        X.dtype.kind in "iu"
        and max(abs(np.iinfo(X.dtype).min), np.iinfo(X.dtype).max) <= limit
    ):
        return
    column_max, column_min = X.max(axis=0), X.min(axis=0)
    too_large = (column_max > limit) | (column_min < -limit)
    if not too_large.any():
        return
    largest = float(max(column_max.max(), -column_min.min()))
    raise ValueError(
        f"{name} holds values up to {largest:.3g} in absolute value in "
        f"{_describe_positions(too_large, feature_names)}, beyond the range of "
        f"{str(dtype).removeprefix('torch.')} (±{limit:.3g}), the dtype the network "
        "computes in: they would become infinite. Scale X (e.g. with "
        "sklearn.preprocessing.StandardScaler), to the range the source network "
        "was trained on."
    )


def _describe_positions(mask, feature_names=None, shown=5):
    """'column 3', 'columns 0 to 3', 'columns 'a', 'c'' or sample positions."""
    if mask.ndim == 1:
        columns = np.flatnonzero(mask)
        if feature_names is not None:
            labels = [repr(str(feature_names[i])) for i in columns]
        else:
            labels = [str(i) for i in columns]
        if len(columns) == 1:
            return f"column {labels[0]}"
        if feature_names is None and columns[-1] - columns[0] == len(columns) - 1:
            return f"columns {labels[0]} to {labels[-1]}"
        more = f" … ({len(columns)} columns)" if len(columns) > shown else ""
        return f"columns {', '.join(labels[:shown])}{more}"
    positions = [tuple(int(i) for i in index) for index in np.argwhere(mask)]
    more = f" … ({len(positions)} positions)" if len(positions) > shown else ""
    listed = ", ".join(str(position) for position in positions[:shown])
    return f"the sample positions {listed}{more}"


def check_finite_outputs(X, reduce=None, network=None, name="X"):
    """Wrap ``reduce`` so that no non-finite output passes unnoticed.

    The prediction loops map each batch of outputs through ``reduce`` (e.g.
    to its argmax); the returned function first refuses a batch that holds
    NaN or infinity, naming the first row concerned and the likely cause, so
    that ``predict_proba`` never returns NaN and ``predict`` never returns a
    label argmax'ed from NaN. Batches must come in row order.

    Parameters
    ----------
    X : ndarray
        The input being predicted, for the message.
    reduce : callable or None
        What to keep of each batch of outputs; None keeps it whole.
    network : nn.Module, default=None
        The fitted network, whose weights the message checks.
    """
    rows_seen = 0

    def checked(outputs):
        nonlocal rows_seen
        finite = torch.isfinite(outputs)
        if not bool(finite.all()):
            bad_rows = (~finite).reshape(finite.shape[0], -1).any(dim=1)
            first = rows_seen + int(bad_rows.nonzero()[0, 0])
            raise ValueError(
                f"The network's outputs for row {first} of {name} are not finite "
                f"(NaN or infinite). {_non_finite_cause(X, network, name)}"
            )
        rows_seen += outputs.shape[0]
        return outputs if reduce is None else reduce(outputs)

    return checked


def _non_finite_cause(X, network, name):
    largest = (
        float(max(abs(X.max()), abs(X.min())))
        if X.dtype.kind in "iuf" and X.size
        else None
    )
    if largest is not None and largest > _ORDINARY_INPUT:
        return (
            f"{name} holds values up to {largest:.3g} in absolute value: values "
            "this far outside the range the network was trained on overflow "
            f"its computations. Scale {name} like the data the estimator was "
            "fitted on."
        )
    weights = [] if network is None else list(network.parameters())
    if weights:
        weight_max = max(float(w.detach().abs().amax()) for w in weights)
        return (
            f"The inputs are of ordinary scale ({name} values up to {largest:.3g}), "
            f"but the network's weights reach {weight_max:.3g} in absolute value: "
            "training diverged. Fit again with a lower learning rate."
        )
    return f"Check that {name} is scaled like the data the estimator was fitted on."


# Inputs up to this absolute value are not blamed for non-finite outputs.
_ORDINARY_INPUT = 1e4


def materialize_lazy_layers(module, X_batch):
    """Give lazy layers their shapes with one seeded forward pass of X_batch.

    Seeded, so that every fit of a network with lazy layers starts from the
    same weights, without touching torch's global random stream.
    """
    from ._seeding import seeded

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


def check_sample_weight(sample_weight, X, name="sample_weight"):
    """Per-sample weights as float32, refused when not usable as loss weights.

    scikit-learn's checks (length, NaN, infinity, all zero) and one more: a
    negative weight rewards a large loss, so training would diverge. Used for
    the target's ``sample_weight`` and the source data's alike.

    Returns
    -------
    sample_weight : ndarray of shape (n_samples,), dtype float32
    """
    try:
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float32)
    except ValueError as exc:
        if name == "sample_weight":
            raise
        raise ValueError(f"{name} is invalid: {exc}") from exc
    if (sample_weight < 0).any():
        raise ValueError(
            f"{name} holds negative values (the smallest is "
            f"{sample_weight.min().item():g}); weights must be >= 0."
        )
    return sample_weight


def check_object_values(X, name="X"):
    """Refuse strings and missing values hidden in object columns of X.

    scikit-learn's conversion to numbers would fail on them with "could not
    convert string to float" or a bare ``float()`` error naming no column.
    Only object or string columns are scanned (a DataFrame's, or all columns
    of an object array); numbers written as strings ("1.5") are accepted, as
    scikit-learn converts them.
    """
    for column, values in _object_columns(X):
        for row, value in enumerate(values):
            if value is None or type(value).__name__ == "NAType":
                raise ValueError(
                    f"{name} holds a missing value ({value!r}) in {column}, row "
                    f"{row}; the source network needs a number in every cell. "
                    "Impute missing values first, e.g. with "
                    "sklearn.impute.SimpleImputer."
                )
            if isinstance(value, (str, bytes)) and not _is_number(value):
                raise ValueError(
                    f"{name} holds strings in {column} (e.g. {value!r} in row "
                    f"{row}), but the source network reads numbers. Encode such "
                    "columns first (e.g. with sklearn.preprocessing.OrdinalEncoder "
                    "or OneHotEncoder in a ColumnTransformer); to embed text, pass "
                    "a sktransfer.sources.huggingface_model(...) as source_module."
                )


def _object_columns(X):
    """``(description, values)`` of each column of X that may hold objects."""
    if hasattr(X, "columns") and hasattr(X, "dtypes"):  # DataFrame
        for column, dtype in zip(X.columns, X.dtypes, strict=True):
            if dtype.kind in "OSU":
                yield f"column {column!r}", X[column].to_numpy(dtype=object)
        return
    if not hasattr(X, "dtype"):  # lists: as scikit-learn will read them
        try:
            X = np.asarray(X)
        except (TypeError, ValueError):
            return
    if X.dtype.kind not in "OSU" or X.ndim != 2:
        return
    for column in range(X.shape[1]):
        yield f"column {column}", X[:, column]


def _is_number(text):
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def check_token_width(X, network, n_tokens, estimator_name, name="X"):
    """Refuse token ids of another width than in fit, saying how to make them.

    Ids made by ``tokenize`` are padded to the longest text of each call, so
    new text rarely has the width the network was fitted on.
    """
    if not isinstance(network, TextEncoder) or getattr(X, "ndim", 0) != 2:
        return
    if X.shape[1] != n_tokens:
        raise ValueError(
            f"{name} has {X.shape[1]} token ids per text, but {estimator_name} was "
            f"fitted on {n_tokens}. Tokenize new text to the same length: put "
            "sktransfer.sources.TextTokenizer before the estimator in a pipeline "
            "(it pads every text to the length learned in fit), and pass raw text."
        )


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

"""Unlabelled target inputs passed to ``fit``, and inputs beside the main X."""

import numpy as np
import torch
from sklearn.utils import check_array

from ._data import InMemoryDataset
from ._validation import (
    check_input_values,
    check_object_values,
    check_representable,
)

__all__ = ["UnlabeledData", "check_wrapped", "extra_inputs", "unlabeled_dataset"]


class UnlabeledData:
    """Unlabelled target inputs for ``fit``, kept whole.

    Passed as ``fit(X, y, unlabeled_data=UnlabeledData(X_target))`` to the
    estimators that learn from target inputs without labels (domain
    adaptation, distillation, knowledge terms of the user's own). Like
    :class:`SourceData`, a plain container, deliberately *not* array-like:
    scikit-learn's cross-validation and grid search cut every array-like fit
    parameter as long as ``X`` into the fold's rows; wrapped, the unlabelled
    rows reach every fit whole. Under metadata routing
    (``sklearn.set_config(enable_metadata_routing=True)``) the estimators
    that take it request it by default, so ``Pipeline``,
    ``cross_val_score(..., params={"unlabeled_data": ...})`` and
    ``GridSearchCV(...).fit(X, y, unlabeled_data=...)`` pass it on.

    Parameters
    ----------
    X : array-like of shape (n_unlabeled_samples, ...)
        Target-domain inputs without labels, shaped and scaled like the
        ``X`` given to ``fit`` (they feed the same network).

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import UnlabeledData
    >>> UnlabeledData(np.zeros((500, 4)))
    UnlabeledData(X: (500, 4))
    """

    def __init__(self, X):
        self.X = X

    def __repr__(self):
        return f"UnlabeledData(X: {np.shape(self.X)})"


def extra_inputs(X, probe, name, network=None):
    """Validate a second set of inputs for the network that reads ``probe``.

    ``X`` (source or unlabelled target inputs) feeds the same network as the
    fit's X: finite, representable in the network's dtype, of the same sample
    shape; with ``network`` (one that reads token ids), ids it can look up.
    Returns a C-contiguous array.
    """
    integer_input = not probe.is_floating_point()
    check_object_values(X, name=name)
    X = check_array(
        X,
        dtype=None if integer_input else "numeric",
        allow_nd=True,
        ensure_all_finite=True,
        input_name=name,
    )
    if not integer_input:
        check_representable(X, probe.dtype, name=name)
    if X.shape[1:] != tuple(probe.shape[1:]):
        raise ValueError(
            f"{name} has samples of shape {X.shape[1:]}, the X given to fit of "
            f"shape {tuple(probe.shape[1:])}; both feed the same network."
        )
    if integer_input and network is not None:
        check_input_values(X, network, name=name)
    return np.ascontiguousarray(X)


def check_wrapped(unlabeled_data):
    """Refuse ``unlabeled_data`` that is not an :class:`UnlabeledData`."""
    if not isinstance(unlabeled_data, UnlabeledData):
        raise TypeError(
            "unlabeled_data must be an UnlabeledData(X_target); got "
            f"{type(unlabeled_data).__name__}. The wrapper keeps the rows whole "
            "through cross-validation, which would otherwise cut an array as "
            "long as X into folds."
        )


def unlabeled_dataset(unlabeled_data, probe, device, network=None):
    """The validated unlabelled inputs on ``device``, or None.

    An :class:`~sktransfer._data.InMemoryDataset` whose targets are
    placeholders (row numbers), as the knowledge terms' ``SourceContext``
    carries it.
    """
    if unlabeled_data is None:
        return None
    check_wrapped(unlabeled_data)
    X = extra_inputs(unlabeled_data.X, probe, "UnlabeledData's X", network)
    return InMemoryDataset(
        torch.tensor(X, dtype=probe.dtype, device=device),
        torch.arange(X.shape[0], device=device),
    )

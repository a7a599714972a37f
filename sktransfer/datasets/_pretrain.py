"""Pretrain a source network on a task's source data, through the engine."""

import itertools

import numpy as np
from torch import nn

__all__ = ["pretrain_source_network"]


def pretrain_source_network(
    X_source,
    y_source,
    *,
    hidden_layer_sizes=(128, 64),
    max_epochs=40,
    lr=1e-3,
    batch_size=64,
    random_state=0,
):
    """Train a multi-layer perceptron on source data and return it.

    Stands in for the pretrained network a user brings: an
    ``nn.Sequential`` of ``Linear``/``ReLU`` layers whose last ``Linear`` has
    one output per source class (in sorted label order). It trains with
    :class:`~sktransfer.FineTunedClassifier` (``reinitialize=True``), so there
    is one training loop in the package.

    Parameters
    ----------
    X_source : ndarray of shape (n_samples, n_features)
    y_source : ndarray of shape (n_samples,)
    hidden_layer_sizes : tuple of int, default=(128, 64)
    max_epochs, lr, batch_size, random_state
        As in :class:`~sktransfer.FineTunedClassifier`.

    Returns
    -------
    network : torch.nn.Sequential
        In evaluation mode.

    Examples
    --------
    >>> from sktransfer.datasets import (
    ...     load_digits_transfer, pretrain_source_network)
    >>> task = load_digits_transfer()
    >>> network = pretrain_source_network(
    ...     task.X_source, task.y_source, max_epochs=5)
    >>> network[-1].out_features
    5
    """
    from .._fine_tuning import FineTunedClassifier

    widths = [np.asarray(X_source).shape[1], *hidden_layer_sizes]
    layers = []
    for width_in, width_out in itertools.pairwise(widths):
        layers += [nn.Linear(width_in, width_out), nn.ReLU()]
    n_classes = np.unique(y_source).shape[0]
    architecture = nn.Sequential(*layers, nn.Linear(widths[-1], n_classes))
    fitted = FineTunedClassifier(
        architecture,
        head="reuse",
        reinitialize=True,
        max_epochs=max_epochs,
        lr=lr,
        batch_size=batch_size,
        random_state=random_state,
    ).fit(X_source, y_source)
    # module_ is head(body(x)), the body ending in the Identity that replaced
    # the last Linear: put the trained head back in its place.
    body_layers = list(fitted.module_.body.children())[:-1]
    return nn.Sequential(*body_layers, fitted.module_.head).eval()

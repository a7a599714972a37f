"""A transfer task built from scikit-learn's digits (shipped, offline)."""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.utils import Bunch, check_random_state

__all__ = ["load_digits_transfer"]


def load_digits_transfer(
    *, source_classes=(0, 1, 2, 3, 4), n_target_per_class=None, random_state=None
):
    """Split the 8×8 digits into a source task and a related target task.

    The source task holds every image of ``source_classes``; the target task
    holds the other digits, optionally subsampled to a small-data regime.
    Both share the pixel space, so a network pretrained on the source has
    learned strokes and shapes that help on the target even though the
    classes differ. Pixels are scaled to [0, 1].

    Parameters
    ----------
    source_classes : sequence of int, default=(0, 1, 2, 3, 4)
        Digits of the source task; the remaining digits form the target task.
    n_target_per_class : int or None, default=None
        Keep this many target images per class (drawn without replacement);
        None keeps all of them (about 180 per class).
    random_state : int, RandomState instance or None, default=None
        Seeds the target subsample.

    Returns
    -------
    task : sklearn.utils.Bunch
        ``X_source`` (n, 64) float32, ``y_source`` (labels in
        ``source_classes``), ``X_target``, ``y_target`` and ``description``.

    Examples
    --------
    >>> from sktransfer.datasets import load_digits_transfer
    >>> task = load_digits_transfer(n_target_per_class=20, random_state=0)
    >>> task.X_source.shape, task.X_target.shape
    ((901, 64), (100, 64))
    """
    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    y = digits.target
    source_classes = np.asarray(source_classes)
    is_source = np.isin(y, source_classes)
    if is_source.all() or not is_source.any():
        raise ValueError(
            "source_classes must hold some but not all of the digits 0-9; got "
            f"{source_classes.tolist()}."
        )
    X_target, y_target = X[~is_source], y[~is_source]
    if n_target_per_class is not None:
        rng = check_random_state(random_state)
        keep = np.concatenate(
            [
                rng.choice(
                    np.flatnonzero(y_target == label),
                    size=n_target_per_class,
                    replace=False,
                )
                for label in np.unique(y_target)
            ]
        )
        keep.sort()
        X_target, y_target = X_target[keep], y_target[keep]
    target_classes = np.unique(y_target).tolist()
    return Bunch(
        X_source=X[is_source],
        y_source=y[is_source],
        X_target=X_target,
        y_target=y_target,
        description=(
            f"Digits 8x8: source task classes {source_classes.tolist()} "
            f"({is_source.sum()} images), target task classes {target_classes} "
            f"({len(y_target)} images); pixels scaled to [0, 1]."
        ),
    )

"""Scoring AutoTransfer*'s candidates for the target domain of unlabelled rows.

With ``unlabeled_data``, the labelled rows may come from the source domain,
the target domain or both. A domain classifier on the frozen source's
features tells which labelled rows look like the unlabelled ones: those are
the validation rows (every other row always trains), and every score counts
with the row's importance weight ``p_target(x) / p_labelled(x)``.
"""

import inspect
import math

import numpy as np

from ._data import epochs_for
from ._portfolio import flatten_samples
from .adaptation._instances import (
    check_domains,
    classifier_density_ratio,
    normalise_and_cap,
)

__all__ = [
    "IN_SAMPLE_NOTE",
    "VALIDATION_NOTES",
    "check_weighted_scoring",
    "target_likeness",
    "validation_splits",
    "with_adaptation_epochs",
]

# A labelled row is target-like when its density ratio p_target / p_labelled
# is at least this quantile of the unlabelled rows' own ratios: as
# target-like as 90% of the target domain.
TARGET_LIKE_QUANTILE = 0.1
# The importance weights are capped at this multiple of their mean
# (importance_weights' default).
MAX_WEIGHT = 1000.0
# Fewest target-like rows a regressor validates on (a classifier: 2 of
# every class); with fewer, every row is split.
MIN_VALIDATION_ROWS = 10

# How the cross-validation scores were obtained, as strategy_choice_reason_
# says it.
VALIDATION_NOTES = {
    "plain": "",
    "all_target_rows": (
        "; every labelled row looks like the unlabelled target rows, each "
        "scored with its importance weight"
    ),
    "target_rows": (
        "; scored on the labelled rows like the unlabelled target rows, each "
        "with its importance weight, the others always training"
    ),
    "source_data": (
        "; scored on the rows of X only, the SourceData rows training in every "
        "split (so the untouched source is not preferred within noise)"
    ),
    "weighted": (
        "; too few labelled rows look like the unlabelled target rows: every "
        "row scored with its importance weight (importance-weighted "
        "validation, an estimate)"
    ),
}

# Appended when the untouched source is near perfect on the rows scored as
# stand-ins for the target: most likely its training rows.
IN_SAMPLE_NOTE = (
    "; the untouched source is near perfect on these rows (its training "
    "rows, most likely), so its score is taken as in-sample"
)


def check_weighted_scoring(scoring):
    """Refuse a scoring callable that cannot weigh the rows' scores."""
    if scoring is None or isinstance(scoring, str):
        return
    try:
        parameters = inspect.signature(scoring).parameters
    except (TypeError, ValueError):  # no signature to read: let it try
        return
    takes_weights = "sample_weight" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )
    if not takes_weights:
        raise ValueError(
            "With unlabeled_data, AutoTransfer scores every row with its "
            "importance weight, but the scoring callable takes no "
            "sample_weight. Make it with sklearn.metrics.make_scorer, or add "
            "a sample_weight=None argument."
        )


def target_likeness(features, unlabeled_features, seed):
    """The labelled rows' importance weights, and which of them look like the target.

    Parameters
    ----------
    features, unlabeled_features : ndarray of shape (n_rows, ...)
        The frozen source's features of the labelled and unlabelled rows.
    seed : int
        Seeds the domain classifier's cross-fitting folds.

    Returns
    -------
    weights : ndarray of shape (n_labelled,)
        Density ratios toward the unlabelled rows, mean 1, capped.
    target_like : ndarray of int
        Row numbers of the labelled rows at least as target-like as 90% of
        the unlabelled rows.
    """
    features, unlabeled_features = check_domains(
        flatten_samples(features), flatten_samples(unlabeled_features)
    )
    ratio, unlabeled_ratio = classifier_density_ratio(
        features,
        unlabeled_features,
        estimator=None,
        cv=5,
        random_state=seed,
        of_target_rows=True,
    )
    threshold = np.quantile(unlabeled_ratio, TARGET_LIKE_QUANTILE)
    return normalise_and_cap(ratio, MAX_WEIGHT), np.flatnonzero(ratio >= threshold)


def validation_splits(
    make_cv, y, y_encoded, target_like, seed, *, classification, source_rows=False
):
    """The cross-validation splits and how they score (a key of VALIDATION_NOTES).

    Parameters
    ----------
    make_cv : callable
        ``make_cv(y, y_encoded, seed)``: the estimator's cross-validation
        over these rows.
    y, y_encoded : ndarray
    target_like : ndarray of int or None
        See :func:`target_likeness`; None without unlabelled rows; empty to
        split and weight every row.
    seed : int
    classification : bool
    source_rows : bool, default=False
        The rows not in ``target_like`` are ``SourceData``'s: ``cv`` splits
        ``target_like`` (the fit's X), whatever their number.

    Returns
    -------
    splits : list of (train, test)
        With target-like rows to split: ``cv`` splits them, and every other
        row trains in every split. Otherwise ``cv`` splits every row.
    validation : str
    """
    stratify = y_encoded if classification else y
    if source_rows:
        return _splits_over(make_cv, y, y_encoded, stratify, target_like, seed), (
            "source_data"
        )
    if target_like is None:
        validation = "plain"
    elif len(target_like) == len(y):
        validation = "all_target_rows"
    elif _enough_to_validate(y_encoded, target_like, classification):
        return _splits_over(make_cv, y, y_encoded, stratify, target_like, seed), (
            "target_rows"
        )
    else:
        validation = "weighted"
    cv = make_cv(y, y_encoded, seed)
    return list(cv.split(stratify, stratify)), validation


def _splits_over(make_cv, y, y_encoded, stratify, rows, seed):
    """``cv`` over ``rows``; every other row trains in every split."""
    cv = make_cv(y[rows], y_encoded[rows], seed)
    others = np.setdiff1d(np.arange(len(y)), rows)
    return [
        (np.sort(np.concatenate([others, rows[train]])), rows[test])
        for train, test in cv.split(stratify[rows], stratify[rows])
    ]


def _enough_to_validate(y_encoded, rows, classification):
    if classification:
        counts = np.bincount(y_encoded[rows], minlength=int(y_encoded.max()) + 1)
        return bool(counts.min() >= 2)
    return len(rows) >= MIN_VALIDATION_ROWS


def with_adaptation_epochs(estimator, max_epochs, n_labelled, n_unlabeled):
    """``estimator`` set to train as many gradient steps as a fine-tune.

    An adaptation epoch covers the unlabelled rows too (one unlabelled batch
    per step): with many of them, the ``"auto"`` epochs of the adaptation
    estimator would train several times longer than the fine-tuning
    candidate it is compared with. ``max_epochs`` (AutoTransfer's) other
    than None / "auto" is kept.
    """
    if max_epochs not in (None, "auto"):
        return estimator.set_params(max_epochs=max_epochs)
    labelled = math.ceil(n_labelled / estimator.batch_size)
    covering = max(labelled, math.ceil(n_unlabeled / estimator.batch_size))
    steps = epochs_for("auto", labelled) * labelled
    return estimator.set_params(max_epochs=max(1, math.ceil(steps / covering)))

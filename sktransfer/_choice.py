"""How AutoTransfer* chooses among its cross-validated candidates.

The best mean score wins, unless the untouched source is within one standard
error of it (it trains nothing: the safe choice within noise; not so when
every candidate trains on the source's own rows, ``SourceData``); when others
are within noise of the best, their calibrated average is chosen if it
scores higher than the best alone. A source scored on rows it learned
(near perfect, no target label) is not ranked by that in-sample score.
"""

import math

import numpy as np

from ._portfolio import FAMILIES, Candidate, calibrating_temperature, score_average

__all__ = [
    "MAX_AVERAGED",
    "NEAR_PERFECT",
    "average_within_noise",
    "choose",
    "in_sample_source",
    "usable_rows",
    "within_noise",
]

# At most this many candidates are averaged when the best is not alone
# within noise (see average_within_noise).
MAX_AVERAGED = 3
# An untouched source this accurate on the rows scored as stand-ins for the
# target has most likely learned them (its training rows: 0.997 to 1.000 at
# k = 0 on the adaptation benchmark; the candidates that train 0.92 to
# 0.999 out of fold); see in_sample_source.
NEAR_PERFECT = 0.99


def usable_rows(scores, excluded=()):
    """The candidates' rows scored on every split (a failed fit scores NaN).

    The rows in ``excluded`` are left out too.
    """
    return [
        i
        for i in range(len(scores))
        if not np.isnan(scores[i]).any() and i not in excluded
    ]


def _best(candidates, rows, means):
    """The row of the best mean; a tie goes to the safer (earlier) candidate."""
    return max(rows, key=lambda i: (means[i], [-x for x in candidates[i].safety]))


def average_within_noise(
    candidates, scores, fit_times, predictions, evaluation, best, reason, excluded=()
):
    """The best candidate, or its average with those within noise of it.

    The candidates within one standard error of the best (see
    :func:`choose`), at most two, the best first, are averaged with it
    (class probabilities, each first tempered to be calibrated on the
    splits' predictions, or predicted values): when cross-validation cannot
    tell them apart, choosing one is a coin toss, and their average is
    often better than either. The average is scored on every split from the
    predictions its members made there (no other fit) and added as the last
    candidate; it is chosen only when its mean score is higher than the
    best's (a tie goes to the single best, the safer). The temperatures
    that score split ``k`` are fitted without its test rows; those of the
    refitted average, on every split. ``evaluation`` is
    ``(data, splits, scorer)`` of the cross-validation; ``reason`` why the
    best was chosen (:func:`choose`'s); the rows in ``excluded`` are never
    averaged (an in-sample source). Returns the
    candidates, scores and fit times, the chosen row and the reason.
    """
    data, splits, scorer = evaluation
    usable = usable_rows(scores, excluded)
    by_mean = sorted(usable, key=lambda i: -float(scores[i].mean()))
    close = [
        i
        for i in by_mean
        if i != best and within_noise(scores[best], scores[i], splits)
    ]
    members = [best, *close[: MAX_AVERAGED - 1]]
    if len(members) == 1:
        return candidates, scores, fit_times, best, reason
    classification = data.classes is not None
    params = {}
    if classification:
        # Those of the refitted average: from every split's predictions.
        params["temperatures"] = tuple(
            _temperature(predictions[i], data, splits) for i in members
        )
    averaged = Candidate(
        "ensemble",
        params=params,
        safety=(FAMILIES.index("ensemble"),),
        members=tuple(candidates[i] for i in members),
    )
    # Each split's score tempers with temperatures fitted without its test
    # rows: fitted on them, the average would be judged on the rows that
    # tuned it.
    averaged_scores = np.array(
        [
            score_average(
                [predictions[i][k] for i in members],
                data,
                test,
                scorer,
                temperatures=(
                    [_temperature(predictions[i], data, splits, k) for i in members]
                    if classification
                    else None
                ),
            )
            for k, (_, test) in enumerate(splits)
        ]
    )
    candidates = [*candidates, averaged]
    scores = np.vstack([scores, averaged_scores])
    fit_times = np.vstack([fit_times, fit_times[members].sum(axis=0)])
    peers = ", ".join(candidates[i].name for i in members[1:])
    if averaged_scores.mean() <= scores[best].mean():
        # A tie goes to the safer candidate, as everywhere: the single best.
        reason += (
            f"; its average with {peers}, within one standard error of it, "
            f"scored {averaged_scores.mean():.3f}, no better"
        )
        return candidates, scores, fit_times, best, reason
    reason = (
        f"{peers} within one standard error of the best "
        f"({candidates[best].name}, {scores[best].mean():.3f}): their average "
        f"scored higher ({averaged_scores.mean():.3f})"
    )
    return candidates, scores, fit_times, len(candidates) - 1, reason


def _temperature(predictions, data, splits, held_out=None):
    """A candidate's calibrating temperature, from its predictions on the splits.

    ``predictions[k]``: its class probabilities on the test rows of split
    ``k``. With ``held_out`` (a split number), that split and every row of
    its test set are left out.
    """
    probabilities, rows = [], []
    excluded = [] if held_out is None else splits[held_out][1]
    for k, (_, test) in enumerate(splits):
        if k == held_out:
            continue
        kept = ~np.isin(test, excluded)
        probabilities.append(predictions[k][kept])
        rows.append(test[kept])
    rows = np.concatenate(rows)
    weights = None if data.scoring_weights is None else data.scoring_weights[rows]
    return calibrating_temperature(
        np.concatenate(probabilities),
        np.searchsorted(data.classes, data.y[rows]),
        sample_weight=weights,
    )


def within_noise(best_scores, scores, splits):
    """Whether ``scores`` are within one standard error of ``best_scores``.

    The mean of the per-split differences is at most one standard error of
    that mean, with the variance corrected for the overlap of
    cross-validation training sets (Nadeau and Bengio's
    ``1/J + n_test/n_train``).
    """
    n_train = np.mean([len(train) for train, _ in splits])
    n_test = np.mean([len(test) for _, test in splits])
    difference = best_scores - scores
    n_splits = len(difference)
    spread = difference.var(ddof=1) if n_splits > 1 else 0.0
    return difference.mean() <= math.sqrt(spread * (1 / n_splits + n_test / n_train))


def in_sample_source(candidates, scores):
    """The untouched source's row when it scores :data:`NEAR_PERFECT` or more.

    For scores that are accuracies on rows scored as stand-ins for the
    target, without a target label: that near perfect, the source has most
    likely learned them, and its score is in-sample. None otherwise, or
    without a usable source row.
    """
    for i in usable_rows(scores):
        if candidates[i].family == "source":
            return i if scores[i].mean() >= NEAR_PERFECT else None
    return None


def choose(candidates, scores, splits, in_sample_row=None, prefer_source=True):
    """The best candidate, or the untouched source when it is as good within noise.

    The best candidate has the highest mean score over the splits (ties go
    to the safer, earlier in :data:`~sktransfer._portfolio.FAMILIES`). The
    untouched source is chosen instead when it is within noise of the best:
    the mean of their per-split differences is at most one standard error
    of that mean, with the variance corrected for the overlap of
    cross-validation training sets (Nadeau and Bengio's
    ``1/J + n_test/n_train``). It trains nothing, so it cannot lose what
    the user had. Between trained candidates, preferring the simplest one
    within noise cost 0.025 of accuracy on average on the accuracy suite,
    the best mean 0.008, and the best or its calibrated average with those
    within noise of it (:func:`average_within_noise`) 0.0046.

    With ``prefer_source=False`` the best mean wins, the untouched source
    included. That is for candidates that all train on the rows the source
    learned from (``SourceData``): none forgets what the user had, so the
    source's one claim within noise is gone, while the few target rows
    scored make one standard error wide. On the adaptation benchmark
    (MNIST-1D, 30 target rows) the preference kept the source in 2 of 5
    seeds where the candidate that cross-validated best scored 0.059 and
    0.043 higher on the test rows (0.598 against 0.539, 0.611 against
    0.568).

    ``in_sample_row``, the row of an untouched source whose scores are
    in-sample (see :func:`in_sample_source`), is not ranked by them; see
    :func:`_past_in_sample_source`. Returns the chosen row, the best row
    (the one others are averaged with) and the reason.
    """
    usable = usable_rows(scores)
    means = {i: float(scores[i].mean()) for i in usable}
    if in_sample_row is not None:
        return _past_in_sample_source(candidates, usable, means, in_sample_row)
    best = _best(candidates, usable, means)
    chosen = best
    for i in usable:
        if not prefer_source or candidates[i].family != "source" or i == best:
            continue
        if within_noise(scores[best], scores[i], splits):
            chosen = i
    if chosen == best:
        reason = f"best mean score ({means[best]:.3f})"
    else:
        reason = (
            f"the untouched source ({means[chosen]:.3f}) is within one standard "
            f"error of the best ({candidates[best].name}, {means[best]:.3f}), "
            "and trains nothing"
        )
    return chosen, best, reason


def _past_in_sample_source(candidates, usable, means, source):
    """The choice when the untouched source was scored on rows it learned.

    Its scores are then in-sample, optimistic by an unknown amount: no
    candidate that trains, scored out of fold, can beat them, and one that
    learned the rows as well still falls a little short on every split. So
    they do not rank it. The best candidate that trains is chosen when it
    too scores :data:`NEAR_PERFECT` or more, out of fold (what marks the
    source's score as in-sample: it kept what the source knew on these
    rows); the untouched source stays otherwise. On the adaptation
    benchmark's two classification tasks at k = 0 (no target label; the
    source scores 0.997 to 1.000 on its training rows) this chose
    fine-tuning in every seed: target accuracy 0.574 against the source's
    0.557 (MNIST-1D), 0.621 against 0.622 (digits), 5 seeds.
    """
    trained = [i for i in usable if candidates[i].family != "source"]
    if not trained:
        return source, source, f"the only usable candidate ({means[source]:.3f})"
    best = _best(candidates, trained, means)
    if means[best] >= NEAR_PERFECT:
        reason = (
            f"best mean score of the candidates that train ({means[best]:.3f}), "
            f"near perfect like the untouched source's in-sample "
            f"{means[source]:.3f}"
        )
        return best, best, reason
    reason = (
        f"the untouched source's in-sample score ({means[source]:.3f}) is near "
        "perfect, the best candidate that trains is not "
        f"({candidates[best].name}, {means[best]:.3f})"
    )
    return source, source, reason

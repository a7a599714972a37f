"""Reuse the source head only on evidence that its outputs mean the target's.

Equal widths prove nothing: a source trained on the digits 0-4 has five
outputs, like a target of the digits 5-9, and reusing its head there costs
far more than starting a new one. ``head="auto"`` therefore reuses the source
head only when

- ``source_classes`` names the label of every output and covers the classes
  of ``y`` (the rows of those classes are kept), or
- the source's own predictions on the training data agree with ``y``, output
  ``i`` read as ``classes_[i]``, far above chance (classification), or
  correlate with ``y`` (regression): :func:`classification_evidence`,
  :func:`regression_evidence`.

Otherwise a new head is put on the body.
"""

from typing import NamedTuple

import numpy as np
from scipy import stats

__all__ = [
    "MIN_CORRELATION",
    "MIN_KAPPA",
    "SIGNIFICANCE",
    "Evidence",
    "HeadDecision",
    "classification_evidence",
    "regression_evidence",
]

# Level of the one-sided tests below.
SIGNIFICANCE = 0.01
# Cohen's kappa a classification source must reach on top of significance:
# with many samples, a slight, significant agreement (coincidental confusions
# of another label space) is no evidence that output i means class i.
MIN_KAPPA = 0.1
# Pearson correlation a regression source must reach for every target column.
MIN_CORRELATION = 0.3


class HeadDecision(NamedTuple):
    """Which head the target network gets, and why.

    Attributes
    ----------
    reuse : bool
        True keeps the source head; False puts a new one on the body.
    rows : list of int or None
        The source head's outputs a reused head keeps, in ``classes_`` order;
        None keeps every output, matched by position.
    reason : str
        One sentence for ``head_choice_reason_``.
    """

    reuse: bool
    rows: list | None
    reason: str


class Evidence(NamedTuple):
    """What the source's predictions on the training data say of its head.

    Attributes
    ----------
    agrees : bool
        The outputs mean the target's classes (or columns): significant, and
        a large enough effect.
    weak : bool
        The effect alone (kappa, or the smallest correlation) is below its
        floor, whatever the number of samples: the outputs probably mean
        something else.
    description : str
        The figures behind the answer, for ``head_choice_reason_``.
    """

    agrees: bool
    weak: bool
    description: str


def classification_evidence(source_outputs, y_encoded, n_classes):
    """Does output ``i`` of the source mean class ``i`` of ``y``?

    The source's predicted class (the argmax of its outputs) is compared
    with ``y``. Under the hypothesis that the outputs mean something else,
    predictions and labels are independent, and they agree on a share
    ``chance = Σ_c P(predicted = c) · P(y = c)`` of the samples. The head is
    taken to mean the target's classes when the observed agreement exceeds
    that with a one-sided exact binomial test at level :data:`SIGNIFICANCE`
    *and* Cohen's kappa, ``(agreement − chance) / (1 − chance)``, is at
    least :data:`MIN_KAPPA`.

    Parameters
    ----------
    source_outputs : ndarray of shape (n_samples, n_classes)
        The source's logits on the training inputs.
    y_encoded : ndarray of shape (n_samples,)
        Labels encoded as ``0 .. n_classes - 1``.
    n_classes : int

    Returns
    -------
    evidence : Evidence
    """
    predicted = np.asarray(source_outputs).argmax(axis=1)
    y_encoded = np.asarray(y_encoded)
    n_samples = y_encoded.shape[0]
    hits = int((predicted == y_encoded).sum())
    agreement = hits / n_samples
    predicted_share = np.bincount(predicted, minlength=n_classes) / n_samples
    label_share = np.bincount(y_encoded, minlength=n_classes) / n_samples
    chance = float(predicted_share @ label_share)
    if chance >= 1.0:
        kappa, p_value = 0.0, 1.0
    else:
        kappa = (agreement - chance) / (1.0 - chance)
        p_value = (
            float(
                stats.binomtest(hits, n_samples, chance, alternative="greater").pvalue
            )
            if chance > 0
            else 1.0
        )
    weak = not kappa >= MIN_KAPPA
    agrees = p_value < SIGNIFICANCE and not weak
    description = (
        f"the source's predictions, output i read as classes_[i], agree with y "
        f"on {agreement:.0%} of {n_samples} training samples (chance "
        f"{chance:.0%}, Cohen's kappa {kappa:.2f}, one-sided binomial "
        f"p={p_value:.2g})"
    )
    return Evidence(agrees, weak, description)


def regression_evidence(source_outputs, y):
    """Does output ``j`` of the source predict target column ``j``?

    For every target column, the Pearson correlation between the source's
    output and the target must be at least :data:`MIN_CORRELATION` and
    significantly positive (one-sided test at level :data:`SIGNIFICANCE`).

    Parameters
    ----------
    source_outputs : ndarray of shape (n_samples, n_outputs)
    y : ndarray of shape (n_samples, n_outputs)

    Returns
    -------
    evidence : Evidence
    """
    source_outputs = np.asarray(source_outputs, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(source_outputs.shape[0], -1)
    n_samples = y.shape[0]
    correlations, p_values = [], []
    for column in range(y.shape[1]):
        prediction, target = source_outputs[:, column], y[:, column]
        if n_samples < 3 or np.ptp(prediction) == 0 or np.ptp(target) == 0:
            correlations.append(np.nan)
            p_values.append(1.0)
            continue
        result = stats.pearsonr(prediction, target, alternative="greater")
        correlations.append(float(result.statistic))
        p_values.append(float(result.pvalue))
    weak = not all(correlation >= MIN_CORRELATION for correlation in correlations)
    agrees = not weak and all(p_value < SIGNIFICANCE for p_value in p_values)
    shown = ", ".join(f"{c:.2f}" for c in correlations)
    description = (
        f"the source's outputs correlate with y on {n_samples} training samples "
        f"with Pearson r = {shown} (one-sided p = "
        + ", ".join(f"{p:.2g}" for p in p_values)
        + ")"
    )
    return Evidence(agrees, weak, description)

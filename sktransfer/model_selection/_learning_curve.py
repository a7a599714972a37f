"""Score against the number of target samples, for transfer and baseline."""

import time

import numpy as np
from sklearn.base import is_classifier
from sklearn.model_selection import check_cv, learning_curve
from sklearn.utils import check_random_state

from .._progress import report_strategy
from ._compare import named_estimators

__all__ = ["TransferLearningCurve", "transfer_learning_curve"]


class TransferLearningCurve:
    """What :func:`transfer_learning_curve` measured.

    Attributes
    ----------
    train_sizes : ndarray of shape (n_sizes,)
        Numbers of target training samples.
    test_scores : dict of str to ndarray of shape (n_sizes, n_folds)
        Per strategy, the test score of each fold at each size.
    baseline : str
    scoring : str or None
        The metric (None: the estimators' ``score``).
    """

    def __init__(self, train_sizes, test_scores, baseline, scoring):
        self.train_sizes = train_sizes
        self.test_scores = test_scores
        self.baseline = baseline
        self.scoring = scoring

    def to_frame(self):
        """Long-format DataFrame: strategy, train_size, mean, std (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - exercised without pandas
            raise ImportError("to_frame() needs pandas: pip install pandas") from exc
        return pd.DataFrame(self._rows())

    def _rows(self):
        return [
            {
                "strategy": name,
                "train_size": int(size),
                "mean": float(np.nanmean(scores[i])),
                "std": float(np.nanstd(scores[i])),
            }
            for name, scores in self.test_scores.items()
            for i, size in enumerate(self.train_sizes)
        ]

    def __repr__(self):
        names = list(self.test_scores)
        header = ["train_size", *names]
        rows = [header]
        for i, size in enumerate(self.train_sizes):
            scores = [self.test_scores[name][i] for name in names]
            rows.append(
                [
                    str(int(size)),
                    *(f"{np.nanmean(s):.3f} ± {np.nanstd(s):.3f}" for s in scores),
                ]
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = [
            "  ".join(
                cell.ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
            for row in rows
        ]
        lines.insert(1, "  ".join("-" * width for width in widths))
        return "\n".join(lines)

    def plot(self, ax=None):
        """Mean test score against training size, with a ±1 std band.

        The baseline is drawn dashed. Needs matplotlib
        (``pip install sktransfer[plot]``).

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Where to draw; a new figure when None.

        Returns
        -------
        ax : matplotlib Axes
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError(
                "plot() needs matplotlib: pip install sktransfer[plot]"
            ) from exc
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        for name, scores in self.test_scores.items():
            mean = np.nanmean(scores, axis=1)
            std = np.nanstd(scores, axis=1)
            style = "--" if name == self.baseline else "-"
            (line,) = ax.plot(self.train_sizes, mean, style, marker="o", label=name)
            ax.fill_between(
                self.train_sizes,
                mean - std,
                mean + std,
                alpha=0.2,
                color=line.get_color(),
            )
        ax.set_xlabel("target training samples")
        ax.set_ylabel(self.scoring or "score")
        ax.legend()
        ax.grid(alpha=0.3)
        return ax


def transfer_learning_curve(
    estimators,
    X,
    y,
    *,
    baseline,
    train_sizes=(0.1, 0.25, 0.5, 1.0),
    cv=5,
    scoring=None,
    groups=None,
    n_jobs=None,
    random_state=0,
    params=None,
    verbose=0,
):
    """Test score against the number of target samples, per strategy.

    Transfer pays off most when target data are scarce. This runs
    :func:`sklearn.model_selection.learning_curve` for every strategy and the
    baseline with the *same* folds and the *same* training subsets, so the
    curves can be compared point by point.

    Parameters
    ----------
    estimators : dict of str to estimator, or list of (str, estimator)
    X : array-like of shape (n_samples, ...)
    y : array-like of shape (n_samples,)
    baseline : str or estimator
        The name of one of ``estimators``, or a separate estimator (then
        called ``"baseline"``).
    train_sizes : array-like, default=(0.1, 0.25, 0.5, 1.0)
        Fractions (floats in (0, 1]) of a training fold, or absolute numbers
        of samples (ints).
    cv : int, cross-validation generator or iterable, default=5
    scoring : str or None, default=None
        One metric; None uses each estimator's ``score``.
    groups : array-like of shape (n_samples,), default=None
    n_jobs : int or None, default=None
    random_state : int, RandomState instance or None, default=0
        Fixes which samples form each training subset; the subsets are the
        same for every strategy in any case.
    params : dict or None, default=None
        Fit parameters passed to every estimator.
    verbose : int, default=0
        0 prints nothing; 1 prints a line as each strategy finishes, with its
        mean score at each training size and how long it took; 2 and more
        also passes ``verbose`` to
        :func:`~sklearn.model_selection.learning_curve`, which then reports
        every fit.

    Returns
    -------
    curve : TransferLearningCurve
        Prints as a table; ``plot()`` draws it; ``to_frame()``.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.dummy import DummyClassifier
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer.model_selection import transfer_learning_curve
    >>> X, y = load_iris(return_X_y=True)
    >>> curve = transfer_learning_curve(
    ...     {"logistic": LogisticRegression(max_iter=500)}, X, y,
    ...     baseline=DummyClassifier(), train_sizes=[30, 100], cv=3)
    >>> curve.train_sizes
    array([ 30, 100])
    >>> curve.test_scores["logistic"].shape
    (2, 3)
    """
    named, baseline_name = named_estimators(estimators, baseline)
    first = next(iter(named.values()))
    splits = list(check_cv(cv, y, classifier=is_classifier(first)).split(X, y, groups))
    # Shuffle each training fold once, so every strategy trains on the same
    # subsets whatever random_state is (None or a RandomState included).
    rng = check_random_state(random_state)
    splits = [(rng.permutation(train), test) for train, test in splits]
    test_scores = {}
    sizes = None
    for position, (name, estimator) in enumerate(named.items(), start=1):
        start = time.perf_counter()
        sizes, _, test = learning_curve(
            estimator,
            X,
            y,
            train_sizes=train_sizes,
            cv=splits,
            scoring=scoring,
            n_jobs=n_jobs,
            shuffle=False,
            error_score=np.nan,
            params=params,
            verbose=verbose if verbose > 1 else 0,
        )
        test_scores[name] = test
        if verbose:
            means = ", ".join(
                f"{mean:.3f} at {size}"
                for mean, size in zip(np.nanmean(test, axis=1), sizes, strict=True)
            )
            report_strategy(
                "transfer_learning_curve",
                position,
                len(named),
                name,
                f"{scoring or 'score'} {means}",
                time.perf_counter() - start,
            )
    return TransferLearningCurve(sizes, test_scores, baseline_name, scoring)

"""Cross-validate transfer strategies against a baseline on the same splits."""

import time
import warnings

import numpy as np
from scipy import stats
from sklearn.base import is_classifier
from sklearn.model_selection import check_cv, cross_validate
from sklearn.utils.multiclass import type_of_target

from .._progress import report_strategy

__all__ = [
    "NegativeTransferWarning",
    "StrategyComparison",
    "compare_strategies",
    "corrected_paired_ttest",
    "summarize_scores",
]


class NegativeTransferWarning(UserWarning):
    """A transfer strategy scored significantly worse than the baseline."""


def named_estimators(estimators, baseline):
    named = dict(estimators)
    if isinstance(baseline, str):
        if baseline not in named:
            raise ValueError(
                f"baseline={baseline!r} is not one of the estimators' names: "
                f"{list(named)}."
            )
        return named, baseline
    if "baseline" in named:
        raise ValueError(
            "baseline is an estimator but another estimator is already called "
            "'baseline'; pass the baseline's name instead."
        )
    return {"baseline": baseline, **named}, "baseline"


def default_scoring(estimators, y):
    """Metrics that are defined for this task and these estimators."""
    if not all(is_classifier(est) for est in estimators):
        return ["r2", "neg_mean_squared_error", "neg_mean_absolute_error"]
    scoring = ["accuracy", "balanced_accuracy", "f1_macro"]
    binary = type_of_target(y) == "binary"
    # The multiclass ROC AUC scorer needs probabilities; binary can rank.
    methods = ["predict_proba", "decision_function"] if binary else ["predict_proba"]
    if all(any(hasattr(est, method) for method in methods) for est in estimators):
        scoring.append("roc_auc" if binary else "roc_auc_ovr")
    return scoring


def corrected_paired_ttest(differences, n_train, n_test):
    """Nadeau & Bengio's corrected resampled t-test on per-fold differences.

    Cross-validation folds share training data, so their scores are
    correlated and the plain paired t-test is far too optimistic. The
    correction inflates the variance by ``1/k + n_test/n_train``.

    Parameters
    ----------
    differences : ndarray of shape (n_folds,)
        Score of a strategy minus score of the baseline, per fold.
    n_train, n_test : int
        Sizes of a training and a test fold.

    Returns
    -------
    t_statistic, p_value : float
        Two-sided p-value; NaN when every difference is equal.

    References
    ----------
    Nadeau & Bengio, "Inference for the Generalization Error", Machine
    Learning 52, 2003.
    """
    differences = np.asarray(differences, dtype=float)
    n_folds = differences.shape[0]
    if n_folds < 2:
        return np.nan, np.nan
    variance = differences.var(ddof=1)
    if not np.isfinite(variance) or variance == 0:
        return np.nan, np.nan
    corrected = variance * (1 / n_folds + n_test / n_train)
    t_statistic = differences.mean() / np.sqrt(corrected)
    p_value = 2 * stats.t.sf(np.abs(t_statistic), df=n_folds - 1)
    return float(t_statistic), float(p_value)


class StrategyComparison:
    """What :func:`compare_strategies` found.

    Attributes
    ----------
    scores : dict of str to dict of str to ndarray
        Per strategy, per metric (and ``fit_time``), the score of each fold.
    summary : list of dict
        One row per strategy and metric: ``strategy``, ``metric``, ``mean``,
        ``std``, and against the baseline ``difference`` (mean of per-fold
        differences), ``t_statistic`` and ``p_value``.
    baseline : str
    metrics : list of str
        The first one decides the negative-transfer warning.
    negative_transfer : list of str
        Strategies significantly worse than the baseline on ``metrics[0]``.
    alpha : float
    """

    def __init__(self, scores, summary, baseline, metrics, negative_transfer, alpha):
        self.scores = scores
        self.summary = summary
        self.baseline = baseline
        self.metrics = metrics
        self.negative_transfer = negative_transfer
        self.alpha = alpha

    def to_frame(self):
        """The summary as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - exercised without pandas
            raise ImportError("to_frame() needs pandas: pip install pandas") from exc
        return pd.DataFrame(self.summary).set_index(["strategy", "metric"])

    def plot(self, ax=None, metric=None):
        """Mean score of each strategy with ±1 std error bars, baseline marked.

        One row per strategy, in the order they were compared; the score of
        each fold is drawn as a small dot beside the mean. The baseline is
        drawn in grey, with a dashed line at its mean score, so a strategy
        right of the line (left, for a metric where lower is better, such as
        ``fit_time``) beats it on average; strategies with significant
        negative transfer are labelled so. Needs matplotlib
        (``pip install sktransfer[plot]``).

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Where to draw; a new figure when None.
        metric : str, default=None
            One of ``metrics`` or ``"fit_time"``; None draws ``metrics[0]``,
            the metric of the negative-transfer test.

        Returns
        -------
        ax : matplotlib Axes
        """
        metric = self.metrics[0] if metric is None else metric
        if metric not in [*self.metrics, "fit_time"]:
            raise ValueError(
                f"metric={metric!r} was not measured; choose one of "
                f"{[*self.metrics, 'fit_time']}."
            )
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError(
                "plot() needs matplotlib: pip install sktransfer[plot]"
            ) from exc
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 1.2 + 0.5 * len(self.scores)))
        names = list(self.scores)
        positions = np.arange(len(names))[::-1]
        for position, name in zip(positions, names, strict=True):
            row = self._row(name, metric)
            color = "grey" if name == self.baseline else "C0"
            ax.errorbar(
                row["mean"],
                position,
                xerr=row["std"],
                fmt="o",
                color=color,
                capsize=4,
            )
            folds = self.scores[name][metric]
            ax.plot(
                folds,
                np.full(len(folds), position - 0.2),
                "|",
                color=color,
                alpha=0.6,
            )
        ax.axvline(
            self._row(self.baseline, metric)["mean"],
            color="grey",
            linestyle="--",
            linewidth=1,
        )
        labels = [
            f"{name} (baseline)"
            if name == self.baseline
            else f"{name} (negative transfer)"
            if metric == self.metrics[0] and name in self.negative_transfer
            else name
            for name in names
        ]
        ax.set_yticks(positions, labels=labels)
        ax.set_ylim(-0.6, len(names) - 0.4)
        ax.set_xlabel(
            "fit time (s)"
            if metric == "fit_time"
            else f"{metric}, mean ± std over folds"
        )
        ax.grid(axis="x", alpha=0.3)
        return ax

    def _row(self, strategy, metric):
        return next(
            row
            for row in self.summary
            if row["strategy"] == strategy and row["metric"] == metric
        )

    def __repr__(self):
        primary = self.metrics[0]
        header = ["strategy", *self.metrics, f"Δ {primary}", "p", "fit_time (s)"]
        rows = [header]
        for strategy in self.scores:
            is_baseline = strategy == self.baseline
            cells = [strategy + (" (baseline)" if is_baseline else "")]
            for metric in self.metrics:
                row = self._row(strategy, metric)
                cells.append(f"{row['mean']:.3f} ± {row['std']:.3f}")
            row = self._row(strategy, primary)
            cells.append("" if is_baseline else f"{row['difference']:+.3f}")
            p_value = row["p_value"]
            cells.append("" if np.isnan(p_value) else f"{p_value:.3f}")
            cells.append(f"{self._row(strategy, 'fit_time')['mean']:.3g}")
            rows.append(cells)
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = [
            "  ".join(
                cell.ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
            for row in rows
        ]
        lines.insert(1, "  ".join("-" * width for width in widths))
        if self.negative_transfer:
            lines.append(
                f"Negative transfer (worse than {self.baseline!r} on {primary}, "
                f"p < {self.alpha}): " + ", ".join(self.negative_transfer)
            )
        return "\n".join(lines)


def compare_strategies(
    estimators,
    X,
    y,
    *,
    baseline,
    cv=5,
    scoring=None,
    groups=None,
    n_jobs=None,
    params=None,
    strategy_params=None,
    alpha=0.05,
    error_score=np.nan,
    verbose=0,
):
    """Cross-validate transfer strategies and a baseline on the same splits.

    Every estimator is scored with :func:`sklearn.model_selection.cross_validate`
    on identical folds, so their per-fold scores can be compared in pairs.
    Each strategy's per-fold difference to the baseline is tested with the
    corrected resampled t-test (:func:`corrected_paired_ttest`); a strategy
    significantly *worse* than the baseline on the first metric raises a
    :class:`NegativeTransferWarning`.

    Parameters
    ----------
    estimators : dict of str to estimator, or list of (str, estimator)
        The strategies, by name.
    X : array-like of shape (n_samples, ...)
    y : array-like of shape (n_samples,)
    baseline : str or estimator
        The name of one of ``estimators``, or a separate estimator (then
        called ``"baseline"``), typically a model trained from scratch, e.g.
        ``FineTunedClassifier(source, reinitialize=True)``.
    cv : int, cross-validation generator or iterable, default=5
        As in scikit-learn; an int gives (stratified, for classifiers)
        K-fold. The splits are drawn once and reused for every estimator.
    scoring : str, list of str or None, default=None
        Metrics; the first decides the negative-transfer warning. None picks
        accuracy, balanced accuracy, macro F1 and ROC AUC (where every
        estimator can score probabilities) for classifiers; R², negated MSE
        and negated MAE for regressors.
    groups : array-like of shape (n_samples,), default=None
        Group labels for group-aware splitters.
    n_jobs : int or None, default=None
        Folds fitted in parallel (per estimator), through joblib.
    params : dict or None, default=None
        Fit parameters passed to every estimator's ``fit``.
    strategy_params : dict of str to dict, or None, default=None
        Further fit parameters for some strategies only, by name, e.g.
        ``{"joint": {"source_data": SourceData(X_source, y_source)}}`` for a
        :class:`~sktransfer.JointTrainingClassifier` called ``"joint"``; they
        are added to ``params`` for that strategy.
    alpha : float, default=0.05
        Significance level of the negative-transfer warning.
    error_score : "raise" or float, default=np.nan
        Score of a fold whose fit fails.
    verbose : int, default=0
        0 prints nothing; 1 prints a line as each strategy finishes, with its
        mean score and how long it took; 2 and more also passes ``verbose``
        to :func:`~sklearn.model_selection.cross_validate`, which then
        reports every fold (3: with its scores).

    Returns
    -------
    comparison : StrategyComparison
        Prints as a table; ``to_frame()`` gives a DataFrame.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.dummy import DummyClassifier
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer.model_selection import compare_strategies
    >>> X, y = load_iris(return_X_y=True)
    >>> result = compare_strategies(
    ...     {"logistic": LogisticRegression(max_iter=500)}, X, y,
    ...     baseline=DummyClassifier(), scoring="accuracy", cv=3)
    >>> result.negative_transfer
    []
    >>> print(result)  # doctest: +NORMALIZE_WHITESPACE +ELLIPSIS
    strategy             accuracy       Δ accuracy  p      fit_time (s)
    -------------------  -------------  ----------  -----  ------------
    baseline (baseline)  0.320 ± 0.000                     ...
    logistic             0.973 ± 0.009  +0.653      0.000  ...
    """
    named, baseline_name = named_estimators(estimators, baseline)
    strategy_params = dict(strategy_params or {})
    unknown = sorted(set(strategy_params) - set(named))
    if unknown:
        raise ValueError(
            f"strategy_params names {unknown}, which are not among the "
            f"strategies {list(named)}."
        )
    first = next(iter(named.values()))
    splitter = check_cv(cv, y, classifier=is_classifier(first))
    splits = list(splitter.split(X, y, groups))
    if scoring is None:
        metrics = default_scoring(list(named.values()), y)
    elif isinstance(scoring, str):
        metrics = [scoring]
    else:
        metrics = list(scoring)

    scores = {}
    for position, (name, estimator) in enumerate(named.items(), start=1):
        start = time.perf_counter()
        result = cross_validate(
            estimator,
            X,
            y,
            cv=splits,
            scoring=metrics,
            n_jobs=n_jobs,
            params=(
                {**(params or {}), **strategy_params[name]}
                if name in strategy_params
                else params
            ),
            error_score=error_score,
            verbose=verbose if verbose > 1 else 0,
        )
        scores[name] = {metric: result[f"test_{metric}"] for metric in metrics} | {
            "fit_time": result["fit_time"]
        }
        if verbose:
            primary = scores[name][metrics[0]]
            report_strategy(
                "compare_strategies",
                position,
                len(named),
                name,
                f"{metrics[0]} {np.mean(primary):.3f} ± {np.std(primary):.3f}",
                time.perf_counter() - start,
            )

    n_train = np.mean([len(train) for train, _ in splits])
    n_test = np.mean([len(test) for _, test in splits])
    return summarize_scores(scores, baseline_name, metrics, n_train, n_test, alpha)


def summarize_scores(scores, baseline, metrics, n_train, n_test, alpha=0.05, warn=True):
    """A :class:`StrategyComparison` of per-fold scores on shared splits.

    Warns (when ``warn``) with :class:`NegativeTransferWarning` for every
    strategy significantly worse than ``baseline`` on ``metrics[0]``.

    Parameters
    ----------
    scores : dict of str to dict of str to ndarray
        Per strategy, per metric and ``"fit_time"``, one value per split;
        the splits are the same for every strategy.
    baseline : str
        One of the strategies.
    metrics : list of str
    n_train, n_test : float
        Mean sizes of a training and a test split (for the corrected test).
    alpha : float, default=0.05
    warn : bool, default=True
    """
    baseline_name = baseline
    named = list(scores)
    summary = []
    negative_transfer = []
    for name in named:
        for metric in [*metrics, "fit_time"]:
            values = scores[name][metric]
            differences = values - scores[baseline_name][metric]
            if name == baseline_name:
                t_statistic = p_value = np.nan
            else:
                t_statistic, p_value = corrected_paired_ttest(
                    differences, n_train, n_test
                )
            summary.append(
                {
                    "strategy": name,
                    "metric": metric,
                    "mean": float(np.mean(values)),
                    "std": float(np.std(values)),
                    "difference": float(np.mean(differences)),
                    "t_statistic": t_statistic,
                    "p_value": p_value,
                }
            )
            if (
                metric == metrics[0]
                and name != baseline_name
                and np.mean(differences) < 0
                and p_value < alpha
            ):
                negative_transfer.append(name)
    for name in negative_transfer if warn else []:
        row = next(r for r in summary if r["strategy"] == name)
        warnings.warn(
            f"Negative transfer: {name!r} scores {row['mean']:.3f} on "
            f"{metrics[0]}, {-row['difference']:.3f} below the baseline "
            f"{baseline_name!r} (corrected paired t-test p={row['p_value']:.3g}). "
            "The source knowledge hurts on this task as configured.",
            NegativeTransferWarning,
            stacklevel=3,
        )
    return StrategyComparison(
        scores, summary, baseline_name, metrics, negative_transfer, alpha
    )

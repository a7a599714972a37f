"""The strategies AutoTransfer* cross-validates, and how one split is scored.

Each candidate is a way to solve the target task: the untouched source, a
linear model on the frozen source features, fine-tuning (LP-FT) and its
weight-space ensemble with the source (WiSE-FT), L2-SP over a grid of λ,
domain adaptation on the unlabelled target rows when the fit has some, the
non-transfer baselines (a linear model on the inputs, the network from
scratch), and the average of the best with those within noise of it. Each
split keeps every candidate's predictions on its test rows, so the average
is scored without another fit. Candidates that read the frozen source (the
untouched source, the features) use the outputs computed once per fit;
candidates that share a training run (fine-tuning and its WiSE-FT
interpolations) share it.
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    TransformerMixin,
    clone,
)
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ._weight_interpolation import interpolate_weights, snapshot_weights

__all__ = [
    "FAMILIES",
    "NETWORK_FAMILIES",
    "PROBABILITY_FLOOR",
    "AveragedClassifier",
    "AveragedRegressor",
    "CachedRows",
    "Candidate",
    "Run",
    "calibrating_temperature",
    "evaluate_run",
    "fit_weighted",
    "flatten_samples",
    "linear_model",
    "score_average",
    "tempered",
]

# Strategy families, safest first: ties of the mean score go to the earliest,
# and the untouched source is kept when within noise of the best, unless
# every candidate trains on SourceData (see _choice.choose). The untouched
# source trains nothing; linear
# models on fixed inputs or features have few parameters; WiSE-FT stays
# between the source and fine-tuning, L2-SP (large λ first) ties the weights
# to the source; fine-tuning and training from scratch move every weight,
# domain adaptation adds a term on unlabelled inputs to fine-tuning; the
# average of candidates carries the risks of all of them.
FAMILIES = (
    "source",
    "linear",
    "features",
    "wise_ft",
    "l2sp",
    "fine_tune",
    "adaptation",
    "scratch",
    "ensemble",
)
# The families that train a network (the others read the frozen source or
# fit a linear model).
NETWORK_FAMILIES = ("fine_tune", "wise_ft", "l2sp", "adaptation", "scratch")
# The families that do not use the source network's knowledge.
BASELINE_FAMILIES = ("linear", "scratch")


@dataclass
class Candidate:
    """One strategy of the portfolio.

    Attributes
    ----------
    family : str
        One of :data:`FAMILIES`.
    params : dict
        What distinguishes it within its family (``lam``, ``interpolation``,
        ``method``).
    safety : tuple
        Sort key: smaller is safer (see :data:`FAMILIES`).
    members : tuple of Candidate
        For ``"ensemble"``: the candidates whose predictions it averages.
    """

    family: str
    params: dict = field(default_factory=dict)
    safety: tuple = ()
    members: tuple = ()

    @property
    def name(self):
        if self.members:
            return f"{self.family}({' + '.join(m.name for m in self.members)})"
        if not self.params:
            return self.family
        shown = ", ".join(
            f"{key}={value}" if isinstance(value, str) else f"{key}={value:g}"
            for key, value in self.params.items()
        )
        return f"{self.family}({shown})"

    @property
    def transfers(self):
        if self.members:
            return any(member.transfers for member in self.members)
        return self.family not in BASELINE_FAMILIES


@dataclass
class Run:
    """One fit per split, scored as one or more candidates.

    Attributes
    ----------
    kind : {"source", "features", "linear", "network"}
    candidates : list of Candidate
        For ``"network"``: the first is the fitted network itself, the others
        its WiSE-FT interpolations (``params["interpolation"]``).
    estimator : estimator or None
        The unfitted network estimator (``"network"``), or the linear model.
    columns : list of int or None
        For ``"source"``: the source outputs of ``classes_``, in order.
    fit_params : dict
        For ``"network"``: more arguments of every fit (``unlabeled_data``).
    """

    kind: str
    candidates: list
    estimator: object = None
    columns: list | None = None
    fit_params: dict = field(default_factory=dict)


def flatten_samples(X):
    """``X`` as one row per sample (n-D samples flattened), in float64.

    The linear models compute in float64 whatever the network reads:
    standardising inputs near float32's limit would overflow in float32.
    """
    return np.asarray(X).reshape(X.shape[0], -1).astype(np.float64)


def linear_model(classification):
    """The linear model of the baselines and of the feature candidate."""
    if classification:
        return LogisticRegression(max_iter=1000)
    return RidgeCV(alphas=np.logspace(-3, 3, 13))


def fit_weighted(pipeline, X, y, sample_weight):
    """Fit ``pipeline``, its final step with ``sample_weight``; the pipeline.

    Step by step rather than ``pipeline.fit(X, y, model__sample_weight=w)``,
    which metadata routing, once a user enables it, refuses (nothing
    requested the weights).
    """
    *transformers, (_, model) = pipeline.steps
    for _, transformer in transformers:
        X = transformer.fit_transform(X, y)
    model.fit(X, y, sample_weight=sample_weight)
    return pipeline


class CachedRows(TransformerMixin, BaseEstimator):
    """Rows of a fixed array, selected by the row numbers passed as X.

    Lets scikit-learn models fit and score on precomputed features (the
    frozen source's) through the usual ``fit(X, y)`` and
    ``scorer(estimator, X, y)``: X holds one row number per sample, in a
    column.
    """

    def __init__(self, rows=None):
        self.rows = rows

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return self.rows[np.asarray(X).reshape(-1)]


class _CachedScores(BaseEstimator):
    """A fitted model whose scores on every row are known in advance.

    X holds row numbers (see :class:`CachedRows`); the scores are the frozen
    source's outputs on those rows.
    """

    def __init__(self, scores, classes=None, one_dimensional=False):
        self.scores = scores
        self.classes = classes
        self.one_dimensional = one_dimensional

    def _rows(self, X):
        return self.scores[np.asarray(X).reshape(-1)]


class _CachedClassifier(ClassifierMixin, _CachedScores):
    @property
    def classes_(self):
        return self.classes

    def predict_proba(self, X):
        scores = self._rows(X).astype(np.float64)
        scores -= scores.max(axis=1, keepdims=True)
        probabilities = np.exp(scores)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes[self._rows(X).argmax(axis=1)]


class _CachedRegressor(RegressorMixin, _CachedScores):
    def predict(self, X):
        outputs = self._rows(X).astype(np.float64)
        return outputs.ravel() if self.one_dimensional else outputs


def cached_source_model(outputs, columns, classes, one_dimensional):
    """The untouched source as a fitted model over row numbers."""
    scores = outputs if columns is None else outputs[:, columns]
    if classes is not None:
        return _CachedClassifier(scores, classes)
    return _CachedRegressor(scores, one_dimensional=one_dimensional)


def evaluate_run(run, data, train, test, scorer):
    """Fit ``run`` on the rows ``train`` and score its candidates on ``test``.

    Parameters
    ----------
    run : Run
    data : _FitData
        Everything the fit saw: X, encoded and raw targets, weights, the
        frozen source's outputs, the target classes, and the weights of the
        rows' scores (None: unweighted).
    train, test : ndarray of int
    scorer : callable
        ``scorer(estimator, X, y)``, or ``scorer(estimator, X, y,
        sample_weight=w)`` when ``data.scoring_weights`` is not None.

    Returns
    -------
    results : list of (score, fit_time, error, predictions)
        One per candidate of the run: ``predictions`` on the test rows are
        class probabilities (classifiers) or values as a 2-D array
        (regressors). A failed fit gives ``(nan, nan, exception, None)``.
    """
    start = time.perf_counter()
    try:
        if run.kind == "source":
            model = cached_source_model(
                data.frozen.outputs, run.columns, data.classes, data.y.ndim == 1
            )
            return [_scored(scorer, model, data.rows, data, test, 0.0)]
        if run.kind == "features":
            model = Pipeline(
                [
                    ("features", CachedRows(data.features)),
                    ("scale", StandardScaler()),
                    ("model", clone(run.estimator)),
                ]
            )
            fit_weighted(
                model, data.rows[train], data.y[train], data.sample_weight[train]
            )
            fit_time = time.perf_counter() - start
            return [_scored(scorer, model, data.rows, data, test, fit_time)]
        if run.kind == "linear":
            model = fit_weighted(
                clone(run.estimator),
                data.X[train],
                data.y[train],
                data.sample_weight[train],
            )
            fit_time = time.perf_counter() - start
            return [_scored(scorer, model, data.X, data, test, fit_time)]
        return _evaluate_network(run, data, train, test, scorer, start)
    except Exception as exc:  # reported per candidate, as GridSearchCV does
        return [(np.nan, np.nan, exc, None) for _ in run.candidates]


def _evaluate_network(run, data, train, test, scorer, start):
    interpolations = [c.params["interpolation"] for c in run.candidates[1:]]
    estimator = clone(run.estimator)
    started_from = []
    estimator._fit_guarded(
        data.X[train],
        data.y[train],
        data.sample_weight[train],
        frozen_outputs=data.frozen.take(train),
        after_training=(
            (lambda module, weights: started_from.append(weights))
            if interpolations
            else None
        ),
        **run.fit_params,
    )
    fit_time = time.perf_counter() - start
    results = [_scored(scorer, estimator, data.X, data, test, fit_time)]
    if interpolations:
        module = estimator.module_
        fine_tuned = snapshot_weights(module)
        for interpolation in interpolations:
            interpolate_weights(module, started_from[0], interpolation, end=fine_tuned)
            results.append(_scored(scorer, estimator, data.X, data, test, fit_time))
    return results


def _scored(scorer, model, X, data, test, fit_time):
    """``(score, fit_time, None, predictions)`` of ``model`` on the rows ``test``.

    The predictions are kept only when they may be averaged
    (``data.keep_predictions``): class probabilities in the columns of
    ``data.classes`` (a model fitted on a split without some class has
    fewer of its own), or values as a 2-D array.
    """
    predictions = None
    if data.keep_predictions and data.classes is not None:
        probabilities = model.predict_proba(X[test])
        predictions = np.zeros((len(test), len(data.classes)))
        columns = np.searchsorted(data.classes, model.classes_)
        predictions[:, columns] = probabilities
    elif data.keep_predictions:
        predictions = np.asarray(model.predict(X[test]), dtype=np.float64)
        predictions = predictions.reshape(len(test), -1)
    score = _score(scorer, model, X[test], data.y[test], data.scoring_weights, test)
    return score, fit_time, None, predictions


def score_average(predictions, data, test, scorer, temperatures=None):
    """The score on the rows ``test`` of the average of several predictions.

    ``predictions``: one array per averaged model, as :func:`evaluate_run`
    returns them for these rows; ``temperatures``: one per model, for class
    probabilities (see :func:`calibrating_temperature`).
    """
    if temperatures is not None:
        predictions = [
            tempered(p, temperature)
            for p, temperature in zip(predictions, temperatures, strict=True)
        ]
    average = np.mean(predictions, axis=0)
    if data.classes is not None:
        # The cached classifier reads log-probabilities as its scores.
        log_probabilities = np.log(np.clip(average, np.finfo(np.float64).tiny, None))
        model = _CachedClassifier(log_probabilities, data.classes)
    else:
        model = _CachedRegressor(average, one_dimensional=data.y.ndim == 1)
    # The cached model reads row numbers: here those of the test rows, in order.
    rows = np.arange(len(test)).reshape(-1, 1)
    return _score(scorer, model, rows, data.y[test], data.scoring_weights, test)


# Probabilities are floored here before their logarithm, as scikit-learn's
# log_loss clips them: a network's float32 softmax gives exact zeros, and a
# model fitted on a split without some class gives that class 0. One such
# row, unfloored, costs 708 / T and would push its member's temperature to
# the bound.
PROBABILITY_FLOOR = 1e-7
# Temperatures are searched in [e^-3, e^3].
_LOG_TEMPERATURE_BOUND = 3.0


def tempered(probabilities, temperature):
    """``softmax(log(p) / T)``: probabilities made less (T > 1) or more confident."""
    log_probabilities = np.log(np.clip(probabilities, PROBABILITY_FLOOR, None))
    return softmax(log_probabilities / temperature, axis=1)


def calibrating_temperature(probabilities, codes, sample_weight=None):
    """The temperature that makes ``probabilities`` best calibrated.

    Temperature scaling (Guo et al., 2017): the ``T`` minimising the
    (weighted) log-loss of ``softmax(log(p) / T)`` against the class codes,
    searched in [e^-3, e^3]; 1 when the log-loss does not depend on it.
    Averaging models of different confidence (an overconfident network and
    a cautious linear model) lets the confident one decide every row;
    tempered first, each counts for what its probabilities are worth.

    Parameters
    ----------
    probabilities : ndarray of shape (n_rows, n_classes)
        A model's held-out class probabilities (its cross-validation splits'
        test rows, pooled).
    codes : ndarray of int of shape (n_rows,)
        The true classes, as column numbers.
    sample_weight : ndarray of shape (n_rows,) or None

    Returns
    -------
    temperature : float
    """
    log_probabilities = np.log(np.clip(probabilities, PROBABILITY_FLOOR, None))
    rows = np.arange(len(codes))

    def log_loss(log_temperature):
        temperature = math.exp(log_temperature)
        tempered_log = log_softmax(log_probabilities / temperature, axis=1)
        return -np.average(tempered_log[rows, codes], weights=sample_weight)

    found = minimize_scalar(
        log_loss,
        bounds=(-_LOG_TEMPERATURE_BOUND, _LOG_TEMPERATURE_BOUND),
        method="bounded",
    )
    if not log_loss(0.0) - found.fun > 1e-12:
        return 1.0
    return float(math.exp(found.x))


class AveragedClassifier(ClassifierMixin, BaseEstimator):
    """Fitted classifiers whose class probabilities are averaged.

    Parameters
    ----------
    estimators : list of fitted classifiers
        With the same ``classes_``, in the same order. The average is used
        as it is: it has no ``fit``.
    temperatures : list of float or None, default=None
        Each classifier's probabilities are tempered, ``softmax(log(p) /
        T)``, before the average; None averages them as they are.
    """

    def __init__(self, estimators, temperatures=None):
        self.estimators = estimators
        self.temperatures = temperatures

    def __sklearn_is_fitted__(self):
        # Made of fitted members, never fitted itself (AutoTransfer refits
        # them): cloned, it has nothing to fit.
        return True

    @property
    def classes_(self):
        return self.estimators[0].classes_

    def predict_proba(self, X):
        probabilities = [e.predict_proba(X) for e in self.estimators]
        if self.temperatures is not None:
            probabilities = [
                tempered(p, temperature)
                for p, temperature in zip(probabilities, self.temperatures, strict=True)
            ]
        return np.mean(probabilities, axis=0)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class AveragedRegressor(RegressorMixin, BaseEstimator):
    """Fitted regressors whose predictions are averaged.

    Parameters
    ----------
    estimators : list of fitted regressors
    """

    def __init__(self, estimators):
        self.estimators = estimators

    def __sklearn_is_fitted__(self):
        return True

    def predict(self, X):
        predictions = [
            np.asarray(e.predict(X), dtype=np.float64) for e in self.estimators
        ]
        shape = predictions[0].shape
        return np.mean([p.reshape(shape) for p in predictions], axis=0)


def _score(scorer, model, X_test, y_test, scoring_weights, test):
    """``scorer`` on the test rows, weighted by ``scoring_weights[test]`` if any."""
    if scoring_weights is None:
        return scorer(model, X_test, y_test)
    return scorer(model, X_test, y_test, sample_weight=scoring_weights[test])

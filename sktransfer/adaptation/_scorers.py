"""Scorers that estimate target-domain performance without target labels."""

import warnings
from numbers import Integral

import numpy as np
from sklearn.base import is_classifier
from sklearn.metrics import get_scorer
from sklearn.utils import check_array
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    validate_params,
)

from ._instances import check_domains, classifier_density_ratio, importance_weights

__all__ = [
    "deep_embedded_validation_scorer",
    "importance_weighted_scorer",
    "prediction_entropy_scorer",
]

_ESTIMATE_WARNING = (
    "{name} estimates the target-domain score from unlabelled target inputs; "
    "it is not a measurement. It rests on an assumption the data cannot "
    "confirm ({assumption}): check the chosen model on a few labelled target "
    "rows when you can."
)
_COVARIATE_SHIFT = (
    "covariate shift: the labelling is the same in both domains, whose inputs overlap"
)


def _warn_estimate(name, assumption=_COVARIATE_SHIFT):
    # Past this function, the scorer's maker and validate_params' wrapper: the
    # warning names the caller's line.
    warnings.warn(
        _ESTIMATE_WARNING.format(name=name, assumption=assumption),
        UserWarning,
        stacklevel=4,
    )


def _check_target(X_target):
    return check_array(
        X_target,
        dtype=np.float64,
        ensure_all_finite=True,
        allow_nd=True,
        input_name="X_target",
    )


class _ImportanceWeightedScorer:
    """``scorer(estimator, X, y)``: the metric on (X, y) weighted toward X_target."""

    def __init__(self, X_target, metric, method, random_state):
        self.X_target = X_target
        self.metric = metric
        self.method = method
        self.random_state = random_state

    def __call__(self, estimator, X, y):
        # n-D samples (images, signals) are compared as flat vectors.
        weights = importance_weights(
            _flat(X),
            _flat(self.X_target),
            method=self.method,
            random_state=self.random_state,
        )
        return get_scorer(self.metric)(estimator, X, y, sample_weight=weights)

    def __repr__(self):
        return (
            f"importance_weighted_scorer(X_target: {self.X_target.shape}, "
            f"metric={self.metric!r}, method={self.method!r})"
        )


@validate_params(
    {
        "X_target": ["array-like"],
        "metric": [str, callable],
        "method": [StrOptions({"classifier", "kmm", "kliep"})],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def importance_weighted_scorer(
    X_target, *, metric="accuracy", method="classifier", random_state=None
):
    r"""Importance-weighted validation (IWV): a labelled score moved to the target.

    Scores a model on labelled validation rows of the *source* domain (the
    rows ``GridSearchCV`` holds out), each weighted by its importance weight
    :math:`w(x) = p_T(x)/p_S(x)` toward ``X_target`` (see
    :func:`importance_weights`): under covariate shift, the weighted score
    is an unbiased estimate of the score on the target domain, in the limit
    of exact weights. Emits a ``UserWarning`` when made: it is an estimate.

    Parameters
    ----------
    X_target : array-like of shape (n_target_samples, ...)
        Unlabelled target-domain inputs, shaped like the ``X`` the scorer
        will be called with; n-D samples (images, signals) are compared as
        flat vectors (for high-dimensional inputs, prefer
        :func:`deep_embedded_validation_scorer`, which compares the model's
        features).
    metric : str or callable, default="accuracy"
        A scikit-learn scorer name (``"accuracy"``, ``"r2"``,
        ``"neg_log_loss"``, ``"neg_mean_squared_error"``…) or a scorer
        ``scorer(estimator, X, y, sample_weight=None)``; greater is better.
    method : {"classifier", "kmm", "kliep"}, default="classifier"
        How the weights are estimated, on every call (each fold's rows).
    random_state : int, RandomState instance or None, default=None
        Seeds the weights' estimation; an int makes the scorer
        deterministic.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> float``, for ``GridSearchCV(scoring=...)``
        or ``cross_val_score``.

    See Also
    --------
    deep_embedded_validation_scorer : the same on the model's own features,
        with lower variance.

    References
    ----------
    Sugiyama, Krauledat & Müller, "Covariate Shift Adaptation by Importance
    Weighted Cross Validation", JMLR 2007.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer.adaptation import importance_weighted_scorer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> X_target = rng.normal(1.0, 1.0, size=(200, 2))
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", UserWarning)
    ...     scorer = importance_weighted_scorer(X_target, random_state=0)
    >>> model = LogisticRegression().fit(X[:100], y[:100])
    >>> 0.9 < scorer(model, X[100:], y[100:]) <= 1.0
    True
    """
    X_target = _check_target(X_target)
    if isinstance(metric, str):
        get_scorer(metric)  # an unknown name fails now, not inside a search
    _warn_estimate("importance_weighted_scorer")
    return _ImportanceWeightedScorer(X_target, metric, method, random_state)


class _DeepEmbeddedValidationScorer:
    """``scorer(estimator, X, y)``: minus DEV's risk estimate on (X, y)."""

    def __init__(self, X_target, loss, estimator, cv, random_state):
        self.X_target = X_target
        self.loss = loss
        self.estimator = estimator
        self.cv = cv
        self.random_state = random_state

    def __call__(self, estimator, X, y):
        if hasattr(estimator, "transform"):
            features = np.asarray(estimator.transform(X))
            target_features = np.asarray(estimator.transform(self.X_target))
        else:
            features, target_features = X, self.X_target
        features, target_features = check_domains(
            _flat(features), _flat(target_features)
        )
        weights = classifier_density_ratio(
            features,
            target_features,
            estimator=self.estimator,
            cv=self.cv,
            random_state=self.random_state,
        )
        weighted_losses = weights * _per_sample_loss(estimator, X, y, self.loss)
        variance = np.var(weights, ddof=1)
        # The control variate: E[w] = 1 is known, so the part of the weighted
        # losses' fluctuation that follows the weights' own is removed.
        eta = (
            -np.cov(weighted_losses, weights, ddof=1)[0, 1] / variance
            if variance > 0
            else 0.0
        )
        risk = weighted_losses.mean() + eta * weights.mean() - eta
        return -float(risk)

    def __repr__(self):
        return (
            f"deep_embedded_validation_scorer(X_target: {np.shape(self.X_target)}, "
            f"loss={self.loss!r})"
        )


def _flat(values):
    values = np.asarray(values)
    return values.reshape(values.shape[0], -1) if values.ndim != 2 else values


def _per_sample_loss(estimator, X, y, loss):
    y = np.asarray(y)
    if loss == "auto":
        loss = "zero_one" if is_classifier(estimator) else "squared_error"
    if loss == "zero_one":
        return (estimator.predict(X) != y).astype(np.float64)
    if loss == "log_loss":
        classes = estimator.classes_
        columns = np.minimum(np.searchsorted(classes, y), len(classes) - 1)
        if not np.array_equal(classes[columns], y):
            raise ValueError(
                "loss='log_loss' needs every label of y among the model's "
                f"classes_ {classes.tolist()}."
            )
        chosen = estimator.predict_proba(X)[np.arange(len(y)), columns]
        return -np.log(np.clip(chosen, np.finfo(np.float64).eps, 1.0))
    predicted = np.asarray(estimator.predict(X), dtype=np.float64)
    difference = (predicted - y).reshape(len(y), -1)
    if loss == "squared_error":
        return (difference**2).mean(axis=1)
    return np.abs(difference).mean(axis=1)


@validate_params(
    {
        "X_target": [object],
        "loss": [
            StrOptions(
                {"auto", "zero_one", "log_loss", "squared_error", "absolute_error"}
            )
        ],
        "estimator": [HasMethods(["fit", "predict_proba"]), None],
        "cv": [Interval(Integral, 2, None, closed="left")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def deep_embedded_validation_scorer(
    X_target, *, loss="auto", estimator=None, cv=5, random_state=None
):
    r"""Deep embedded validation (DEV): importance weighting in the model's features.

    Like :func:`importance_weighted_scorer`, but the density ratio is
    estimated on the features the model computes (``model.transform(X)``
    when it has ``transform``, e.g. the estimators of :mod:`sktransfer`
    that expose their network's features; the inputs otherwise), where the
    domains are easier to compare, and with a control variate that cuts the
    estimate's variance. With :math:`w_i` the unnormalised ratios of a domain
    classifier (cross-fitted, prior-corrected, so that :math:`E[w] = 1`),
    :math:`\ell_i` the per-row losses on the labelled validation rows and
    :math:`L_i = w_i \ell_i`:

    .. math::

        \hat R = \overline{L} + \eta\,\overline{w} - \eta, \qquad
        \eta = -\frac{\widehat{\mathrm{Cov}}(L, w)}{\widehat{\mathrm{Var}}(w)}

    The scorer returns :math:`-\hat R` (greater is better, as scikit-learn
    expects). Emits a ``UserWarning`` when made: it is an estimate.

    Parameters
    ----------
    X_target : array-like of shape (n_target_samples, ...)
        Unlabelled target-domain inputs, of the kind the model reads.
    loss : str, default="auto"
        The per-row loss :math:`\ell`: ``"zero_one"``, ``"log_loss"``,
        ``"squared_error"`` or ``"absolute_error"``; ``"auto"``:
        misclassification for classifiers, squared error for regressors.
    estimator : classifier with predict_proba, default=None
        The domain classifier; None: ``StandardScaler`` then
        ``LogisticRegression``, as in the paper.
    cv : int, default=5
        Folds over which the domain classifier's probabilities are
        cross-fitted.
    random_state : int, RandomState instance or None, default=None
        Seeds the cross-fitting folds.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> float``, for ``GridSearchCV(scoring=...)``.

    See Also
    --------
    importance_weighted_scorer : weights from the inputs, with any metric.

    References
    ----------
    You, Wang, Long & Wang, "Towards Accurate Model Selection in Deep
    Unsupervised Domain Adaptation", ICML 2019.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer.adaptation import deep_embedded_validation_scorer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", UserWarning)
    ...     scorer = deep_embedded_validation_scorer(X + 0.5, random_state=0)
    >>> model = LogisticRegression().fit(X[:100], y[:100])
    >>> -0.1 < scorer(model, X[100:], y[100:]) <= 0  # minus the error rate
    True
    """
    _warn_estimate("deep_embedded_validation_scorer")
    return _DeepEmbeddedValidationScorer(X_target, loss, estimator, cv, random_state)


class _PredictionEntropyScorer:
    """``scorer(estimator, X, y)``: minus the mean entropy on X_target."""

    def __init__(self, X_target):
        self.X_target = X_target

    def __call__(self, estimator, X=None, y=None):
        if not hasattr(estimator, "predict_proba"):
            raise TypeError(
                "prediction_entropy_scorer scores class probabilities; "
                f"{type(estimator).__name__} has no predict_proba."
            )
        probabilities = np.clip(estimator.predict_proba(self.X_target), 0.0, 1.0)
        logs = np.log(np.clip(probabilities, np.finfo(np.float64).tiny, None))
        return float((probabilities * logs).sum(axis=1).mean())

    def __repr__(self):
        return f"prediction_entropy_scorer(X_target: {np.shape(self.X_target)})"


@validate_params({"X_target": [object]}, prefer_skip_nested_validation=True)
def prediction_entropy_scorer(X_target):
    r"""Minus the mean entropy of a classifier's predictions on target inputs.

    .. math::

        s = \frac{1}{n_T}\sum_{j=1}^{n_T}\sum_{k} p_k(x^T_j)\log p_k(x^T_j)

    where :math:`p(x)` is ``predict_proba``: 0 for certain predictions on
    every target row, :math:`-\log K` for uniform ones over :math:`K`
    classes. Greater is better. It reads neither the validation rows nor
    their labels, so it rewards confidence, not correctness: a model can be
    confidently wrong, and a model confident on everything scores best.
    Compare candidates that differ in how they adapt, not in how they are
    calibrated. Emits a ``UserWarning`` when made: it is an estimate.

    Parameters
    ----------
    X_target : array-like of shape (n_target_samples, ...)
        Unlabelled target-domain inputs, of the kind the model reads.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> float`` (``X`` and ``y`` are ignored),
        for ``GridSearchCV(scoring=...)``.

    References
    ----------
    Morerio, Cavazza & Murino, "Minimal-Entropy Correlation Alignment for
    Unsupervised Deep Domain Adaptation", ICLR 2018.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer.adaptation import prediction_entropy_scorer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 2))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", UserWarning)
    ...     scorer = prediction_entropy_scorer(X + 0.5)
    >>> weak = LogisticRegression(C=1e-3).fit(X, y)
    >>> strong = LogisticRegression(C=1e3).fit(X, y)
    >>> bool(scorer(strong, X, y) > scorer(weak, X, y))
    True
    """
    _warn_estimate(
        "prediction_entropy_scorer", "that confident predictions are correct ones"
    )
    return _PredictionEntropyScorer(X_target)

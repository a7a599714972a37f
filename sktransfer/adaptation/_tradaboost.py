"""TrAdaBoost: boosting over source and target rows that discounts misleading ones."""

import math
from numbers import Integral

import numpy as np
from scipy import optimize
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    _fit_context,
    clone,
)
from sklearn.ensemble._base import _set_random_states
from sklearn.model_selection import KFold, check_cv
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils._tags import get_tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    has_fit_parameter,
    validate_data,
)

from .._joint_training import check_source_data

__all__ = ["TrAdaBoostClassifier", "TrAdaBoostRegressor"]

# A learner without error on the target rows gets the vote of one whose error
# is this small, instead of an infinite one.
_MIN_ERROR = 1e-10


class _TrAdaBoost(BaseEstimator):
    """Validation of target and source data, shared by both estimators."""

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "predict"]), None],
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    # No other estimator consumes it: requested by default under routing.
    __metadata_request__fit = {"source_data": True}

    def _base_estimator(self):
        estimator = (
            self._default_estimator() if self.estimator is None else self.estimator
        )
        if not has_fit_parameter(estimator, "sample_weight"):
            raise ValueError(
                f"{type(self).__name__} reweighs the training rows, so its "
                f"estimator must accept fit(X, y, sample_weight=...); "
                f"{type(estimator).__name__} does not."
            )
        return estimator

    def _allows_nan(self):
        estimator = (
            self._default_estimator() if self.estimator is None else self.estimator
        )
        return get_tags(estimator).input_tags.allow_nan

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self._allows_nan()
        tags.input_tags.sparse = False
        return tags

    def _training_rows(self, X, y, sample_weight, source_data, y_numeric):
        """Validated source rows stacked above the target rows.

        Returns ``X_all, y_all, initial_weights, n_source``.
        """
        ensure_all_finite = "allow-nan" if self._allows_nan() else True
        X, y = validate_data(
            self, X, y, ensure_all_finite=ensure_all_finite, y_numeric=y_numeric
        )
        target_weight = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        if source_data is None:
            return X, y, target_weight, 0
        check_source_data(source_data)
        X_source = check_array(
            source_data.X, ensure_all_finite=ensure_all_finite, input_name="X_source"
        )
        if X_source.shape[1] != X.shape[1]:
            raise ValueError(
                f"The source data's X has {X_source.shape[1]} features but X has "
                f"{X.shape[1]}; both domains must be described by the same features."
            )
        y_source = np.asarray(source_data.y)
        if y_source.ndim != 1 or y_source.shape[0] != X_source.shape[0]:
            raise ValueError(
                "The source data's y must hold one value per row of its X "
                f"({X_source.shape[0]}); got shape {y_source.shape}."
            )
        if y_numeric:
            y_source = check_array(
                y_source, ensure_2d=False, dtype="numeric", input_name="y_source"
            )
        source_weight = _check_sample_weight(
            source_data.sample_weight, X_source, ensure_non_negative=True
        )
        return (
            np.concatenate([X_source, X]),
            np.concatenate([y_source, y]),
            np.concatenate([source_weight, target_weight]),
            X_source.shape[0],
        )


class TrAdaBoostClassifier(ClassifierMixin, _TrAdaBoost):
    r"""TrAdaBoost: boosting on source and target rows, distrusting the source.

    Trains ``n_estimators`` copies of ``estimator`` in turn on the source
    rows (``source_data``) and the target rows ``(X, y)`` together, with
    weights that change from round to round as in AdaBoost, but differently
    for the two domains. A target row the learner misclassifies weighs more
    in the next round, by :math:`e^{\alpha_t}` with
    :math:`\alpha_t = \log\frac{1 - \epsilon_t}{\epsilon_t} + \log(K - 1)`
    (:math:`\epsilon_t` the weighted error on the *target* rows, :math:`K`
    the number of classes: SAMME's multi-class form); a *source* row it
    misclassifies weighs less, by :math:`\beta = 1 / (1 + \sqrt{2 \ln n_S /
    N})` (:math:`n_S` source rows, :math:`N` rounds): source rows that keep
    disagreeing with what fits the target are taken for rows whose labelling
    differs from the target's, and fade out. The prediction is the
    :math:`\alpha_t`-weighted vote (of the learners' class probabilities,
    or their predictions without ``predict_proba``) of the second half of
    the rounds, as in the paper, where the source rows no longer dominate.
    For two classes this is Dai et al.'s algorithm.

    Without ``source_data``, this is AdaBoost (SAMME) on the target rows,
    voting with its later rounds.

    Parameters
    ----------
    estimator : classifier, default=None
        The learner boosted (cloned each round); it must accept
        ``sample_weight`` in ``fit``. None: ``DecisionTreeClassifier(max_depth=3)``.
    n_estimators : int, default=10
        Number of rounds :math:`N`.
    random_state : int, RandomState instance or None, default=None
        Seeds the ``random_state`` of each round's learner.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels of the target and source rows.
    estimators_ : list of classifiers
        The learner of each round.
    estimator_weights_ : ndarray of shape (n_estimators,)
        :math:`\alpha_t`; 0 for a learner no better than chance on the
        target rows. Only the second half of the rounds votes.
    estimator_errors_ : ndarray of shape (n_estimators,)
        :math:`\epsilon_t`, each learner's weighted error on the target rows.
    source_weights_ : ndarray of shape (n_source_samples,)
        The factor :math:`\beta^{m_i}` by which each source row's weight was
        multiplied, :math:`m_i` the number of rounds that misclassified it:
        1 for a row every learner agreed with, near 0 for a misleading one.
        Empty without source data.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Column names of a DataFrame passed as ``X``.

    See Also
    --------
    TrAdaBoostRegressor : the same idea for regression (two-stage).
    importance_weights : weights from where the inputs lie, not their labels.

    References
    ----------
    Dai, Yang, Xue & Yu, "Boosting for Transfer Learning", ICML 2007; Zhu,
    Zou, Rosset & Hastie, "Multi-class AdaBoost", 2009 (SAMME).

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import SourceData
    >>> from sktransfer.adaptation import TrAdaBoostClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 2))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> X_source = rng.normal(size=(200, 2))
    >>> y_source = (X_source[:, 0] > 0).astype(int)
    >>> y_source[:60] = 1 - y_source[:60]  # source rows labelled otherwise
    >>> clf = TrAdaBoostClassifier(random_state=0)
    >>> clf.fit(X, y, source_data=SourceData(X_source, y_source)).predict(X[:3])
    array([1, 1, 0])
    >>> # The mislabelled source rows faded out.
    >>> bool(clf.source_weights_[:60].mean() < clf.source_weights_[60:].mean())
    True
    """

    def __init__(self, estimator=None, *, n_estimators=10, random_state=None):
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.random_state = random_state

    @staticmethod
    def _default_estimator():
        return DecisionTreeClassifier(max_depth=3)

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_weight=None, source_data=None):
        """Boost on the target rows (X, y) and the source rows together.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Target inputs.
        y : array-like of shape (n_samples,)
            Target labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Initial weights of the target rows.
        source_data : SourceData, default=None
            Source rows, with labels of the same kind as ``y`` and optional
            initial weights. None boosts on the target rows alone.

        Returns
        -------
        self : object
        """
        base = self._base_estimator()
        check_classification_targets(y)
        X_all, y_all, weights, n_source = self._training_rows(
            X, y, sample_weight, source_data, y_numeric=False
        )
        check_classification_targets(y_all)
        self.classes_, codes = np.unique(y_all, return_inverse=True)
        n_classes = self.classes_.shape[0]
        total_weight = weights.sum()
        source_factor = (
            1.0 / (1.0 + math.sqrt(2.0 * math.log(n_source) / self.n_estimators))
            if n_source > 0
            else 1.0
        )
        rng = check_random_state(self.random_state)
        n_misclassified = np.zeros(n_source)
        self.estimators_ = []
        errors, alphas = [], []
        for _ in range(self.n_estimators):
            estimator = clone(base)
            _set_random_states(estimator, rng)
            # Scaled to the initial total, not to 1: learners with a penalty
            # (C, alpha) would otherwise see their regularisation change.
            estimator.fit(
                X_all, codes, sample_weight=weights * (total_weight / weights.sum())
            )
            wrong = estimator.predict(X_all) != codes
            target_weights = weights[n_source:]
            error = (
                target_weights @ wrong[n_source:] / target_weights.sum()
                if target_weights.sum() > 0
                else 0.0
            )
            error = min(max(error, _MIN_ERROR), 1 - _MIN_ERROR)
            alpha = max(
                math.log((1 - error) / error) + math.log(max(n_classes - 1, 1)), 0.0
            )
            weights = weights.copy()
            weights[:n_source] *= np.where(wrong[:n_source], source_factor, 1.0)
            weights[n_source:] *= np.exp(alpha * wrong[n_source:])
            # Renormalised every round: target weights grow geometrically.
            weights *= total_weight / weights.sum()
            n_misclassified += wrong[:n_source]
            self.estimators_.append(estimator)
            errors.append(error)
            alphas.append(alpha)
        self.estimator_errors_ = np.array(errors)
        self.estimator_weights_ = np.array(alphas)
        self.source_weights_ = source_factor**n_misclassified
        return self

    def predict_proba(self, X):
        """Class probabilities: the weighted vote of the later rounds.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        X = validate_data(
            self,
            X,
            reset=False,
            ensure_all_finite="allow-nan" if self._allows_nan() else True,
        )
        first_voter = math.ceil(self.n_estimators / 2) - 1
        voters = self.estimators_[first_voter:]
        votes = self.estimator_weights_[first_voter:]
        if votes.sum() <= 0:
            # No later learner beat chance on the target rows: equal votes.
            votes = np.ones_like(votes)
        n_classes = self.classes_.shape[0]
        proba = np.zeros((X.shape[0], n_classes))
        for estimator, vote in zip(voters, votes, strict=True):
            if vote == 0:
                continue
            columns = estimator.classes_
            if hasattr(estimator, "predict_proba"):
                proba[:, columns] += vote * estimator.predict_proba(X)
            else:
                proba[np.arange(X.shape[0]), estimator.predict(X)] += vote
        return proba / votes.sum()

    def predict(self, X):
        """The class of highest probability (see :meth:`predict_proba`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class TrAdaBoostRegressor(RegressorMixin, _TrAdaBoost):
    r"""Two-stage TrAdaBoost.R2: choose how much to trust the source rows.

    Regression needs no labels to agree on, so the source rows are not
    judged one learner at a time (TrAdaBoost.R2 tends to overfit by doing
    so) but in two stages (Pardoe & Stone). Stage 1 moves the weight from
    the source rows to the target rows in ``n_stages`` steps, from their
    initial share to all of it: at each step one ``estimator`` is fitted to
    all rows, and the weight of each source row is multiplied by
    :math:`\beta^{e_i}`, :math:`e_i` its error relative to the largest error,
    with :math:`\beta` chosen so that the target rows reach the step's share
    (source rows the learner fits badly lose weight first). Stage 2 scores
    each step's weighting by ``cv``-fold cross-validation on the target rows
    (the source rows always train) of AdaBoost.R2 with ``n_estimators``
    rounds in which the source weights stay fixed, and refits the best one
    on all the rows. The last step gives the source rows no weight, so
    AdaBoost.R2 on the target rows alone is always a candidate.

    Without ``source_data``, this is AdaBoost.R2 on the target rows.

    Parameters
    ----------
    estimator : regressor, default=None
        The learner (cloned for every fit); it must accept ``sample_weight``
        in ``fit``. None: ``DecisionTreeRegressor(max_depth=3)``.
    n_stages : int, default=10
        Number of source weightings tried (the paper's :math:`S`).
    n_estimators : int, default=10
        Boosting rounds of each AdaBoost.R2 model (the paper's :math:`N`).
    cv : int, cross-validation generator or iterable, default=5
        Splits of the target rows (the ``X`` passed to ``fit``) that score
        each weighting: a number of shuffled folds (fewer when there are
        fewer target rows), a splitter such as ``KFold``, or an iterable of
        (train, test) index arrays into the target rows.
    random_state : int, RandomState instance or None, default=None
        Seeds the folds and each learner's ``random_state``.

    Attributes
    ----------
    estimators_ : list of regressors
        The boosted learners of the chosen weighting.
    estimator_weights_ : ndarray of shape (n_fitted_estimators,)
        Their votes :math:`\log(1/\beta_t)` in the weighted median.
    cv_errors_ : ndarray of shape (n_stages,)
        Cross-validated mean squared error on the target rows of each step's
        weighting (NaN: not scored, without source data).
    best_stage_ : int
        Index of the chosen step (0: the initial weights).
    source_weights_ : ndarray of shape (n_source_samples,)
        Weight of each source row at the chosen step relative to its
        initial weight (the total weight of all rows stays the same): below 1
        for rows that lost weight to the target rows, 0 at the last step.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Column names of a DataFrame passed as ``X``.

    See Also
    --------
    TrAdaBoostClassifier : TrAdaBoost for classification.

    References
    ----------
    Pardoe & Stone, "Boosting for Regression Transfer", ICML 2010; Drucker,
    "Improving Regressors using Boosting Techniques", ICML 1997
    (AdaBoost.R2).

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import SourceData
    >>> from sktransfer.adaptation import TrAdaBoostRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-2, 2, size=(30, 1))
    >>> y = np.sin(X[:, 0])
    >>> X_source = rng.uniform(-2, 2, size=(200, 1))
    >>> y_source = np.sin(X_source[:, 0]) + (X_source[:, 0] > 1)  # partly shifted
    >>> reg = TrAdaBoostRegressor(n_stages=5, random_state=0)
    >>> reg.fit(X, y, source_data=SourceData(X_source, y_source)).predict(X[:2]).shape
    (2,)
    """

    _parameter_constraints = {
        **_TrAdaBoost._parameter_constraints,
        "n_stages": [Interval(Integral, 1, None, closed="left")],
        "cv": ["cv_object"],
    }

    def __init__(
        self, estimator=None, *, n_stages=10, n_estimators=10, cv=5, random_state=None
    ):
        self.estimator = estimator
        self.n_stages = n_stages
        self.n_estimators = n_estimators
        self.cv = cv
        self.random_state = random_state

    @staticmethod
    def _default_estimator():
        return DecisionTreeRegressor(max_depth=3)

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_weight=None, source_data=None):
        """Fit on the target rows (X, y), with as much source weight as helps.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Target inputs.
        y : array-like of shape (n_samples,)
            Target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Initial weights of the target rows.
        source_data : SourceData, default=None
            Source rows, their values and optional initial weights. None fits
            AdaBoost.R2 on the target rows alone.

        Returns
        -------
        self : object
        """
        base = self._base_estimator()
        X_all, y_all, initial, n_source = self._training_rows(
            X, y, sample_weight, source_data, y_numeric=True
        )
        y_all = y_all.astype(np.float64)
        rng = check_random_state(self.random_state)
        n_target = X_all.shape[0] - n_source
        if n_source == 0 or initial[:n_source].sum() == 0:
            stages = [initial]
            self.cv_errors_ = np.full(1, np.nan)
        else:
            if n_target < 2:
                raise ValueError(
                    "TrAdaBoostRegressor chooses the source weighting by "
                    "cross-validation on the target rows, so it needs at least "
                    f"2 of them; got {n_target}."
                )
            stages = self._source_weightings(base, X_all, y_all, initial, n_source, rng)
            self.cv_errors_ = np.array(
                [
                    self._cross_validated_error(
                        base, X_all, y_all, weights, n_source, rng
                    )
                    for weights in stages
                ]
            )
        self.best_stage_ = int(np.nanargmin(self.cv_errors_)) if len(stages) > 1 else 0
        chosen = stages[self.best_stage_]
        self.estimators_, self.estimator_weights_ = self._boost(
            base, X_all, y_all, chosen, n_source, rng
        )
        # Every step keeps the total weight: the ratio is the row's own change.
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = chosen[:n_source] / initial[:n_source]
        self.source_weights_ = np.nan_to_num(relative, nan=0.0)
        return self

    def _source_weightings(self, base, X, y, weights, n_source, rng):
        """Stage 1: the weights of each step, the target's share rising to 1."""
        total = weights.sum()
        start_share = weights[n_source:].sum() / total
        stages = [weights]
        for step in range(1, self.n_stages):
            share = start_share + step / max(self.n_stages - 1, 1) * (1 - start_share)
            learner = clone(base)
            _set_random_states(learner, rng)
            learner.fit(X, y, sample_weight=weights)
            errors = np.abs(learner.predict(X) - y)
            largest = errors.max()
            relative_errors = errors / largest if largest > 0 else np.zeros_like(errors)
            weights = _shift_to_target(weights, relative_errors, n_source, share)
            stages.append(weights)
        return stages

    def _cross_validated_error(self, base, X, y, weights, n_source, rng):
        n_target = X.shape[0] - n_source
        if isinstance(self.cv, Integral):
            folds = KFold(
                min(self.cv, n_target),
                shuffle=True,
                random_state=rng.randint(np.iinfo(np.int32).max),
            )
        else:
            folds = check_cv(self.cv)
        squared_errors = []
        held_out_weights = []
        for train, test in folds.split(np.empty((n_target, 1))):
            rows = np.r_[np.arange(n_source), n_source + train]
            estimators, votes = self._boost(
                base, X[rows], y[rows], weights[rows], n_source, rng
            )
            held_out = n_source + test
            predicted = _weighted_median(estimators, votes, X[held_out])
            squared_errors.append((predicted - y[held_out]) ** 2)
            held_out_weights.append(weights[held_out])
        held_out_weights = np.concatenate(held_out_weights)
        squared_errors = np.concatenate(squared_errors)
        if held_out_weights.sum() <= 0:
            return float(squared_errors.mean())
        return float(np.average(squared_errors, weights=held_out_weights))

    def _boost(self, base, X, y, weights, n_frozen, rng):
        """AdaBoost.R2 in which the first ``n_frozen`` rows keep their weights.

        The target rows' total weight is kept too, so the source rows' share
        chosen in stage 1 holds throughout.
        """
        weights = weights.astype(np.float64)
        target_total = weights[n_frozen:].sum()
        total = weights.sum()
        estimators, votes = [], []
        for _ in range(self.n_estimators):
            estimator = clone(base)
            _set_random_states(estimator, rng)
            estimator.fit(X, y, sample_weight=weights)
            errors = np.abs(estimator.predict(X) - y)
            largest = errors.max()
            losses = errors / largest if largest > 0 else np.zeros_like(errors)
            error = losses @ weights / total
            if error >= 0.5 and estimators:
                # Worse than AdaBoost.R2 allows: this learner is dropped.
                break
            estimators.append(estimator)
            if error <= 0:
                votes.append(1.0)
                break
            beta = min(error / (1 - error), 1.0)
            votes.append(math.log(1 / beta) if beta < 1 else 0.0)
            target = weights[n_frozen:] * beta ** (1 - losses[n_frozen:])
            if target.sum() <= 0 or target_total <= 0:
                break
            weights = weights.copy()
            weights[n_frozen:] = target * (target_total / target.sum())
        return estimators, np.array(votes)

    def predict(self, X):
        """The weighted median of the chosen weighting's learners.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        X = validate_data(
            self,
            X,
            reset=False,
            ensure_all_finite="allow-nan" if self._allows_nan() else True,
        )
        return _weighted_median(self.estimators_, self.estimator_weights_, X)


def _shift_to_target(weights, relative_errors, n_source, share):
    """Source weights times ``β^e``, ``β`` giving the target rows ``share``.

    Where even ``β = 0`` leaves too much weight on source rows without error,
    the source rows are scaled down together as well.
    """
    total = weights.sum()
    target_total = weights[n_source:].sum()
    source, source_errors = weights[:n_source], relative_errors[:n_source]
    wanted_source = target_total * (1 - share) / share
    if wanted_source <= 0:
        new_source = np.zeros_like(source)
    else:

        def excess(beta):
            return (source * beta**source_errors).sum() - wanted_source

        if excess(0.0) >= 0:
            new_source = source * (source_errors == 0)
            new_source = new_source * (wanted_source / new_source.sum())
        elif excess(1.0) <= 0:
            new_source = source
        else:
            beta = optimize.brentq(excess, 0.0, 1.0)
            new_source = source * beta**source_errors
    new = np.concatenate([new_source, weights[n_source:]])
    return new * (total / new.sum())


def _weighted_median(estimators, votes, X):
    """AdaBoost.R2's prediction: the vote-weighted median of the learners'."""
    predictions = np.stack([estimator.predict(X) for estimator in estimators], axis=1)
    if votes.sum() <= 0:
        votes = np.ones_like(votes)
    order = np.argsort(predictions, axis=1)
    cumulative = np.cumsum(votes[order], axis=1)
    median_position = (cumulative >= 0.5 * cumulative[:, -1:]).argmax(axis=1)
    rows = np.arange(X.shape[0])
    return predictions[rows, order[rows, median_position]]

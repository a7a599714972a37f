"""AutoTransfer*: choose how to transfer by cross-validation on the training data."""

import copy
import math
import os
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from joblib import Parallel, delayed
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    _fit_context,
)
from sklearn.exceptions import FitFailedWarning
from sklearn.metrics import check_scoring, get_scorer_names
from sklearn.model_selection import (
    RepeatedKFold,
    RepeatedStratifiedKFold,
    check_cv,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    check_is_fitted,
    validate_data,
)

from ._base import SourceModuleMixin, rolled_back_on_failure
from ._core import validate_array_input
from ._docstrings import SOURCE, Substitution
from ._dry_run import check_input_fits_network
from ._feature_transfer import PretrainedFeatureTransformer
from ._fine_tuning import FineTunedClassifier, FineTunedRegressor
from ._frozen_pass import FrozenSourceOutputs, array_batches
from ._heads import logits_head
from ._knowledge_regularized import (
    KnowledgeRegularizedClassifier,
    KnowledgeRegularizedRegressor,
)
from ._portfolio import (
    FAMILIES,
    Candidate,
    Run,
    evaluate_run,
    flatten_samples,
    linear_model,
)
from ._seeding import seeded
from ._source import resolve_source, split_body_head
from ._source_classes import check_source_classes, rows_of_classes
from ._source_model import SourceModelClassifier, SourceModelRegressor
from ._targets import ClassifierTargetsMixin, RegressorTargetsMixin
from ._training_checks import check_device
from ._validation import (
    check_object_values,
    check_representable,
    positive_strides,
)
from .model_selection._compare import (
    NegativeTransferWarning,
    corrected_paired_ttest,
    summarize_scores,
)

# Epochs of the from-scratch candidate (see _portfolio's "scratch" run).
SCRATCH_EPOCHS = 100

__all__ = ["AutoTransferClassifier", "AutoTransferRegressor"]

# Default cross-validation: at least this many scored splits (repeats of a
# K-fold), so that small test folds still average to a usable estimate.
_MIN_SPLITS = 10
_MAX_FOLDS = 5


class _FitData:
    """What every candidate of one AutoTransfer fit reads (shared, read-only)."""

    def __init__(self, X, y, sample_weight, frozen, classes):
        self.X = X
        self.y = y
        self.sample_weight = sample_weight
        self.frozen = frozen
        self.classes = classes
        self.rows = np.arange(X.shape[0]).reshape(-1, 1)
        self.features = flatten_samples(frozen.features)


class _AutoTransfer(SourceModuleMixin, BaseEstimator):
    _parameter_constraints = {
        "source_module": "no_validation",
        "source_weights": [str, os.PathLike, None],
        "strategies": [list, tuple, None],
        "lams": [list, tuple],
        "interpolations": [list, tuple],
        "cv": ["cv_object"],
        "scoring": [StrOptions(set(get_scorer_names())), callable, None],
        "max_epochs": [
            Interval(Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
            None,
        ],
        "lr": [Interval(Real, 0, None, closed="neither"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "device": [str, torch.device],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Cross-validate the portfolio on (X, y), then refit the choice on all of it.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, ...)
            Inputs the source network accepts.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target labels (classifier) or values (regressor).
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the training loss of every candidate (not of the
            cross-validation scores).

        Returns
        -------
        self : object
        """
        with rolled_back_on_failure(self):
            return self._fit(X, y, sample_weight)

    def _fit(self, X, y, sample_weight):
        families = self._check_strategies()
        check_device(self.device)
        network = resolve_source(self.source_module, self.source_weights)
        fit_input = validate_array_input(self, network, X, y, sample_weight)
        y, y_encoded = fit_input.y, fit_input.y_encoded
        sample_weight, input_dtype = fit_input.sample_weight, fit_input.input_dtype
        integer_input = not input_dtype.is_floating_point
        # Every candidate sees the values the network reads: the linear
        # models too, so that X of any float dtype gives the same model.
        X = self._as_network_input(fit_input.X, input_dtype)
        self._input_dtype = input_dtype
        self._sample_shape = X.shape[1:]
        rng = check_random_state(self.random_state)
        cv_seed, network_seed = (int(s) for s in rng.randint(2**31 - 1, size=2))

        with seeded(network_seed, self.device):
            # A dry pass decides whether X fits the network; lazy layers get
            # their weights here, once, for every candidate.
            check_input_fits_network(
                network, torch.tensor(X[:1], dtype=input_dtype), X_shape=X.shape
            )
        frozen = _frozen_pass(network, X, input_dtype, self.device)
        source_columns, head, reason = self._source_head_decision(
            network, frozen, y_encoded
        )
        self.head_choice_ = head
        self.head_choice_reason_ = reason
        data = _FitData(X, y, sample_weight, frozen, getattr(self, "classes_", None))
        runs = self._portfolio(
            network, families, head, source_columns, network_seed, integer_input
        )
        candidates = [c for run in runs for c in run.candidates]

        cv = self._cv(y, y_encoded, cv_seed)
        splits = list(cv.split(X, y_encoded if self._task == "classification" else y))
        scorer = check_scoring(self._scoring_template(), scoring=self.scoring)
        tasks = [(r, s) for s in range(len(splits)) for r in range(len(runs))]
        if self.verbose:
            print(
                f"{type(self).__name__}: {len(candidates)} candidates, "
                f"{len(splits)} splits, {len(tasks)} fits"
            )
        outcomes = Parallel(n_jobs=self.n_jobs, verbose=max(0, self.verbose - 1) * 10)(
            delayed(evaluate_run)(runs[r], data, *splits[s], scorer) for r, s in tasks
        )
        scores, fit_times, errors = self._collect(runs, splits, tasks, outcomes)

        chosen, best, reason = _choose(candidates, scores, splits)
        n_train = float(np.mean([len(train) for train, _ in splits]))
        n_test = float(np.mean([len(test) for _, test in splits]))
        self._record(candidates, scores, fit_times, splits, chosen, best)
        self.comparison_ = self._comparison(
            candidates, scores, fit_times, n_train, n_test
        )
        self.strategy_choice_reason_ = reason
        self._warn_negative_transfer(candidates, scores, chosen, n_train, n_test)
        for name, error in errors.items():
            warnings.warn(
                f"Candidate {name!r} failed on some splits and was not chosen: "
                f"{type(error).__name__}: {error}",
                FitFailedWarning,
                stacklevel=3,
            )
        if self.verbose:
            print(self.comparison_)
            print(f"chose {self.best_strategy_}: {reason}")

        run = next(run for run in runs if candidates[chosen] in run.candidates)
        self.best_estimator_ = self._refit(
            run, candidates[chosen], data, network, X, y, sample_weight
        )
        return self

    # --- the portfolio ---------------------------------------------------------

    def _check_strategies(self):
        if self.strategies is None:
            return set(FAMILIES)
        unknown = sorted(set(self.strategies) - set(FAMILIES))
        if unknown or not self.strategies:
            raise ValueError(
                f"strategies must name some of {list(FAMILIES)}; got "
                f"{list(self.strategies)}."
            )
        return set(self.strategies)

    def _portfolio(self, network, families, head, source_columns, seed, integer_input):
        classification = self._task == "classification"
        training = {
            key: value
            for key, value in {
                "max_epochs": self.max_epochs,
                "lr": self.lr,
                "batch_size": self.batch_size,
            }.items()
            if value is not None
        }
        shared = {
            "head": head,
            "device": self.device,
            "random_state": seed,
            **training,
        }
        if classification:
            shared["source_classes"] = self.source_classes
        fine_tuned = FineTunedClassifier if classification else FineTunedRegressor
        regularized = (
            KnowledgeRegularizedClassifier
            if classification
            else KnowledgeRegularizedRegressor
        )
        runs = []
        rank = {family: index for index, family in enumerate(FAMILIES)}
        if "source" in families and head == "reuse":
            runs.append(
                Run(
                    "source",
                    [Candidate("source", safety=(rank["source"],))],
                    columns=source_columns,
                )
            )
        if "linear" in families and not integer_input:
            runs.append(
                Run(
                    "linear",
                    [Candidate("linear", safety=(rank["linear"],))],
                    estimator=Pipeline(
                        [
                            ("flatten", FunctionTransformer(flatten_samples)),
                            ("scale", StandardScaler()),
                            ("model", linear_model(classification)),
                        ]
                    ),
                )
            )
        if "features" in families:
            runs.append(
                Run(
                    "features",
                    [Candidate("features", safety=(rank["features"],))],
                    estimator=linear_model(classification),
                )
            )
        if "fine_tune" in families or "wise_ft" in families:
            interpolations = (
                sorted(self.interpolations) if "wise_ft" in families else []
            )
            runs.append(
                Run(
                    "network",
                    [
                        Candidate("fine_tune", safety=(rank["fine_tune"],)),
                        *(
                            Candidate(
                                "wise_ft",
                                {"interpolation": value},
                                # Closer to the source (smaller value) is safer.
                                (rank["wise_ft"], value),
                            )
                            for value in interpolations
                        ),
                    ],
                    estimator=fine_tuned(network, **shared),
                )
            )
        if "l2sp" in families:
            for lam in self.lams:
                runs.append(
                    Run(
                        "network",
                        # A stronger pull toward the source is safer.
                        [Candidate("l2sp", {"lam": lam}, (rank["l2sp"], -lam))],
                        estimator=regularized(
                            network, knowledge="l2sp", lam=lam, **shared
                        ),
                    )
                )
        if "scratch" in families:
            # Fresh weights need more steps than a fine-tune: 100 epochs
            # scored at least as well as the "auto" budget on every task and
            # size of the accuracy suite (up to +0.14 R², friedman-shift).
            scratch = {"max_epochs": SCRATCH_EPOCHS, **shared}
            runs.append(
                Run(
                    "network",
                    [Candidate("scratch", safety=(rank["scratch"],))],
                    estimator=fine_tuned(network, reinitialize=True, **scratch),
                )
            )
        if not runs:
            raise ValueError(
                f"None of the strategies {sorted(families)} applies to these "
                "data (e.g. 'source' alone, for a source whose outputs do not "
                "mean the target's)."
            )
        return runs

    def _collect(self, runs, splits, tasks, outcomes):
        candidates = [c for run in runs for c in run.candidates]
        offset = {}
        position = 0
        for index, run in enumerate(runs):
            offset[index] = position
            position += len(run.candidates)
        scores = np.full((len(candidates), len(splits)), np.nan)
        fit_times = np.full((len(candidates), len(splits)), np.nan)
        errors = {}
        for (run_index, split), results in zip(tasks, outcomes, strict=True):
            for k, (score, fit_time, error) in enumerate(results):
                row = offset[run_index] + k
                scores[row, split] = score
                fit_times[row, split] = fit_time
                if error is not None:
                    errors.setdefault(candidates[row].name, error)
        failed = np.isnan(scores).any(axis=1)
        networks = [
            i
            for i, candidate in enumerate(candidates)
            if candidate.family in ("fine_tune", "wise_ft", "l2sp", "scratch")
        ]
        if failed.all() or (networks and failed[networks].all()):
            # Every network failing is a problem of the settings, the data or
            # the network, not of a strategy: say it as the network said it,
            # rather than fall back to a linear model without a word.
            first = candidates[networks[0] if networks else 0].name
            raise errors.get(first, next(iter(errors.values())))
        return scores, fit_times, errors

    def _refit(self, run, candidate, data, network, X, y, sample_weight):
        if run.kind == "source":
            model = self._source_model(network)
            return model._fit_guarded(X, y, sample_weight, frozen_outputs=data.frozen)
        if run.kind == "features":
            transformer = PretrainedFeatureTransformer(
                network, batch_size=max(self.batch_size or 0, 256), device=self.device
            ).fit(X)
            scale = StandardScaler().fit(data.features, sample_weight=sample_weight)
            model = linear_model(self._task == "classification").fit(
                scale.transform(data.features), y, sample_weight=sample_weight
            )
            return Pipeline(
                [("features", transformer), ("scale", scale), ("model", model)]
            )
        if run.kind == "linear":
            return run.estimator.fit(X, y, model__sample_weight=sample_weight)
        estimator = run.estimator
        if candidate.family == "wise_ft":
            estimator = estimator.set_params(
                interpolation=candidate.params["interpolation"]
            )
        return estimator._fit_guarded(X, y, sample_weight, frozen_outputs=data.frozen)

    # --- the choice and what it records ---------------------------------------

    def _record(self, candidates, scores, fit_times, splits, chosen, best):
        means = np.where(np.isnan(scores).any(axis=1), np.nan, scores.mean(axis=1))
        order = np.argsort(-np.nan_to_num(means, nan=-np.inf), kind="stable")
        ranks = np.empty(len(candidates), dtype=np.int32)
        ranks[order] = np.arange(1, len(candidates) + 1)
        results = {
            "strategy": np.array([c.name for c in candidates], dtype=object),
            "params": [dict(c.params) for c in candidates],
            "mean_test_score": means,
            "std_test_score": scores.std(axis=1),
            "rank_test_score": ranks,
            "mean_fit_time": fit_times.mean(axis=1),
            "std_fit_time": fit_times.std(axis=1),
        }
        for split in range(len(splits)):
            results[f"split{split}_test_score"] = scores[:, split]
        self.cv_results_ = results
        self.best_index_ = int(chosen)
        self.best_strategy_ = candidates[chosen].name
        self.best_score_ = float(means[chosen])
        self.n_splits_ = len(splits)

    def _comparison(self, candidates, scores, fit_times, n_train, n_test):
        metric = self.scoring if isinstance(self.scoring, str) else "score"
        usable = [i for i in range(len(candidates)) if not np.isnan(scores[i]).any()]
        per_strategy = {
            candidates[i].name: {metric: scores[i], "fit_time": fit_times[i]}
            for i in usable
        }
        baselines = [i for i in usable if not candidates[i].transfers]
        reference = max(baselines or usable, key=lambda i: float(scores[i].mean()))
        return summarize_scores(
            per_strategy,
            candidates[reference].name,
            [metric],
            n_train,
            n_test,
            warn=False,
        )

    def _warn_negative_transfer(self, candidates, scores, chosen, n_train, n_test):
        usable = [i for i in range(len(candidates)) if not np.isnan(scores[i]).any()]
        baselines = [i for i in usable if not candidates[i].transfers]
        transfers = [i for i in usable if candidates[i].transfers]
        if not baselines or not transfers:
            return
        baseline = max(baselines, key=lambda i: float(scores[i].mean()))
        transfer = max(transfers, key=lambda i: float(scores[i].mean()))
        difference = scores[transfer] - scores[baseline]
        _, p_value = corrected_paired_ttest(difference, n_train, n_test)
        if difference.mean() < 0 and p_value < 0.05:
            warnings.warn(
                f"Negative transfer: the best strategy that uses the source, "
                f"{candidates[transfer].name!r}, scores "
                f"{-difference.mean():.3f} below {candidates[baseline].name!r}, "
                f"which does not (corrected paired t-test p={p_value:.3g}). "
                f"{type(self).__name__} uses {candidates[chosen].name!r}.",
                NegativeTransferWarning,
                stacklevel=4,
            )

    # --- prediction -------------------------------------------------------------

    def _evidence_decision(self, outputs, y_encoded):
        """``(None, head, reason)`` from the source's predictions on the rows."""
        agrees, _, description = self._head_evidence(outputs, y_encoded)
        if agrees:
            return None, "reuse", f"reused: {description}"
        return None, "new", f"not reused: {description}"

    @staticmethod
    def _as_network_input(X, input_dtype):
        if input_dtype.is_floating_point:
            X = X.astype(torch.empty((), dtype=input_dtype).numpy().dtype, copy=False)
        return positive_strides(X)

    def _check_prediction_input(self, X):
        check_is_fitted(self)
        integer_input = not self._input_dtype.is_floating_point
        ndim = getattr(X, "ndim", 0)
        fitted_on = (
            f"{type(self).__name__} was fitted on samples of shape {self._sample_shape}"
        )
        # Before validate_data, whose message would count an image's channels
        # as its "features".
        if ndim >= 2 and ndim != len(self._sample_shape) + 1:
            raise ValueError(f"X has samples of shape {X.shape[1:]}, but {fitted_on}.")
        check_object_values(X)
        X = validate_data(
            self,
            X,
            reset=False,
            dtype=None if integer_input else "numeric",
            allow_nd=True,
            ensure_all_finite=True,
        )
        if X.shape[1:] != self._sample_shape:
            raise ValueError(f"X has samples of shape {X.shape[1:]}, but {fitted_on}.")
        if not integer_input:
            check_representable(
                X,
                self._input_dtype,
                feature_names=getattr(self, "feature_names_in_", None),
            )
        return self._as_network_input(X, self._input_dtype)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags


def _frozen_pass(network, X, input_dtype, device):
    """The frozen source's features and outputs on every row, once per fit.

    Works on a copy: splitting body from head changes the network, and the
    candidates receive the whole source.
    """
    body, head, _ = split_body_head(copy.deepcopy(network))
    return FrozenSourceOutputs.compute(
        body.to(device),
        logits_head(head).to(device),
        array_batches(X, input_dtype, device, 256),
        X.shape[0],
    )


def _choose(candidates, scores, splits):
    """The best candidate, or the untouched source when it is as good within noise.

    The best candidate has the highest mean score over the splits (ties go
    to the safer, earlier in :data:`~sktransfer._portfolio.FAMILIES`). The
    untouched source is chosen instead when it is within noise of the best:
    the mean of their per-split differences is at most one standard error
    of that mean, with the variance corrected for the overlap of
    cross-validation training sets (Nadeau and Bengio's
    ``1/J + n_test/n_train``). It trains nothing, so it cannot lose what
    the user had; between trained candidates, the best mean is the better
    bet (on the accuracy suite, preferring the simplest trained candidate
    within noise cost 0.025 of accuracy on average, against 0.009).
    """
    usable = [i for i in range(len(candidates)) if not np.isnan(scores[i]).any()]
    means = {i: float(scores[i].mean()) for i in usable}
    best = max(usable, key=lambda i: (means[i], [-x for x in candidates[i].safety]))
    n_train = np.mean([len(train) for train, _ in splits])
    n_test = np.mean([len(test) for _, test in splits])
    n_splits = scores.shape[1]
    chosen = best
    for i in usable:
        if candidates[i].family != "source" or i == best:
            continue
        difference = scores[best] - scores[i]
        spread = difference.var(ddof=1) if n_splits > 1 else 0.0
        standard_error = math.sqrt(spread * (1 / n_splits + n_test / n_train))
        if difference.mean() <= standard_error:
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


_PORTFOLIO = """\
The portfolio, each candidate cross-validated on the same splits of the
    training data only:

    - ``"source"``: the untouched source network (no training), when its
      outputs mean the target's classes: ``source_classes`` names every
      class, or its predictions agree with ``y`` far above chance (the test
      of ``FineTunedClassifier``'s ``head="auto"``);
    - ``"features"``: a linear model (logistic regression / ridge) on the
      frozen source features, standardised;
    - ``"fine_tune"``: :class:`FineTuned*` with its defaults (a new head
      starts as a linear probe: LP-FT);
    - ``"wise_ft"``: the same fine-tuned weights interpolated with the
      starting ones, for each value of ``interpolations`` (no extra
      training);
    - ``"l2sp"``: :class:`KnowledgeRegularized*` with L2-SP, for each ``lam``;
    - the non-transfer baselines: ``"linear"``, the linear model on the
      inputs (standardised, n-D samples flattened; not for token ids), and
      ``"scratch"``, the source architecture trained from fresh weights
      (100 epochs unless ``max_epochs`` is given: fresh weights need more
      steps than a fine-tune).

    The frozen source network runs once per ``fit``, over every training
    row; its outputs and features serve every candidate and split that
    needs them (the untouched source, the features' linear model, the new
    head's linear probe).

    The choice: the candidate with the best mean score, unless the
    untouched source is within one standard error of it (the mean of the
    per-split differences at most its standard error, with the variance
    corrected for overlapping training sets as in Nadeau and Bengio's test):
    the source trains nothing, so within noise it is the safe choice. Ties
    go to the earlier of: source, linear, features, wise_ft (smaller
    interpolation first), l2sp (larger λ first), fine_tune, scratch. The
    choice is then refitted on all the training data. A
    :class:`~sktransfer.model_selection.NegativeTransferWarning` is raised
    when the best candidate that uses the source scores significantly below
    the best one that does not."""

_SOURCE_CLASSES = """\
source_classes : array-like of shape (n_source_outputs,) or None, \
default=None
        The label of each of the source's outputs, in output order (see
        :class:`FineTunedClassifier`); it decides whether the untouched
        source is a candidate and the head of the network candidates."""

_SHARED_PARAMETERS = """\
strategies : list of str or None, default=None
        The families of the portfolio to try, among ``"source"``,
        ``"linear"``, ``"features"``, ``"wise_ft"``, ``"l2sp"``,
        ``"fine_tune"``, ``"scratch"``; None: all that apply.
    lams : list of float, default=(0.01, 0.1, 1.0)
        The λ of the L2-SP candidates.
    interpolations : list of float, default=(0.5,)
        The WiSE-FT weights of the fine-tuned weights, in [0, 1].
    cv : int, cross-validation generator, iterable or None, default=None
        None: repeated (stratified, for classifiers) K-fold with
        ``K = min(5, smallest class count)`` (classifiers) or
        ``min(5, n_samples // 2)`` (regressors), repeated until at least 10
        splits are scored. An int: (stratified) K-fold, as in scikit-learn.
    scoring : str, callable or None, default=None
        How candidates are scored (a scikit-learn scorer name or callable);
        None: the estimator's ``score`` (accuracy / R²).
    max_epochs : int, "auto" or None, default=None
        Epochs of the network candidates; None keeps each estimator's default.
    lr : float or None, default=None
        Learning rate of the network candidates; None: each one's default.
    batch_size : int or None, default=None
        Batch size of the network candidates; None: each one's default.
    device : str or torch.device, default="cpu"
    n_jobs : int or None, default=None
        Fits run in parallel through joblib (one per candidate and split).
    random_state : int, RandomState instance or None, default=None
        Seeds the splits and every network candidate.
    verbose : int, default=0
        1 prints the comparison and the choice; 2 and more also joblib's
        progress."""

_SHARED_ATTRIBUTES = """\
best_strategy_ : str
        The chosen candidate, e.g. ``"l2sp(lam=0.1)"``.
    best_estimator_ : estimator
        The chosen candidate, refitted on all the training data.
    best_score_ : float
        Its mean cross-validated score.
    best_index_ : int
        Its row in ``cv_results_``.
    strategy_choice_reason_ : str
        Why it was chosen.
    cv_results_ : dict of str to ndarray
        One entry per candidate, as ``GridSearchCV.cv_results_``:
        ``strategy``, ``params``, ``mean_test_score``, ``std_test_score``,
        ``rank_test_score``, ``split<i>_test_score``, ``mean_fit_time``,
        ``std_fit_time``.
    comparison_ : StrategyComparison
        Every candidate against the best non-transfer baseline, on the same
        splits (prints as a table).
    head_choice_ : {"reuse", "new"}
        The head the network candidates use, decided once on all the data.
    head_choice_reason_ : str
    n_splits_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str"""


@Substitution(
    portfolio=_PORTFOLIO,
    source=SOURCE,
    source_classes=_SOURCE_CLASSES,
    parameters=_SHARED_PARAMETERS,
    attributes=_SHARED_ATTRIBUTES,
)
class AutoTransferClassifier(ClassifierTargetsMixin, ClassifierMixin, _AutoTransfer):
    """Choose and fit the transfer strategy that cross-validates best.

    One estimator that, inside ``fit``, compares the usual ways of reusing
    a pretrained network with the ways of not reusing it, on the training
    data only, and keeps the best, or the untouched source when it is as
    good within noise.

    {portfolio}

    Parameters
    ----------
    {source}
    {source_classes}
    {parameters}

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    {attributes}

    See Also
    --------
    sktransfer.model_selection.compare_strategies : the same comparison on
        held-out data, for reporting.

    Examples
    --------
    >>> import torch
    >>> from sklearn.datasets import load_iris
    >>> from sktransfer import AutoTransferClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> source = torch.nn.Sequential(
    ...     torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5))
    >>> auto = AutoTransferClassifier(
    ...     source, strategies=["linear", "features", "fine_tune"], cv=3,
    ...     max_epochs=10, random_state=0).fit(X, y)
    >>> auto.best_strategy_ in auto.cv_results_["strategy"]
    True
    >>> auto.predict(X[:3]).shape
    (3,)
    """

    def __init__(
        self,
        source_module,
        *,
        source_weights=None,
        source_classes=None,
        strategies=None,
        lams=(0.01, 0.1, 1.0),
        interpolations=(0.5,),
        cv=None,
        scoring=None,
        max_epochs=None,
        lr=None,
        batch_size=None,
        device="cpu",
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.source_module = source_module
        self.source_weights = source_weights
        self.source_classes = source_classes
        self.strategies = strategies
        self.lams = lams
        self.interpolations = interpolations
        self.cv = cv
        self.scoring = scoring
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    _parameter_constraints = {
        **_AutoTransfer._parameter_constraints,
        "source_classes": ["array-like", None],
    }

    def _scoring_template(self):
        return SourceModelClassifier(None)

    def _cv(self, y, y_encoded, seed):
        if self.cv is not None:
            return check_cv(self.cv, y, classifier=True)
        smallest = int(np.bincount(y_encoded).min())
        if smallest < 2:
            raise ValueError(
                f"{type(self).__name__} cross-validates on the training data "
                f"and needs at least 2 samples of every class; the class "
                f"{self.classes_[np.bincount(y_encoded).argmin()]!r} has "
                f"{smallest}. Pass cv to split otherwise."
            )
        n_splits = min(_MAX_FOLDS, smallest)
        return RepeatedStratifiedKFold(
            n_splits=n_splits,
            n_repeats=math.ceil(_MIN_SPLITS / n_splits),
            random_state=seed,
        )

    def _source_head_decision(self, network, frozen, y_encoded):
        """``(columns, head, reason)``: do the source's outputs mean classes_?"""
        outputs = frozen.outputs
        classes = self.classes_.tolist()
        if outputs is None:
            return None, "new", "the source network has no head (it gives features)"
        if self.source_classes is not None:
            labels = check_source_classes(
                self.source_classes, outputs.shape[1], "the source network"
            )
            columns, missing = rows_of_classes(labels, classes)
            if missing:
                return (
                    None,
                    "new",
                    f"source_classes has no output for the classes {missing} of y",
                )
            return (
                columns,
                "reuse",
                "source_classes names an output for every class of y",
            )
        if outputs.shape[1] != len(classes):
            return (
                None,
                "new",
                f"the source head has {outputs.shape[1]} outputs, but y has "
                f"{len(classes)} classes",
            )
        return self._evidence_decision(outputs, y_encoded)

    def _source_model(self, network):
        return SourceModelClassifier(
            network,
            source_classes=self.source_classes,
            batch_size=max(self.batch_size or 0, 256),
            device=self.device,
        )

    def predict(self, X):
        """Predict classes with the chosen strategy, refitted on all the data.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        X = self._check_prediction_input(X)  # first: it says if unfitted
        return self.best_estimator_.predict(X)

    def predict_proba(self, X):
        """Class probabilities of the chosen strategy.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        X = self._check_prediction_input(X)
        return self.best_estimator_.predict_proba(X)


@Substitution(
    portfolio=_PORTFOLIO,
    source=SOURCE,
    parameters=_SHARED_PARAMETERS,
    attributes=_SHARED_ATTRIBUTES,
)
class AutoTransferRegressor(RegressorTargetsMixin, RegressorMixin, _AutoTransfer):
    """Choose and fit the transfer strategy that cross-validates best.

    The regression counterpart of :class:`AutoTransferClassifier`.

    {portfolio}

    Parameters
    ----------
    {source}
    {parameters}

    Attributes
    ----------
    n_outputs_ : int
    {attributes}
    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from sktransfer import AutoTransferRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(60, 3))
    >>> y = X @ np.array([1.0, -2.0, 0.5])
    >>> source = torch.nn.Sequential(
    ...     torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    >>> auto = AutoTransferRegressor(
    ...     source, strategies=["linear", "fine_tune"], cv=3, max_epochs=10,
    ...     random_state=0).fit(X, y)
    >>> auto.best_strategy_
    'linear'
    """

    def __init__(
        self,
        source_module,
        *,
        source_weights=None,
        strategies=None,
        lams=(0.01, 0.1, 1.0),
        interpolations=(0.5,),
        cv=None,
        scoring=None,
        max_epochs=None,
        lr=None,
        batch_size=None,
        device="cpu",
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.source_module = source_module
        self.source_weights = source_weights
        self.strategies = strategies
        self.lams = lams
        self.interpolations = interpolations
        self.cv = cv
        self.scoring = scoring
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    def _scoring_template(self):
        return SourceModelRegressor(None)

    def _cv(self, y, y_encoded, seed):
        if self.cv is not None:
            return check_cv(self.cv, y, classifier=False)
        n_splits = min(_MAX_FOLDS, y.shape[0] // 2)
        if n_splits < 2:
            raise ValueError(
                f"{type(self).__name__} cross-validates on the training data "
                f"and needs at least 4 samples; got {y.shape[0]}."
            )
        return RepeatedKFold(
            n_splits=n_splits,
            n_repeats=math.ceil(_MIN_SPLITS / n_splits),
            random_state=seed,
        )

    def _source_head_decision(self, network, frozen, y_encoded):
        outputs = frozen.outputs
        if outputs is None:
            return None, "new", "the source network has no head (it gives features)"
        if outputs.shape[1] != y_encoded.shape[1]:
            return (
                None,
                "new",
                f"the source head has {outputs.shape[1]} outputs, but y has "
                f"{y_encoded.shape[1]} columns",
            )
        return self._evidence_decision(outputs, y_encoded)

    def _source_model(self, network):
        return SourceModelRegressor(
            network, batch_size=max(self.batch_size or 0, 256), device=self.device
        )

    def predict(self, X):
        """Predict values with the chosen strategy, refitted on all the data.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        X = self._check_prediction_input(X)  # first: it says if unfitted
        predictions = self.best_estimator_.predict(X)
        # Models fitted on float32 inputs predict float32 values.
        return np.asarray(predictions, dtype=np.float64)

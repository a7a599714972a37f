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
    clone,
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
from ._choice import (
    NEAR_PERFECT,
    average_within_noise,
    choose,
    in_sample_source,
    usable_rows,
)
from ._core import validate_array_input
from ._docstrings import SOURCE, Substitution
from ._domain_adaptation import (
    DomainAdaptationClassifier,
    DomainAdaptationRegressor,
)
from ._dry_run import check_input_fits_network
from ._feature_transfer import PretrainedFeatureTransformer
from ._fine_tuning import FineTunedClassifier, FineTunedRegressor
from ._frozen_pass import FrozenSourceOutputs, array_batches
from ._heads import logits_head
from ._joint_training import check_source_data
from ._knowledge_regularized import (
    KnowledgeRegularizedClassifier,
    KnowledgeRegularizedRegressor,
)
from ._portfolio import (
    FAMILIES,
    NETWORK_FAMILIES,
    AveragedClassifier,
    AveragedRegressor,
    Candidate,
    Run,
    evaluate_run,
    fit_weighted,
    flatten_samples,
    linear_model,
)
from ._seeding import seeded
from ._source import resolve_source, split_body_head
from ._source_classes import check_source_classes, rows_of_classes
from ._source_model import SourceModelClassifier, SourceModelRegressor
from ._target_validation import (
    IN_SAMPLE_NOTE,
    VALIDATION_NOTES,
    check_weighted_scoring,
    target_likeness,
    validation_splits,
    with_adaptation_epochs,
)
from ._targets import ClassifierTargetsMixin, RegressorTargetsMixin
from ._training_checks import check_device
from ._unlabeled import UnlabeledData, check_wrapped, extra_inputs
from ._validation import (
    check_object_values,
    check_representable,
    check_sample_weight,
    positive_strides,
)
from .adaptation._terms import ADAPTATION_METHODS, CLASS_PROBABILITY_METHODS
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

    def __init__(
        self,
        X,
        y,
        sample_weight,
        frozen,
        classes,
        scoring_weights=None,
        keep_predictions=False,
    ):
        self.X = X
        self.y = y
        self.sample_weight = sample_weight
        self.frozen = frozen
        self.classes = classes
        self.scoring_weights = scoring_weights
        self.keep_predictions = keep_predictions
        self.rows = np.arange(X.shape[0]).reshape(-1, 1)
        self.features = flatten_samples(frozen.features)


class _AutoTransfer(SourceModuleMixin, BaseEstimator):
    _parameter_constraints = {
        "source_module": "no_validation",
        "source_weights": [str, os.PathLike, None],
        "strategies": [list, tuple, None],
        "lams": [list, tuple],
        "interpolations": [list, tuple],
        "adaptation_methods": [list, tuple],
        "adaptation_lams": [list, tuple],
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

    # No other estimator consumes it: requested by default under routing.
    __metadata_request__fit = {"unlabeled_data": True, "source_data": True}

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, unlabeled_data=None, source_data=None):
        """Cross-validate the portfolio on (X, y), then refit the choice on all of it.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, ...)
            Inputs the source network accepts: target rows, or source-domain
            rows when ``unlabeled_data`` holds the target's inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target labels (classifier) or values (regressor).
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the training loss of every candidate (not of the
            cross-validation scores).
        unlabeled_data : UnlabeledData, default=None
            Target-domain inputs without labels, shaped like X. They add the
            domain-adaptation candidates, and (without ``source_data``)
            every candidate is scored for the target domain: on the
            labelled rows that look like them, each with its importance
            weight (see the portfolio above).
        source_data : SourceData, default=None
            Labelled rows of the source domain, in the label space of ``y``
            (every label one of ``y``'s; for a regressor, as many outputs).
            They train every candidate in every split and in the refit, and
            are never scored: the candidates are scored on ``(X, y)`` only,
            which are then the target's rows. Pass them here rather than
            inside X when the untouched source network was trained on them:
            scored, they would favour it. The untouched source is then not
            preferred within noise: the best mean score wins. Being
            labelled in ``y``'s label space, they count with X's rows as
            evidence for the head decision (``head_choice_``).

        Returns
        -------
        self : object
        """
        with rolled_back_on_failure(self):
            return self._fit(X, y, sample_weight, unlabeled_data, source_data)

    def _fit(self, X, y, sample_weight, unlabeled_data, source_data):
        if unlabeled_data is not None:
            check_wrapped(unlabeled_data)
        if source_data is not None:
            check_source_data(source_data)
        families = self._check_strategies(unlabeled_data is not None)
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
        n_target = X.shape[0]
        if source_data is not None:
            X, y, y_encoded, sample_weight = self._with_source_rows(
                source_data, network, X, y, y_encoded, sample_weight
            )
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
        unlabeled, target_like, scoring_weights = None, None, None
        if unlabeled_data is not None:
            unlabeled = UnlabeledData(
                self._extra_rows(unlabeled_data.X, network, X, "UnlabeledData's X")
            )
        if source_data is not None:
            # (X, y) are the target's rows: validate on them, unweighted.
            target_like = np.arange(n_target)
        elif unlabeled_data is not None:
            check_weighted_scoring(self.scoring)
            scoring_weights, target_like = target_likeness(
                frozen.features,
                _frozen_pass(network, unlabeled.X, input_dtype, self.device).features,
                cv_seed,
            )
            if self.cv is not None:
                # The user's splits are over every row: score them all.
                target_like = np.array([], dtype=int)
        self.importance_weights_ = scoring_weights
        splits, validation = validation_splits(
            self._cv,
            y,
            y_encoded,
            target_like,
            cv_seed,
            classification=self._task == "classification",
            source_rows=source_data is not None,
        )
        data = _FitData(
            X,
            y,
            sample_weight,
            frozen,
            getattr(self, "classes_", None),
            scoring_weights,
            keep_predictions="ensemble" in families,
        )
        n_train = float(np.mean([len(train) for train, _ in splits]))
        runs = self._portfolio(
            network,
            families,
            head,
            source_columns,
            network_seed,
            integer_input,
            unlabeled=unlabeled,
            n_train=n_train,
        )
        candidates = [c for run in runs for c in run.candidates]
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
        scores, fit_times, errors, predictions = self._collect(
            runs, splits, tasks, outcomes
        )
        # Only source-domain labels (importance-weighted scores): the
        # untouched source may have learned the very rows it is scored on,
        # which near-perfect accuracy (the default scoring) gives away.
        in_sample = None
        if (
            scoring_weights is not None
            and self._task == "classification"
            and self.scoring is None
        ):
            in_sample = in_sample_source(candidates, scores)
        # With SourceData every candidate that trains keeps training on the
        # source's own rows: the untouched source is not the safer one.
        chosen, best, reason = choose(
            candidates,
            scores,
            splits,
            in_sample_row=in_sample,
            prefer_source=validation != "source_data",
        )
        # The untouched source, chosen, is kept as it is: it trains nothing.
        if "ensemble" in families and candidates[chosen].family != "source":
            candidates, scores, fit_times, chosen, reason = average_within_noise(
                candidates,
                scores,
                fit_times,
                predictions,
                (data, splits, scorer),
                best,
                reason,
                excluded=() if in_sample is None else (in_sample,),
            )
        reason += VALIDATION_NOTES[validation]
        if in_sample is not None:
            reason += IN_SAMPLE_NOTE
            warnings.warn(
                "The untouched source network scores "
                f"{scores[in_sample].mean():.3f} on the labelled rows, scored as "
                "stand-ins for the target domain (weighted toward "
                "unlabeled_data): most likely its training "
                "rows. Its score is then in-sample and says nothing about the "
                "target domain; the best candidate that trains was preferred "
                f"if it scores {NEAR_PERFECT} or more out of fold too (chosen: "
                f"{candidates[chosen].name!r}). To measure what adaptation "
                "gives, pass labelled target rows, even a few, as X and the "
                "source rows as source_data=SourceData(X_source, y_source).",
                UserWarning,
                stacklevel=3,
            )
        n_test = float(np.mean([len(test) for _, test in splits]))
        self._record(candidates, scores, fit_times, splits, chosen, best)
        self.comparison_ = self._comparison(
            candidates, scores, fit_times, n_train, n_test
        )
        self.strategy_choice_reason_ = reason
        self._warn_negative_transfer(
            candidates, scores, chosen, n_train, n_test, in_sample_row=in_sample
        )
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

        refit = {
            "runs": runs,
            "data": data,
            "network": network,
            "n_unlabeled": None if unlabeled is None else len(unlabeled.X),
        }
        chosen_candidate = candidates[chosen]
        if chosen_candidate.family == "ensemble":
            classification = self._task == "classification"
            members = [
                self._refit(member, fresh=True, **refit)
                for member in chosen_candidate.members
            ]
            if classification:
                self.best_estimator_ = AveragedClassifier(
                    members, temperatures=chosen_candidate.params["temperatures"]
                )
            else:
                self.best_estimator_ = AveragedRegressor(members)
        else:
            self.best_estimator_ = self._refit(chosen_candidate, **refit)
        return self

    def _with_source_rows(self, source_data, network, X, y, y_encoded, sample_weight):
        """The fit's rows followed by ``source_data``'s, validated alike."""
        X_source = self._extra_rows(source_data.X, network, X, "SourceData's X")
        y_source, y_source_encoded = self._encode_more_targets(
            source_data.y, X_source.shape[0], "SourceData's y"
        )
        source_weight = check_sample_weight(
            source_data.sample_weight, X_source, name="SourceData's sample_weight"
        )
        return (
            np.concatenate([X, X_source]),
            np.concatenate([y, y_source]),
            np.concatenate([y_encoded, y_source_encoded]),
            np.concatenate([sample_weight, source_weight]),
        )

    def _extra_rows(self, X_extra, network, X, name):
        """Inputs besides X (source or unlabelled rows), validated as X was."""
        columns = getattr(X_extra, "columns", None)
        fitted_names = getattr(self, "feature_names_in_", None)
        if (
            columns is not None
            and fitted_names is not None
            and list(map(str, columns)) != list(fitted_names)
        ):
            raise ValueError(
                f"{name} has the columns {list(columns)}, but X had "
                f"{list(fitted_names)}; both must name the same features in "
                "the same order."
            )
        probe = torch.tensor(X[:1], dtype=self._input_dtype)
        X_extra = extra_inputs(X_extra, probe, name, network)
        return self._as_network_input(X_extra, self._input_dtype)

    # --- the portfolio ---------------------------------------------------------

    def _check_strategies(self, has_unlabeled):
        if self.strategies is None:
            families = set(FAMILIES)
            if not has_unlabeled:
                families.discard("adaptation")
        else:
            unknown = sorted(set(self.strategies) - set(FAMILIES))
            if unknown or not self.strategies:
                raise ValueError(
                    f"strategies must name some of {list(FAMILIES)}; got "
                    f"{list(self.strategies)}."
                )
            families = set(self.strategies)
            if "adaptation" in families and not has_unlabeled:
                raise ValueError(
                    "The 'adaptation' strategies learn from the target "
                    "domain's unlabelled inputs: pass fit(X, y, "
                    "unlabeled_data=UnlabeledData(X_target)), or leave "
                    "'adaptation' out of strategies."
                )
        if "adaptation" in families:
            self._check_adaptation_methods()
        return families

    def _check_adaptation_methods(self):
        allowed = [
            name
            for name in ADAPTATION_METHODS
            if self._task == "classification" or name not in CLASS_PROBABILITY_METHODS
        ]
        methods = list(self.adaptation_methods)
        if not methods or any(
            not isinstance(method, str) or method not in allowed for method in methods
        ):
            raise ValueError(
                f"adaptation_methods must name some of {allowed}; got {methods}."
            )
        if not self.adaptation_lams or any(
            not isinstance(lam, Real) or not lam > 0 for lam in self.adaptation_lams
        ):
            raise ValueError(
                "adaptation_lams must hold positive numbers (lam=0 is the "
                f"'fine_tune' candidate); got {list(self.adaptation_lams)}."
            )

    def _portfolio(
        self,
        network,
        families,
        head,
        source_columns,
        seed,
        integer_input,
        *,
        unlabeled=None,
        n_train=None,
    ):
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
        if "adaptation" in families:
            adaptation = (
                DomainAdaptationClassifier
                if classification
                else DomainAdaptationRegressor
            )
            for method in self.adaptation_methods:
                for lam in self.adaptation_lams:
                    estimator = adaptation(network, method=method, lam=lam, **shared)
                    runs.append(
                        Run(
                            "network",
                            # A weaker pull toward the unlabelled rows is safer.
                            [
                                Candidate(
                                    "adaptation",
                                    {"method": method, "lam": lam},
                                    (rank["adaptation"], lam),
                                )
                            ],
                            estimator=with_adaptation_epochs(
                                estimator,
                                self.max_epochs,
                                n_train,
                                len(unlabeled.X),
                            ),
                            fit_params={"unlabeled_data": unlabeled},
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
        predictions = [[None] * len(splits) for _ in candidates]
        errors = {}
        for (run_index, split), results in zip(tasks, outcomes, strict=True):
            for k, (score, fit_time, error, predicted) in enumerate(results):
                row = offset[run_index] + k
                scores[row, split] = score
                fit_times[row, split] = fit_time
                predictions[row][split] = predicted
                if error is not None:
                    errors.setdefault(candidates[row].name, error)
        failed = np.isnan(scores).any(axis=1)
        networks = [
            i
            for i, candidate in enumerate(candidates)
            if candidate.family in NETWORK_FAMILIES
        ]
        if failed.all() or (networks and failed[networks].all()):
            # Every network failing is a problem of the settings, the data or
            # the network, not of a strategy: say it as the network said it,
            # rather than fall back to a linear model without a word.
            first = candidates[networks[0] if networks else 0].name
            raise errors.get(first, next(iter(errors.values())))
        return scores, fit_times, errors, predictions

    def _refit(self, candidate, *, runs, data, network, n_unlabeled, fresh=False):
        """``candidate`` fitted on every training row.

        ``fresh``: fit a clone of the run's estimator (the members of an
        ensemble may share a run: fine-tuning and its WiSE-FT).
        """
        run = next(run for run in runs if candidate in run.candidates)
        X, y, sample_weight = data.X, data.y, data.sample_weight
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
        estimator = clone(run.estimator) if fresh else run.estimator
        if run.kind == "linear":
            return fit_weighted(estimator, X, y, sample_weight)
        if candidate.family == "adaptation":
            # As many gradient steps as in cross-validation, now on all rows.
            estimator = with_adaptation_epochs(
                estimator, self.max_epochs, X.shape[0], n_unlabeled
            )
        if candidate.family == "wise_ft":
            estimator = estimator.set_params(
                interpolation=candidate.params["interpolation"]
            )
        return estimator._fit_guarded(
            X, y, sample_weight, frozen_outputs=data.frozen, **run.fit_params
        )

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
        usable = usable_rows(scores)
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

    def _warn_negative_transfer(
        self, candidates, scores, chosen, n_train, n_test, in_sample_row=None
    ):
        # An in-sample source score says nothing of the target: not evidence
        # that transfer helps.
        usable = usable_rows(scores, excluded=(in_sample_row,))
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
    - ``"adaptation"``, when ``fit`` gets ``unlabeled_data``:
      :class:`DomainAdaptation*` for each of ``adaptation_methods`` and
      ``adaptation_lams``, trained for as many gradient steps as the
      ``"fine_tune"`` candidate (unless ``max_epochs`` is given);
    - the non-transfer baselines: ``"linear"``, the linear model on the
      inputs (standardised, n-D samples flattened; not for token ids), and
      ``"scratch"``, the source architecture trained from fresh weights
      (100 epochs unless ``max_epochs`` is given: fresh weights need more
      steps than a fine-tune);
    - ``"ensemble"``: when other candidates are within one standard error
      of the best (see below), the average of the best and at most two of
      them (class probabilities, each tempered by the temperature that
      calibrates its split predictions, or predicted values), scored on
      every split from the predictions its members made there, without
      another fit; refitted, it fits its members. When cross-validation
      cannot tell candidates apart, choosing one is a coin toss; their
      average is often better than either (a linear model and a network
      trained from scratch, on a useless source).

    The frozen source network runs once per ``fit``, over every training
    row; its outputs and features serve every candidate and split that
    needs them (the untouched source, the features' linear model, the new
    head's linear probe).

    With ``unlabeled_data``, every candidate is scored for the target
    domain. A logistic regression telling the frozen source's features of
    the training rows from those of the unlabelled rows (cross-fitted, once
    per fit) gives each training row its density ratio
    ``p_target(x) / p_train(x)``. The rows at least as target-like as 90% of
    the unlabelled rows are the validation rows: the cross-validation splits
    them, and every other row trains in every split. Each score counts with
    the row's importance weight (importance-weighted validation, Sugiyama
    et al., 2007). With too few target-like rows to split (fewer than 2 of
    a class; 10 rows for a regressor), or with a ``cv`` of your own, every
    row is split and weighted: an estimate, and a weak one when the source
    network was trained on these rows (it then scores them perfectly, and
    the untouched source is kept).

    The choice: the candidate with the best mean score, unless the
    untouched source is within one standard error of it (the mean of the
    per-split differences at most its standard error, with the variance
    corrected for overlapping training sets as in Nadeau and Bengio's test):
    the source trains nothing, so within noise it is the safe choice. Not
    with ``source_data``: every candidate then trains on the source's own
    rows and keeps what it learned from them, and the few target rows
    scored rarely tell a real gain from noise, so the best mean wins.
    Otherwise, when other candidates are within one standard error of the
    best, the ``"ensemble"`` of the best and the (at most two) closest of
    them is scored too, each classifier's probabilities tempered first to
    be calibrated on its split predictions; it is the choice when it scores
    higher than the best alone. Ties go to the earlier of: source, linear, features,
    wise_ft (smaller interpolation first), l2sp (larger λ first),
    fine_tune, adaptation (smaller λ first), scratch. The
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
        ``"fine_tune"``, ``"adaptation"``, ``"scratch"``, ``"ensemble"``;
        None: all that apply (``"adaptation"`` when ``fit`` gets
        ``unlabeled_data``).
    lams : list of float, default=(0.01, 0.1, 1.0)
        The λ of the L2-SP candidates.
    interpolations : list of float, default=(0.5,)
        The WiSE-FT weights of the fine-tuned weights, in [0, 1].
    adaptation_methods : list of str, default={adaptation_default}
        The ``method`` of the domain-adaptation candidates (see
        :class:`DomainAdaptation{kind}`); used with ``unlabeled_data``.
    adaptation_lams : list of float, default=(0.1, 1.0)
        Their ``lam``, each > 0 (``lam=0`` is ``"fine_tune"``).
    cv : int, cross-validation generator, iterable or None, default=None
        None: repeated (stratified, for classifiers) K-fold with
        ``K = min(5, smallest class count)`` (classifiers) or
        ``min(5, n_samples // 2)`` (regressors), repeated until at least 10
        splits are scored. An int: (stratified) K-fold, as in scikit-learn.
        With ``unlabeled_data``, None splits the target-like rows only (see
        above); a ``cv`` of your own splits every row.
    scoring : str, callable or None, default=None
        How candidates are scored (a scikit-learn scorer name or callable);
        None: the estimator's ``score`` (accuracy / R²). With
        ``unlabeled_data`` the scores are importance-weighted: a callable
        must take ``sample_weight`` (as those of ``make_scorer`` do).
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
        The chosen candidate, e.g. ``"l2sp(lam=0.1)"`` or
        ``"ensemble(linear + scratch)"``.
    best_estimator_ : estimator
        The chosen candidate, refitted on all the training data (for an
        ensemble, a model whose ``estimators`` are its members).
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
    importance_weights_ : ndarray of shape (n_samples,) or None
        The weights of the training rows' cross-validation scores, toward
        ``unlabeled_data`` (mean 1); None when ``fit`` got none, or got
        ``source_data`` (X's rows are then the target's, scored unweighted).
    n_splits_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str"""


@Substitution(
    portfolio=_PORTFOLIO,
    source=SOURCE,
    source_classes=_SOURCE_CLASSES,
    parameters=_SHARED_PARAMETERS.format(
        adaptation_default='("entropy",)', kind="Classifier"
    ),
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
        adaptation_methods=("entropy",),
        adaptation_lams=(0.1, 1.0),
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
        self.adaptation_methods = adaptation_methods
        self.adaptation_lams = adaptation_lams
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
    parameters=_SHARED_PARAMETERS.format(
        adaptation_default='("coral",)', kind="Regressor"
    ),
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
        adaptation_methods=("coral",),
        adaptation_lams=(0.1, 1.0),
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
        self.adaptation_methods = adaptation_methods
        self.adaptation_lams = adaptation_lams
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

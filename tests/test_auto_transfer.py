"""AutoTransferClassifier / AutoTransferRegressor: the choice and its bookkeeping."""

import copy
import math
import pickle
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from _factories import EmbeddingSource, TrainingRowsSpy
from sklearn.base import clone
from sklearn.datasets import load_iris, make_regression
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from torch import nn

import sktransfer._choice
from sktransfer import (
    AutoTransferClassifier,
    AutoTransferRegressor,
    FineTunedClassifier,
    SourceData,
    TrainingDivergedError,
    UnlabeledData,
)
from sktransfer._choice import average_within_noise, choose
from sktransfer._portfolio import (
    FAMILIES,
    AveragedClassifier,
    Candidate,
    calibrating_temperature,
    tempered,
)
from sktransfer.datasets import load_digits_transfer, pretrain_source_network
from sktransfer.model_selection import NegativeTransferWarning, StrategyComparison

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_IRIS = ((X_IRIS - X_IRIS.mean(0)) / X_IRIS.std(0)).astype(np.float32)
QUICK = {"max_epochs": 5, "lams": (0.1,), "cv": 3, "random_state": 0}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


@pytest.fixture(scope="module")
def iris_source():
    """A network that knows iris well: output i means class i."""
    torch.manual_seed(0)
    return (
        FineTunedClassifier(
            nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3)),
            head="reuse",
            reinitialize=True,
            max_epochs=60,
            lr=0.01,
            random_state=0,
        )
        .fit(X_IRIS, Y_IRIS)
        .module_.eval()
    )


@pytest.fixture(scope="module")
def fitted(iris_source):
    subset = np.r_[0:10, 50:60, 100:110]
    return AutoTransferClassifier(iris_source, **QUICK).fit(
        X_IRIS[subset], Y_IRIS[subset]
    )


def test_every_family_is_a_candidate_when_the_source_means_the_classes(fitted):
    families = {name.split("(")[0] for name in fitted.cv_results_["strategy"]}

    # Domain adaptation needs unlabelled target rows, which this fit has not;
    # an average appears when candidates are within noise of the best.
    assert set(FAMILIES) - {"adaptation", "ensemble"} <= families
    assert families <= set(FAMILIES) - {"adaptation"}
    assert fitted.importance_weights_ is None
    assert fitted.head_choice_ == "reuse"


def test_cv_results_hold_every_split_and_consistent_summaries(fitted):
    results = fitted.cv_results_
    n_candidates = len(results["strategy"])
    splits = np.array(
        [results[f"split{i}_test_score"] for i in range(fitted.n_splits_)]
    )

    assert fitted.n_splits_ == 3
    assert splits.shape == (3, n_candidates)
    np.testing.assert_allclose(results["mean_test_score"], splits.mean(axis=0))
    np.testing.assert_allclose(results["std_test_score"], splits.std(axis=0))
    best_mean = results["mean_test_score"].max()
    assert (
        results["rank_test_score"][results["mean_test_score"] == best_mean].min() == 1
    )
    assert results["strategy"][fitted.best_index_] == fitted.best_strategy_
    assert fitted.best_score_ == results["mean_test_score"][fitted.best_index_]


def _within_one_standard_error(best, other, n_train=20, n_test=10):
    difference = best - other
    error = math.sqrt(difference.var(ddof=1) * (1 / len(difference) + n_test / n_train))
    return difference.mean() <= error


def test_the_choice_is_the_source_within_noise_or_the_best_averaged_with_its_peers(
    fitted,
):
    results = fitted.cv_results_
    splits = np.array(
        [results[f"split{i}_test_score"] for i in range(fitted.n_splits_)]
    ).T
    names = list(results["strategy"])
    singles = [i for i, name in enumerate(names) if not name.startswith("ensemble")]
    means = splits.mean(axis=1)
    best = max(singles, key=lambda i: means[i])
    source = names.index("source")
    chosen = fitted.best_strategy_

    if _within_one_standard_error(splits[best], splits[source]):
        assert chosen == "source"
        return
    by_mean = sorted(singles, key=lambda i: -means[i])
    peers = [
        names[i]
        for i in by_mean
        if i != best and _within_one_standard_error(splits[best], splits[i])
    ][:2]
    if not peers:
        assert means[names.index(chosen)] == means[best]
        return
    averaged = f"ensemble({' + '.join([names[best], *peers])})"
    # The average is recorded, and chosen only when it scores higher.
    if means[names.index(averaged)] > means[best]:
        assert chosen == averaged
    else:
        assert chosen == names[best]


def test_the_refitted_choice_predicts_and_the_comparison_is_kept(fitted):
    assert fitted.predict(X_IRIS).shape == (150,)
    assert fitted.predict_proba(X_IRIS).shape == (150, 3)
    assert isinstance(fitted.comparison_, StrategyComparison)
    assert fitted.best_strategy_ in fitted.comparison_.scores
    assert fitted.score(X_IRIS, Y_IRIS) > 0.8


def test_another_label_space_drops_the_untouched_source_and_the_head():
    task = load_digits_transfer(n_target_per_class=6, random_state=0)
    source = pretrain_source_network(task.X_source, task.y_source, max_epochs=10)

    auto = AutoTransferClassifier(
        source, strategies=["source", "features", "linear"], **QUICK
    ).fit(task.X_target, task.y_target)

    assert "source" not in auto.cv_results_["strategy"]
    assert auto.head_choice_ == "new"
    assert auto.head_choice_reason_.startswith("not reused")


def test_source_classes_make_the_untouched_source_a_candidate(iris_source):
    labels = np.array(["setosa", "versicolor", "virginica"])

    auto = AutoTransferClassifier(
        iris_source,
        source_classes=labels,
        strategies=["source", "linear"],
        **QUICK,
    ).fit(X_IRIS, labels[Y_IRIS])

    assert "source" in auto.cv_results_["strategy"]
    assert set(auto.predict(X_IRIS[:5])) <= set(labels)


def test_source_classes_are_checked_like_every_estimators(iris_source):
    # The one validator of source_classes: a label twice is refused, as by
    # FineTunedClassifier (test_source_classes.py), not silently looked up.
    auto = AutoTransferClassifier(
        iris_source,
        source_classes=["setosa", "setosa", "virginica"],
        strategies=["source", "linear"],
        **QUICK,
    )
    labels = np.array(["setosa", "versicolor", "virginica"])

    with pytest.raises(ValueError, match=r"the labels \['setosa'\] more than once"):
        auto.fit(X_IRIS, labels[Y_IRIS])


def test_transfer_that_hurts_warns_and_falls_back_to_a_baseline():
    # A source whose body outputs nothing but zeros: its features carry no
    # information and fine-tuning cannot move dead ReLU units.
    source = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        source[0].weight.zero_()
        source[0].bias.fill_(-1.0)

    with pytest.warns(NegativeTransferWarning, match="Negative transfer"):
        auto = AutoTransferClassifier(
            source, strategies=["features", "fine_tune", "linear"], **QUICK
        ).fit(X_IRIS, Y_IRIS)

    assert auto.best_strategy_ == "linear"


def test_the_frozen_source_runs_once_over_the_training_rows():
    passes = []

    class CountingLayer(nn.Module):
        def forward(self, inputs):
            if torch.is_inference_mode_enabled():
                passes.append(inputs.shape[0])
            return inputs

    torch.manual_seed(0)
    source = nn.Sequential(CountingLayer(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

    AutoTransferClassifier(
        source, strategies=["features", "fine_tune", "wise_ft"], **QUICK
    ).fit(X_IRIS, Y_IRIS)

    # Every other inference pass is a prediction on a test fold (50 rows).
    assert passes.count(150) == 1


def test_the_users_source_is_bit_identical_after_fit(iris_source):
    before = copy.deepcopy(iris_source.state_dict())

    AutoTransferClassifier(iris_source, **QUICK).fit(X_IRIS, Y_IRIS)

    for name, tensor in iris_source.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_parallel_fits_choose_and_score_exactly_as_sequential_ones(iris_source):
    settings = {**QUICK, "strategies": ["linear", "fine_tune", "l2sp"]}
    sequential = AutoTransferClassifier(iris_source, **settings).fit(X_IRIS, Y_IRIS)
    parallel = AutoTransferClassifier(iris_source, n_jobs=2, **settings).fit(
        X_IRIS, Y_IRIS
    )

    np.testing.assert_allclose(
        parallel.cv_results_["mean_test_score"],
        sequential.cv_results_["mean_test_score"],
    )
    assert parallel.best_strategy_ == sequential.best_strategy_


def test_it_is_an_ordinary_estimator_clone_pickle_pipeline_cross_validation(
    iris_source,
):
    auto = AutoTransferClassifier(iris_source, strategies=["source", "linear"], **QUICK)

    scores = cross_val_score(
        make_pipeline(FunctionTransformer(), clone(auto)),
        X_IRIS,
        Y_IRIS,
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    )
    restored = pickle.loads(pickle.dumps(auto.fit(X_IRIS, Y_IRIS)))

    assert scores.mean() > 0.8
    np.testing.assert_array_equal(restored.predict(X_IRIS), auto.predict(X_IRIS))


def test_verbose_prints_the_comparison_and_the_choice(iris_source, capsys):
    AutoTransferClassifier(
        iris_source, strategies=["source", "linear"], verbose=1, **QUICK
    ).fit(X_IRIS, Y_IRIS)

    printed = capsys.readouterr().out
    assert "2 candidates, 3 splits, 6 fits" in printed
    assert "linear (baseline)" in printed
    assert "chose " in printed


def test_unknown_strategies_are_refused_listing_the_known_ones(iris_source):
    with pytest.raises(ValueError, match="scratch"):
        AutoTransferClassifier(iris_source, strategies=["magic"]).fit(X_IRIS, Y_IRIS)


def test_a_class_of_one_sample_cannot_be_cross_validated(iris_source):
    y = Y_IRIS.copy()
    y[0] = 7

    with pytest.raises(ValueError, match="at least 2 samples of every class"):
        AutoTransferClassifier(iris_source).fit(X_IRIS, y)


def test_the_default_cv_repeats_small_folds_to_ten_splits(iris_source):
    subset = np.r_[0:3, 50:53, 100:103]

    auto = AutoTransferClassifier(
        iris_source, strategies=["source", "linear"], random_state=0
    ).fit(X_IRIS[subset], Y_IRIS[subset])

    assert auto.n_splits_ == 12  # 3 folds (3 per class), repeated 4 times


def test_a_candidate_that_fails_is_reported_and_never_chosen(iris_source):
    # L2-SP with an absurd lam diverges; plain fine-tuning does not.
    with pytest.warns(FitFailedWarning, match=r"'l2sp\(lam=1e\+30\)' failed"):
        auto = AutoTransferClassifier(
            iris_source,
            strategies=["source", "fine_tune", "l2sp"],
            **{**QUICK, "lams": (1e30,)},
        ).fit(X_IRIS, Y_IRIS)

    assert auto.best_strategy_ != "l2sp(lam=1e+30)"
    failed = auto.cv_results_["strategy"] == "l2sp(lam=1e+30)"
    assert np.isnan(auto.cv_results_["mean_test_score"][failed]).all()


def test_settings_that_break_every_network_are_an_error_not_a_fallback(
    iris_source,
):
    with pytest.raises(TrainingDivergedError, match="learning rate is the likely"):
        AutoTransferClassifier(
            iris_source,
            strategies=["source", "linear", "fine_tune", "scratch"],
            **{**QUICK, "lr": 1e30},
        ).fit(X_IRIS, Y_IRIS)


# --- the average of the two best ------------------------------------------------


def test_without_the_ensemble_strategy_nothing_is_averaged(iris_source, monkeypatch):
    # Every candidate within noise of the best: the average would be chosen.
    monkeypatch.setattr("sktransfer._choice.within_noise", lambda *args: True)
    monkeypatch.setattr("sktransfer._auto.choose", _the_best)

    auto = AutoTransferClassifier(
        iris_source, strategies=["linear", "features", "fine_tune"], **QUICK
    ).fit(X_IRIS, Y_IRIS)

    assert not any(name.startswith("ensemble") for name in auto.cv_results_["strategy"])


def _the_best(candidates, scores, splits, in_sample_row=None, prefer_source=True):
    best = int(np.argmax(scores.mean(axis=1)))
    return best, best, "test"


@pytest.mark.parametrize(
    ("gain", "chosen"), [(0.0, "linear"), (0.01, "ensemble(linear + scratch)")]
)
def test_an_average_is_chosen_only_when_it_scores_higher(gain, chosen, monkeypatch):
    # Two candidates within noise of each other; their average scores as the
    # best on every split, or a little higher. A tie goes to the single best.
    candidates = [Candidate("linear", safety=(1,)), Candidate("scratch", safety=(7,))]
    scores = np.array([[0.9, 0.8, 1.0, 0.9], [0.9, 0.9, 0.9, 0.8]])
    splits = [(np.arange(20), np.arange(20, 30))] * 4
    averaged = iter(scores[0] + gain)
    monkeypatch.setattr(
        "sktransfer._choice.score_average", lambda *args, **kwargs: next(averaged)
    )

    rows, _, _, index, reason = average_within_noise(
        candidates,
        scores,
        np.ones_like(scores),
        [[None] * 4, [None] * 4],
        (SimpleNamespace(classes=None, scoring_weights=None), splits, None),
        best=0,
        reason="best mean score (0.900)",
    )

    assert [row.name for row in rows] == [
        "linear",
        "scratch",
        "ensemble(linear + scratch)",
    ]
    assert rows[index].name == chosen
    assert ("no better" in reason) == (gain == 0)


@pytest.mark.parametrize(
    ("confidence", "calibrated"), [(0.99, "above 1"), (0.55, "below 1")]
)
def test_the_calibrating_temperature_tempers_over_and_underconfidence(
    confidence, calibrated
):
    # Two classes, right 80% of the time: probabilities of 0.99 are too
    # sure (T > 1 softens them), 0.55 too timid (T < 1 sharpens them).
    codes = np.array([0] * 8 + [1] * 2)
    probabilities = np.tile([confidence, 1 - confidence], (10, 1))

    temperature = calibrating_temperature(probabilities, codes)

    assert (temperature > 1) == (calibrated == "above 1")
    np.testing.assert_allclose(
        tempered(probabilities, temperature)[0, 0], 0.8, atol=1e-3
    )


def test_a_probability_of_zero_does_not_swamp_the_temperature():
    # 199 rows right with 0.9, one with an exact 0 for its class (a member
    # fitted on a split without it): the temperature stays near the others'.
    codes = np.zeros(200, dtype=int)
    probabilities = np.tile([0.9, 0.05, 0.05], (200, 1))
    probabilities[0] = [0.0, 0.5, 0.5]

    assert calibrating_temperature(probabilities, codes) < 2.0
    # Uniform probabilities: no temperature changes them.
    assert calibrating_temperature(np.full((10, 3), 1 / 3), codes[:10]) == 1.0


def test_each_split_is_scored_with_temperatures_fitted_without_its_rows(
    monkeypatch,
):
    # Temperatures tuned on the rows that score the average would flatter
    # it: split k's come from the other splits, less split k's test rows.
    seen = []
    monkeypatch.setattr(
        "sktransfer._choice.calibrating_temperature",
        lambda probabilities, codes, sample_weight=None: seen.append(len(codes)) or 1.0,
    )
    candidates = [Candidate("linear", safety=(1,)), Candidate("scratch", safety=(7,))]
    scores = np.array([[0.9, 0.8, 0.9], [0.8, 0.9, 0.8]])
    tests = [np.arange(0, 4), np.arange(4, 8), np.arange(0, 4)]
    splits = [(np.setdiff1d(np.arange(8), test), test) for test in tests]
    predictions = [[np.full((4, 2), 0.5)] * 3] * 2
    data = SimpleNamespace(
        classes=np.array([0, 1]), scoring_weights=None, y=np.zeros(8, dtype=int)
    )
    monkeypatch.setattr("sktransfer._choice.within_noise", lambda *args: True)
    monkeypatch.setattr("sktransfer._choice.score_average", lambda *a, **k: 0.0)

    evaluation = (data, splits, None)
    average_within_noise(
        candidates, scores, np.ones_like(scores), predictions, evaluation, 0, "best"
    )

    # Both members' refit temperatures from all 12 predictions; then, per
    # split and member: split 0 (rows 0-3, repeated by split 2) keeps split
    # 1's 4 rows; split 1 (rows 4-7) keeps splits 0 and 2; split 2 as split 0.
    assert seen == [12, 12, 4, 4, 8, 8, 4, 4]


class _FixedProbabilities:
    classes_ = np.array(["a", "b"])

    def __init__(self, probabilities):
        self.probabilities = np.asarray(probabilities, dtype=float)

    def predict_proba(self, X):
        return np.tile(self.probabilities, (len(X), 1))


def test_tempered_averaging_lets_each_member_count_for_its_calibration():
    # An overconfident member says "b", a cautious one "a": averaged as
    # they are, the confident one decides; tempered, it counts for less.
    sure, cautious = _FixedProbabilities([0.01, 0.99]), _FixedProbabilities([0.9, 0.1])
    X = np.zeros((3, 1))

    assert list(AveragedClassifier([sure, cautious]).predict(X)) == ["b"] * 3
    tempered_average = AveragedClassifier([sure, cautious], temperatures=(5.0, 1.0))
    assert list(tempered_average.predict(X)) == ["a"] * 3
    np.testing.assert_allclose(tempered_average.predict_proba(X).sum(axis=1), 1.0)


def test_averaged_probabilities_line_up_when_a_split_lacks_a_class(iris_source):
    # Unshuffled folds of the sorted iris rows: each training split lacks
    # the class its test rows hold, so every candidate scores 0, and so
    # must their average (its columns are the classes, not the split's).
    auto = AutoTransferClassifier(
        iris_source,
        strategies=["features", "linear", "ensemble"],
        **{**QUICK, "cv": KFold(3)},
    ).fit(X_IRIS, Y_IRIS)

    np.testing.assert_array_equal(auto.cv_results_["mean_test_score"], 0.0)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_chosen_ensemble_averages_its_refitted_members(
    task, iris_source, monkeypatch
):
    # Every candidate within noise of the best, which is chosen, and their
    # average scoring higher: the best three are averaged, scored from their
    # split predictions and refitted.
    monkeypatch.setattr("sktransfer._choice.within_noise", lambda *args: True)
    monkeypatch.setattr("sktransfer._auto.choose", _the_best)
    monkeypatch.setattr(
        "sktransfer._choice.score_average",
        lambda *args, real=sktransfer._choice.score_average, **kwargs: (
            real(*args, **kwargs) + 1.0
        ),
    )
    if task == "classification":
        estimator, y = AutoTransferClassifier, Y_IRIS
        strategies = ["linear", "features", "fine_tune", "wise_ft", "ensemble"]
    else:
        estimator, y = AutoTransferRegressor, X_IRIS[:, 0] - X_IRIS[:, 1]
        strategies = ["linear", "features", "fine_tune", "ensemble"]
    auto = estimator(iris_source, strategies=strategies, **QUICK).fit(X_IRIS, y)

    averaged = auto.best_estimator_
    results = auto.cv_results_
    by_mean = np.argsort(-results["mean_test_score"][:-1], kind="stable")[:3]
    assert auto.best_strategy_ == results["strategy"][-1]
    np.testing.assert_array_less(
        results["mean_test_score"][:-1], results["mean_test_score"][-1]
    )
    assert (
        auto.best_strategy_ == f"ensemble({' + '.join(results['strategy'][by_mean])})"
    )
    assert len({id(estimator) for estimator in averaged.estimators}) == 3
    np.testing.assert_allclose(
        results["mean_fit_time"][-1], results["mean_fit_time"][by_mean].sum()
    )
    if task == "classification":
        # Each member's probabilities tempered by the temperature that
        # calibrates its cross-validation predictions.
        temperatures = averaged.temperatures
        assert len(temperatures) == 3
        assert all(t > 0 for t in temperatures)
        assert results["params"][-1] == {"temperatures": temperatures}
        expected = np.mean(
            [
                tempered(e.predict_proba(X_IRIS), t)
                for e, t in zip(averaged.estimators, temperatures, strict=True)
            ],
            0,
        )
        np.testing.assert_allclose(auto.predict_proba(X_IRIS), expected)
        np.testing.assert_array_equal(
            auto.predict(X_IRIS), auto.classes_[expected.argmax(axis=1)]
        )
    else:
        expected = np.mean([e.predict(X_IRIS) for e in averaged.estimators], 0)
        np.testing.assert_allclose(auto.predict(X_IRIS), expected, rtol=1e-6)


# --- unlabelled target rows --------------------------------------------------------

# The target domain: iris, moved beyond the source rows. The labelling is the
# same.
X_SHIFTED = X_IRIS + 6.0
ADAPTING = {**QUICK, "adaptation_lams": (0.1,), "max_epochs": 3}


def _recording_scorer(seen):
    def score(estimator, X, y, sample_weight=None):
        seen.append((np.asarray(X).copy(), sample_weight))
        return float(np.average(estimator.predict(X) == y, weights=sample_weight))

    return score


def test_unlabelled_rows_add_adaptation_candidates_and_weight_source_rows(
    iris_source,
):
    # Only source-domain rows are labelled: every score is weighted toward
    # the unlabelled target rows.
    before = copy.deepcopy(iris_source.state_dict())
    seen = []
    auto = AutoTransferClassifier(
        iris_source,
        strategies=["source", "fine_tune", "adaptation"],
        adaptation_methods=("entropy", "mcc"),
        scoring=_recording_scorer(seen),
        **ADAPTING,
    ).fit(X_IRIS, Y_IRIS, unlabeled_data=UnlabeledData(X_SHIFTED))

    assert list(auto.cv_results_["strategy"]) == [
        "source",
        "fine_tune",
        "adaptation(method=entropy, lam=0.1)",
        "adaptation(method=mcc, lam=0.1)",
    ]
    weights = auto.importance_weights_
    assert weights.shape == (150,)
    assert weights.mean() == pytest.approx(1.0)
    # The rows most like the shifted ones (large values) weigh the most.
    largest = X_IRIS.sum(axis=1) > np.quantile(X_IRIS.sum(axis=1), 0.8)
    assert weights[largest].mean() > 2 * weights[~largest].mean()
    assert len(seen) > 0
    assert all(sample_weight is not None for _, sample_weight in seen)
    assert "importance-weighted validation" in auto.strategy_choice_reason_
    for name, tensor in iris_source.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_a_source_perfect_on_its_scored_rows_is_not_ranked_by_that_score(
    iris_source,
):
    # Only source-domain labels, and the source makes no error on them: as
    # at k = 0 in practice, they are most likely its training rows, so its
    # score is in-sample. The best candidate that trains is chosen when it is
    # near perfect too, out of fold, and the user is told why.
    with torch.no_grad():
        predicted = iris_source(torch.as_tensor(X_IRIS)).argmax(1).numpy()
    learned = predicted == Y_IRIS
    kwargs = {"strategies": ["source", "fine_tune", "ensemble"], **ADAPTING}
    unlabeled = UnlabeledData(X_SHIFTED)

    with pytest.warns(UserWarning, match="scores 1.000 .* its training rows"):
        auto = AutoTransferClassifier(iris_source, **kwargs).fit(
            X_IRIS[learned], Y_IRIS[learned], unlabeled_data=unlabeled
        )
    scores = auto.cv_results_["mean_test_score"]
    assert list(auto.cv_results_["strategy"])[:2] == ["source", "fine_tune"]
    assert scores[0] == 1.0
    assert scores[1] < 1.0
    assert auto.best_strategy_ == "fine_tune"
    assert "near perfect like the untouched source's in-sample" in (
        auto.strategy_choice_reason_
    )
    assert "its score is taken as in-sample" in auto.strategy_choice_reason_

    # Rows it gets wrong, one in five: its score is evidence again.
    y_other = np.where(np.arange(150) % 5 == 0, (predicted + 1) % 3, predicted)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        auto = AutoTransferClassifier(iris_source, **kwargs).fit(
            X_IRIS, y_other, unlabeled_data=unlabeled
        )
    assert not [w for w in caught if "in-sample" in str(w.message)]
    assert "in-sample" not in auto.strategy_choice_reason_


def test_an_in_sample_source_gives_way_only_to_a_near_perfect_trained_candidate():
    source, fine_tune, scratch = (
        Candidate("source", safety=(0,)),
        Candidate("fine_tune", safety=(1,)),
        Candidate("scratch", safety=(2,)),
    )
    candidates = [source, fine_tune, scratch]
    splits = [(np.arange(20), np.arange(20, 30))] * 5
    perfect = np.ones(5)
    # A little short on every split, as any out-of-fold score is against an
    # in-sample one: scored as evidence, the source would stay.
    scores = np.array([perfect, perfect - 0.005, perfect - 0.3])
    assert choose(candidates, scores, splits)[0] == 0
    chosen, best, reason = choose(candidates, scores, splits, in_sample_row=0)
    assert (chosen, best) == (1, 1)
    assert "near perfect like the untouched source's in-sample" in reason

    scores = np.array([perfect, perfect - 0.02, perfect - 0.3])
    chosen, best, reason = choose(candidates, scores, splits, in_sample_row=0)
    assert (chosen, best) == (0, 0)
    assert "the best candidate that trains is not" in reason


def test_the_source_within_noise_is_kept_unless_told_not_to_prefer_it():
    candidates = [Candidate("source", safety=(0,)), Candidate("fine_tune", safety=(1,))]
    splits = [(np.arange(20), np.arange(20, 30))] * 4
    # fine_tune ahead by 0.025 on average, within one standard error (0.083).
    scores = np.array([[0.5, 0.6, 0.4, 0.5], [0.6, 0.6, 0.5, 0.4]])

    chosen, best, reason = choose(candidates, scores, splits)
    assert (chosen, best) == (0, 1)
    assert "trains nothing" in reason
    chosen, best, reason = choose(candidates, scores, splits, prefer_source=False)
    assert (chosen, best, reason) == (1, 1, "best mean score (0.525)")


def test_with_source_data_the_best_mean_wins_over_the_source_within_noise(
    iris_source, monkeypatch
):
    # Every candidate within noise of the best, which would keep the
    # untouched source; with SourceData (every candidate that trains sees
    # the source's rows) the best mean is chosen.
    monkeypatch.setattr("sktransfer._choice.within_noise", lambda *args: True)
    target = np.r_[0:5, 50:55, 100:105]
    auto = AutoTransferClassifier(
        iris_source, strategies=["source", "fine_tune"], **QUICK
    ).fit(X_IRIS[target] + 0.5, Y_IRIS[target], source_data=SourceData(X_IRIS, Y_IRIS))

    results = auto.cv_results_
    means = dict(zip(results["strategy"], results["mean_test_score"], strict=True))
    assert means["fine_tune"] > means["source"]
    assert auto.best_strategy_ == "fine_tune"
    assert "not preferred within noise" in auto.strategy_choice_reason_


def test_an_in_sample_source_does_not_hide_negative_transfer():
    candidates = [
        Candidate("source", safety=(0,)),
        Candidate("fine_tune", safety=(1,)),
        Candidate("scratch", safety=(2,)),
    ]
    scores = np.array(
        [np.ones(5), [0.5, 0.6, 0.5, 0.4, 0.5], [0.9, 0.95, 0.9, 0.85, 0.9]]
    )
    auto = AutoTransferClassifier(None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auto._warn_negative_transfer(candidates, scores, 2, 20, 10)
    # Its perfect score in-sample: fine-tuning is the best that transfers.
    with pytest.warns(NegativeTransferWarning, match="'fine_tune', scores 0.400"):
        auto._warn_negative_transfer(candidates, scores, 2, 20, 10, in_sample_row=0)


def test_labelled_target_rows_are_the_validation_rows(iris_source):
    # Source rows and a few labelled target rows: the candidates are scored
    # on the target rows only, and every source row trains in every split.
    target = np.r_[0:5, 50:55, 100:105]
    X = np.concatenate([X_IRIS, X_SHIFTED[target]])
    y = np.concatenate([Y_IRIS, Y_IRIS[target]])
    seen = []
    auto = AutoTransferClassifier(
        iris_source,
        strategies=["source", "fine_tune", "adaptation"],
        scoring=_recording_scorer(seen),
        # The default cv: a cv of the user's own would split every row.
        **{**ADAPTING, "cv": None},
    ).fit(X, y, unlabeled_data=UnlabeledData(np.delete(X_SHIFTED, target, axis=0)))

    # The untouched source is scored from cached outputs, given row numbers.
    row_numbers = np.concatenate([rows for rows, _ in seen if rows.shape[1] == 1])
    inputs = np.concatenate([rows for rows, _ in seen if rows.shape[1] == 4])
    shifted = {row.tobytes() for row in X_SHIFTED[target]}
    assert row_numbers.min() >= 150
    assert len(inputs) > 0
    assert all(row.tobytes() in shifted for row in inputs)
    assert all(sample_weight is not None for _, sample_weight in seen)
    assert "labelled rows like the unlabelled target rows" in (
        auto.strategy_choice_reason_
    )


def test_source_data_trains_in_every_split_and_only_x_is_scored(iris_source):
    # The user says which rows are the source's: they are never scored, so
    # the untouched source cannot be credited with the rows it learned.
    target = np.r_[0:5, 50:55, 100:105]
    seen = []
    auto = AutoTransferClassifier(
        iris_source,
        strategies=["source", "fine_tune", "adaptation"],
        scoring=_recording_scorer(seen),
        **{**ADAPTING, "cv": None},
    ).fit(
        X_SHIFTED[target],
        Y_IRIS[target],
        source_data=SourceData(X_IRIS, Y_IRIS),
        unlabeled_data=UnlabeledData(np.delete(X_SHIFTED, target, axis=0)),
    )

    # X's rows come first: the cached source outputs are read by row number.
    row_numbers = np.concatenate([rows for rows, _ in seen if rows.shape[1] == 1])
    inputs = np.concatenate([rows for rows, _ in seen if rows.shape[1] == 4])
    assert row_numbers.max() < len(target)
    assert {row.tobytes() for row in inputs} <= {
        row.tobytes() for row in X_SHIFTED[target]
    }
    assert all(sample_weight is None for _, sample_weight in seen)
    assert auto.importance_weights_ is None
    assert "SourceData rows training in every split" in auto.strategy_choice_reason_
    assert auto.n_splits_ == 10


def test_source_data_rows_train_every_split_and_the_refit(iris_source, monkeypatch):
    monkeypatch.setattr("sktransfer._auto.FineTunedClassifier", TrainingRowsSpy)
    monkeypatch.setattr(TrainingRowsSpy, "fits", [])
    target = np.r_[0:5, 50:55, 100:105]
    auto = AutoTransferClassifier(iris_source, strategies=["fine_tune"], **QUICK).fit(
        X_SHIFTED[target], Y_IRIS[target], source_data=SourceData(X_IRIS, Y_IRIS)
    )

    # 3 folds of the 15 target rows: 10 of them and the 150 source rows train
    # in each split; the refit trains on all 165.
    assert TrainingRowsSpy.fits == [160, 160, 160, 165]
    assert auto.n_features_in_ == 4
    np.testing.assert_array_equal(auto.classes_, [0, 1, 2])


@pytest.mark.parametrize(
    ("estimator", "source_data", "error", "message"),
    [
        (
            AutoTransferClassifier,
            (X_IRIS, Y_IRIS),
            TypeError,
            r"source_data must be a SourceData",
        ),
        (
            AutoTransferClassifier,
            SourceData(X_IRIS, Y_IRIS + 3),
            ValueError,
            r"SourceData's y holds the labels \[3, 4, 5\], which y does not",
        ),
        (
            AutoTransferClassifier,
            SourceData(X_IRIS, Y_IRIS[:10]),
            ValueError,
            r"SourceData's y must hold one target per row of its X \(150\)",
        ),
        (
            AutoTransferClassifier,
            SourceData(X_IRIS[:, :3], Y_IRIS),
            ValueError,
            r"SourceData's X has samples of shape \(3,\)",
        ),
        (
            AutoTransferClassifier,
            SourceData(np.where(X_IRIS > 2, np.nan, X_IRIS), Y_IRIS),
            ValueError,
            r"SourceData's X contains NaN",
        ),
        (
            AutoTransferRegressor,
            SourceData(X_IRIS, X_IRIS[:, :2]),
            ValueError,
            r"SourceData's y has shape \(150, 2\), but y had 1 output",
        ),
        (
            AutoTransferRegressor,
            SourceData(X_IRIS, np.array(["a"] * 150)),
            ValueError,
            r"needs numeric targets",
        ),
        (
            AutoTransferClassifier,
            SourceData(X_IRIS, Y_IRIS, sample_weight=np.ones(10)),
            ValueError,
            r"SourceData's sample_weight",
        ),
    ],
    ids=[
        "not wrapped",
        "labels y lacks",
        "too few labels",
        "other width",
        "NaN",
        "other outputs",
        "text targets",
        "weights of another length",
    ],
)
def test_bad_source_data_is_refused_naming_it(estimator, source_data, error, message):
    source = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    y = Y_IRIS if estimator is AutoTransferClassifier else X_IRIS[:, 0]

    with pytest.raises(error, match=message):
        estimator(source, strategies=["linear"], **QUICK).fit(
            X_IRIS, y, source_data=source_data
        )


def test_source_ids_a_token_network_cannot_read_are_refused_naming_them():
    ids = np.random.default_rng(0).integers(0, 10, size=(30, 5))
    y = np.arange(30) % 3
    auto = AutoTransferClassifier(EmbeddingSource(), strategies=["fine_tune"], **QUICK)

    with pytest.raises(ValueError, match="SourceData's X"):
        auto.fit(ids, y, source_data=SourceData(ids + 20, y))


def test_source_columns_must_name_the_features_of_x():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(X_IRIS, columns=list("abcd"))
    source = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    auto = AutoTransferClassifier(source, strategies=["linear"], **QUICK)

    with pytest.raises(ValueError, match=r"SourceData's X has the columns \['d'"):
        auto.fit(X, Y_IRIS, source_data=SourceData(X[list("dcba")], Y_IRIS))
    assert auto.fit(X, Y_IRIS, source_data=SourceData(X, Y_IRIS)).n_features_in_ == 4


def test_source_targets_may_be_shaped_as_y_may():
    source = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    classifier = AutoTransferClassifier(source, strategies=["linear"], **QUICK)
    # A column of labels, and values of one output given 1-D against a
    # column y (or the other way round).
    classifier.fit(X_IRIS, Y_IRIS, source_data=SourceData(X_IRIS, Y_IRIS[:, None]))
    regressor = AutoTransferRegressor(source, strategies=["linear"], **QUICK)
    column = X_IRIS[:, :1]
    regressor.fit(X_IRIS, column, source_data=SourceData(X_IRIS, column.ravel()))
    regressor.fit(X_IRIS, column.ravel(), source_data=SourceData(X_IRIS, column))
    assert regressor.predict(X_IRIS).shape == (150,)


def test_a_cv_of_the_users_own_splits_every_row_and_weights_the_scores(
    iris_source,
):
    target = np.r_[0:5, 50:55, 100:105]
    X = np.concatenate([X_IRIS, X_SHIFTED[target]])
    y = np.concatenate([Y_IRIS, Y_IRIS[target]])
    splits = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))

    auto = AutoTransferClassifier(
        iris_source, strategies=["source", "linear"], **{**QUICK, "cv": splits}
    ).fit(X, y, unlabeled_data=UnlabeledData(X_SHIFTED))

    assert auto.n_splits_ == 3
    assert "importance-weighted validation" in auto.strategy_choice_reason_


def test_a_scoring_callable_must_take_the_importance_weights(iris_source):
    def accuracy(estimator, X, y):
        return float(np.mean(estimator.predict(X) == y))

    auto = AutoTransferClassifier(
        iris_source, strategies=["source", "linear"], scoring=accuracy, **QUICK
    )

    with pytest.raises(ValueError, match="takes no sample_weight"):
        auto.fit(X_IRIS, Y_IRIS, unlabeled_data=UnlabeledData(X_SHIFTED))
    assert auto.fit(X_IRIS, Y_IRIS).best_strategy_ in ("source", "linear")


def test_an_adaptation_candidate_trains_as_many_steps_as_the_fine_tune(
    iris_source,
):
    # 150 labelled rows, 600 unlabelled: an adaptation epoch is 4 times
    # longer: the fine-tune's 300 steps ("auto": 60 epochs of 5 batches) are
    # 16 epochs of 19.
    auto = AutoTransferClassifier(
        iris_source,
        strategies=["adaptation"],
        adaptation_lams=(0.1,),
        cv=2,
        random_state=0,
    )
    unlabeled = UnlabeledData(np.tile(X_SHIFTED, (4, 1)))

    auto.fit(X_IRIS, Y_IRIS, unlabeled_data=unlabeled)

    assert auto.best_estimator_.max_epochs == math.ceil(60 * 5 / 19)


def test_adaptation_without_unlabelled_rows_is_refused(iris_source):
    auto = AutoTransferClassifier(iris_source, strategies=["fine_tune", "adaptation"])

    with pytest.raises(ValueError, match=r"unlabeled_data=UnlabeledData\(X_target\)"):
        auto.fit(X_IRIS, Y_IRIS)


@pytest.mark.parametrize(
    ("estimator", "settings", "message"),
    [
        (AutoTransferRegressor, {"adaptation_methods": ("mcc",)}, "'coral', 'mmd'"),
        (AutoTransferClassifier, {"adaptation_methods": ()}, "some of"),
        (AutoTransferClassifier, {"adaptation_lams": (0.0,)}, "positive numbers"),
    ],
    ids=["class probabilities in a regressor", "no method", "lam 0"],
)
def test_bad_adaptation_settings_are_refused(estimator, settings, message):
    source = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    y = Y_IRIS if estimator is AutoTransferClassifier else X_IRIS[:, 0]

    with pytest.raises(ValueError, match=message):
        estimator(source, strategies=["adaptation"], **settings).fit(
            X_IRIS, y, unlabeled_data=UnlabeledData(X_SHIFTED)
        )


# --- regression --------------------------------------------------------------------


def test_the_regressor_keeps_a_source_that_already_predicts_y():
    X, y = make_regression(n_samples=80, n_features=4, noise=0.0, random_state=0)
    X = X.astype(np.float32)
    torch.manual_seed(0)
    source = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    with torch.no_grad():
        y = source(torch.as_tensor(X)).numpy().ravel()

    auto = AutoTransferRegressor(
        source, strategies=["source", "linear", "fine_tune"], **QUICK
    ).fit(X, y)

    assert auto.best_strategy_ == "source"
    assert auto.score(X, y) == pytest.approx(1.0)
    assert auto.predict(X).shape == (80,)

"""compare_strategies / transfer_learning_curve: is transfer better than scratch?

Every strategy and the baseline are scored on the *same* folds (and, for the
learning curve, the same training subsets), so that their per-fold scores can
be compared in pairs with the corrected resampled t-test. Most tests use fast
scikit-learn estimators; a recording classifier whose first feature is the
sample's index shows exactly which samples every fit and predict saw.
"""

import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_digits, load_iris, make_regression
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
from sklearn.model_selection import KFold
from sklearn.naive_bayes import GaussianNB
from threadpoolctl import threadpool_limits
from torch import nn

from sktransfer import FineTunedClassifier
from sktransfer.model_selection import (
    NegativeTransferWarning,
    StrategyComparison,
    TransferLearningCurve,
    compare_strategies,
    corrected_paired_ttest,
    transfer_learning_curve,
)

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
# Column 0 is the sample's index, so a recording estimator can tell which
# samples it was given.
X_IDS = np.column_stack([np.arange(len(X_IRIS)), X_IRIS])
X_DIGITS, Y_DIGITS = load_digits(return_X_y=True)
X_DIGITS = X_DIGITS / 16.0
X_REG, Y_REG = make_regression(n_samples=100, n_features=5, noise=5.0, random_state=0)

CLASSIFIER_METRICS = ["accuracy", "balanced_accuracy", "f1_macro"]
REGRESSOR_METRICS = ["r2", "neg_mean_squared_error", "neg_mean_absolute_error"]
SUMMARY_COLUMNS = ["mean", "std", "difference", "t_statistic", "p_value"]


def _logistic():
    return LogisticRegression(max_iter=500)


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    # Once torch is imported, a two-thread OpenBLAS makes every lbfgs step of
    # LogisticRegression ~70x slower on the 2-core CI machine.
    with threadpool_limits(1, user_api="blas"):
        yield


# --- a classifier that records what it saw ---------------------------------

_CALLS = []


class _RecordingCentroids(ClassifierMixin, BaseEstimator):
    """Nearest centroid on X[:, 1:]; logs the sample ids (X[:, 0]) it sees.

    It has neither ``predict_proba`` nor ``decision_function``.
    """

    def __init__(self, tag="a"):
        self.tag = tag

    def fit(self, X, y, **fit_params):
        X, y = np.asarray(X), np.asarray(y)
        ids = X[:, 0].astype(int)
        _CALLS.append(
            {"tag": self.tag, "method": "fit", "ids": ids, "fit_params": fit_params}
        )
        self.classes_ = np.unique(y)
        self.centroids_ = np.stack([X[y == c, 1:].mean(axis=0) for c in self.classes_])
        return self

    def predict(self, X):
        X = np.asarray(X)
        _CALLS.append(
            {"tag": self.tag, "method": "predict", "ids": X[:, 0].astype(int)}
        )
        distances = ((X[:, None, 1:] - self.centroids_[None]) ** 2).sum(axis=-1)
        return self.classes_[distances.argmin(axis=1)]


@pytest.fixture
def calls():
    _CALLS.clear()
    yield _CALLS
    _CALLS.clear()


def _ids_seen(calls, tag, method):
    return [
        call["ids"] for call in calls if call["tag"] == tag and call["method"] == method
    ]


# --- the same splits for every estimator ------------------------------------


def test_every_estimator_is_fitted_and_scored_on_the_same_folds(calls):
    compare_strategies(
        {"a": _RecordingCentroids("a"), "b": _RecordingCentroids("b")},
        X_IDS,
        Y_IRIS,
        baseline="a",
        cv=KFold(5, shuffle=True),  # no random_state: splits must be drawn once
        scoring="accuracy",
    )
    for method in ["fit", "predict"]:
        seen_a, seen_b = _ids_seen(calls, "a", method), _ids_seen(calls, "b", method)
        assert len(seen_a) == len(seen_b) == 5
        for ids_a, ids_b in zip(seen_a, seen_b, strict=True):
            np.testing.assert_array_equal(ids_a, ids_b)
    # The folds are a partition of the data: every sample is tested once.
    tested = np.concatenate(_ids_seen(calls, "a", "predict"))
    np.testing.assert_array_equal(np.sort(tested), np.arange(len(X_IDS)))


def test_identical_estimators_under_a_shuffling_cv_differ_by_exactly_zero():
    result = compare_strategies(
        {"first": _logistic(), "second": _logistic()},
        X_IRIS,
        Y_IRIS,
        baseline="first",
        cv=KFold(5, shuffle=True),
    )
    for metric in result.metrics:
        np.testing.assert_array_equal(
            result.scores["first"][metric], result.scores["second"][metric]
        )
        row = result._row("second", metric)
        assert row["difference"] == 0
        assert np.isnan(row["t_statistic"])
        assert np.isnan(row["p_value"])
    assert result.negative_transfer == []


def test_n_jobs_2_gives_the_same_scores_as_n_jobs_1():
    estimators = {"logistic": _logistic(), "dummy": DummyClassifier()}
    kwargs = {"baseline": "logistic", "cv": 3, "scoring": CLASSIFIER_METRICS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NegativeTransferWarning)
        serial = compare_strategies(estimators, X_IRIS, Y_IRIS, n_jobs=1, **kwargs)
        parallel = compare_strategies(estimators, X_IRIS, Y_IRIS, n_jobs=2, **kwargs)
    for name in estimators:
        for metric in CLASSIFIER_METRICS:
            np.testing.assert_array_equal(
                serial.scores[name][metric], parallel.scores[name][metric]
            )


def test_the_estimators_passed_in_are_left_unfitted():
    logistic, dummy = _logistic(), DummyClassifier()
    compare_strategies({"logistic": logistic}, X_IRIS, Y_IRIS, baseline=dummy, cv=3)
    assert not hasattr(logistic, "coef_")
    assert not hasattr(dummy, "classes_")


# --- naming the baseline ------------------------------------------------------


def test_baseline_given_by_name_is_marked_and_has_no_test():
    result = compare_strategies(
        {"logistic": _logistic(), "bayes": GaussianNB()},
        X_IRIS,
        Y_IRIS,
        baseline="bayes",
        cv=3,
    )
    assert result.baseline == "bayes"
    assert set(result.scores) == {"logistic", "bayes"}
    for metric in [*result.metrics, "fit_time"]:
        row = result._row("bayes", metric)
        assert row["difference"] == 0
        assert np.isnan(row["t_statistic"])
        assert np.isnan(row["p_value"])


def test_baseline_given_as_an_estimator_is_called_baseline():
    result = compare_strategies(
        {"logistic": _logistic()}, X_IRIS, Y_IRIS, baseline=DummyClassifier(), cv=3
    )
    assert result.baseline == "baseline"
    assert set(result.scores) == {"baseline", "logistic"}
    # The baseline is the DummyClassifier: chance level on iris's 3 classes.
    assert np.all(result.scores["baseline"]["accuracy"] < 0.4)
    assert np.all(result.scores["logistic"]["accuracy"] > 0.9)


@pytest.mark.parametrize(
    "function", [compare_strategies, transfer_learning_curve], ids=lambda f: f.__name__
)
def test_an_unknown_baseline_name_is_an_error_that_lists_the_names(function):
    estimators = {"logistic": _logistic(), "dummy": DummyClassifier()}
    with pytest.raises(ValueError, match=r"'scratch'.*\['logistic', 'dummy'\]"):
        function(estimators, X_IRIS, Y_IRIS, baseline="scratch")


@pytest.mark.parametrize(
    "function", [compare_strategies, transfer_learning_curve], ids=lambda f: f.__name__
)
def test_an_estimator_named_baseline_clashes_with_a_baseline_estimator(function):
    estimators = {"baseline": _logistic()}
    with pytest.raises(ValueError, match="already called 'baseline'"):
        function(estimators, X_IRIS, Y_IRIS, baseline=DummyClassifier())


def test_a_list_of_pairs_gives_the_same_result_as_a_dict():
    pairs = [("logistic", _logistic()), ("bayes", GaussianNB())]
    from_dict = compare_strategies(dict(pairs), X_IRIS, Y_IRIS, baseline="bayes", cv=3)
    from_list = compare_strategies(pairs, X_IRIS, Y_IRIS, baseline="bayes", cv=3)
    assert list(from_list.scores) == list(from_dict.scores) == ["logistic", "bayes"]
    for name in from_dict.scores:
        for metric in from_dict.metrics:
            np.testing.assert_array_equal(
                from_dict.scores[name][metric], from_list.scores[name][metric]
            )


# --- scoring --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("y", "roc_auc"),
    [((Y_IRIS == 2).astype(int), "roc_auc"), (Y_IRIS, "roc_auc_ovr")],
    ids=["binary", "multiclass"],
)
def test_default_scoring_of_classifiers_includes_the_right_roc_auc(y, roc_auc):
    result = compare_strategies(
        {"logistic": _logistic()}, X_IRIS, y, baseline=DummyClassifier(), cv=3
    )
    assert result.metrics == [*CLASSIFIER_METRICS, roc_auc]
    for name in ["logistic", "baseline"]:
        assert set(result.scores[name]) == {*result.metrics, "fit_time"}
        assert result.scores[name][roc_auc].shape == (3,)
    assert result.scores["logistic"][roc_auc].min() > 0.9


def test_a_decision_function_is_enough_for_binary_roc_auc():
    y = (Y_IRIS == 2).astype(int)
    result = compare_strategies(
        {"ridge": RidgeClassifier()}, X_IRIS, y, baseline=_logistic(), cv=3
    )
    assert result.metrics == [*CLASSIFIER_METRICS, "roc_auc"]
    assert result.scores["ridge"]["roc_auc"].min() > 0.8


def test_multiclass_roc_auc_is_dropped_without_predict_proba():
    # sklearn's "roc_auc_ovr" scorer calls predict_proba only; a
    # decision_function is not enough for it.
    result = compare_strategies(
        {"ridge": RidgeClassifier()}, X_IRIS, Y_IRIS, baseline=_logistic(), cv=3
    )
    assert result.metrics == CLASSIFIER_METRICS
    assert np.all(np.isfinite(result.scores["ridge"]["accuracy"]))


def test_default_scoring_drops_roc_auc_when_one_estimator_cannot_rank(calls):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NegativeTransferWarning)
        result = compare_strategies(
            {"centroids": _RecordingCentroids()},
            X_IDS,
            Y_IRIS,
            baseline=GaussianNB(),
            cv=3,
        )
    assert result.metrics == CLASSIFIER_METRICS
    assert set(result.scores["baseline"]) == {*CLASSIFIER_METRICS, "fit_time"}


def test_default_scoring_of_regressors():
    result = compare_strategies(
        {"ridge": Ridge()}, X_REG, Y_REG, baseline=DummyRegressor(), cv=4
    )
    assert result.metrics == REGRESSOR_METRICS
    assert result.scores["ridge"]["r2"].shape == (4,)
    assert result.scores["ridge"]["r2"].mean() > 0.9
    assert result.scores["baseline"]["neg_mean_squared_error"].max() < 0


def test_an_explicit_scoring_string_is_the_only_metric():
    result = compare_strategies(
        {"logistic": _logistic()},
        X_IRIS,
        Y_IRIS,
        baseline=DummyClassifier(),
        cv=3,
        scoring="balanced_accuracy",
    )
    assert result.metrics == ["balanced_accuracy"]
    assert set(result.scores["logistic"]) == {"balanced_accuracy", "fit_time"}


def test_the_first_metric_of_an_explicit_list_is_the_primary_one():
    scoring = ["f1_macro", "accuracy"]
    with pytest.warns(NegativeTransferWarning, match="'dummy' scores .* on f1_macro"):
        result = compare_strategies(
            {"dummy": DummyClassifier()},
            X_DIGITS,
            Y_DIGITS,
            baseline=_logistic(),
            cv=5,
            scoring=scoring,
        )
    assert result.metrics == scoring
    header = repr(result).splitlines()[0]
    assert header.split()[1:3] == scoring
    assert "Δ f1_macro" in header
    assert "on f1_macro" in repr(result).splitlines()[-1]


# --- the summary ------------------------------------------------------------------


def test_summary_rows_are_the_statistics_of_the_recorded_fold_scores():
    cv = KFold(5, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NegativeTransferWarning)
        result = compare_strategies(
            {"logistic": _logistic(), "bayes": GaussianNB()},
            X_IRIS,
            Y_IRIS,
            baseline=DummyClassifier(),
            cv=cv,
        )
    assert isinstance(result, StrategyComparison)
    names = ["baseline", "logistic", "bayes"]
    metrics = [*result.metrics, "fit_time"]
    assert len(result.summary) == len(names) * len(metrics)
    n_train, n_test = 120, 30
    for name in names:
        for metric in metrics:
            values = result.scores[name][metric]
            assert values.shape == (5,)
            differences = values - result.scores["baseline"][metric]
            row = result._row(name, metric)
            assert row["mean"] == pytest.approx(np.mean(values))
            assert row["std"] == pytest.approx(np.std(values))
            assert row["difference"] == pytest.approx(np.mean(differences))
            if name != "baseline":
                t_statistic, p_value = corrected_paired_ttest(
                    differences, n_train, n_test
                )
                assert row["t_statistic"] == pytest.approx(t_statistic, nan_ok=True)
                assert row["p_value"] == pytest.approx(p_value, nan_ok=True)
    assert np.all(result.scores["logistic"]["fit_time"] > 0)


def test_to_frame_is_indexed_by_strategy_and_metric():
    result = compare_strategies(
        {"logistic": _logistic()}, X_IRIS, Y_IRIS, baseline=DummyClassifier(), cv=3
    )
    frame = result.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert frame.index.names == ["strategy", "metric"]
    assert list(frame.columns) == SUMMARY_COLUMNS
    assert len(frame) == 2 * (len(result.metrics) + 1)
    assert frame.loc[("logistic", "accuracy"), "mean"] == pytest.approx(
        result.scores["logistic"]["accuracy"].mean()
    )
    assert ("baseline", "fit_time") in frame.index


def test_repr_is_a_table_of_every_strategy_with_the_baseline_marked():
    result = compare_strategies(
        {"logistic": _logistic(), "bayes": GaussianNB()},
        X_IRIS,
        Y_IRIS,
        baseline="bayes",
        cv=3,
        scoring=["accuracy", "f1_macro"],
    )
    lines = repr(result).splitlines()
    header, rule, *rows = lines
    assert header.split()[:3] == ["strategy", "accuracy", "f1_macro"]
    assert "fit_time" in header
    assert set(rule.replace(" ", "")) == {"-"}
    assert len(rows) == 2
    assert rows[0].startswith("logistic ")
    assert rows[1].startswith("bayes (baseline)")
    assert "(baseline)" not in rows[0]
    assert "±" in rows[0]
    assert "Negative transfer" not in repr(result)


# --- negative transfer ------------------------------------------------------------


def test_a_clearly_worse_strategy_raises_a_negative_transfer_warning():
    with pytest.warns(
        NegativeTransferWarning, match=r"Negative transfer: 'dummy'.*'logistic'"
    ) as record:
        result = compare_strategies(
            {"logistic": _logistic(), "dummy": DummyClassifier()},
            X_DIGITS,
            Y_DIGITS,
            baseline="logistic",
            cv=5,
        )
    # The warning points at the caller, not at sktransfer's internals.
    assert [w.filename for w in record] == [__file__]
    assert result.negative_transfer == ["dummy"]
    row = result._row("dummy", "accuracy")
    assert row["difference"] < 0
    assert row["p_value"] < result.alpha
    last_line = repr(result).splitlines()[-1]
    assert last_line.startswith("Negative transfer")
    assert "'logistic'" in last_line
    assert last_line.endswith(": dummy")
    assert issubclass(NegativeTransferWarning, UserWarning)


def test_a_better_strategy_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", NegativeTransferWarning)
        result = compare_strategies(
            {"logistic": _logistic()},
            X_DIGITS,
            Y_DIGITS,
            baseline=DummyClassifier(),
            cv=5,
        )
    assert result.negative_transfer == []
    assert result._row("logistic", "accuracy")["p_value"] < 0.05


def test_alpha_is_the_significance_level_of_the_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", NegativeTransferWarning)
        result = compare_strategies(
            {"logistic": _logistic(), "dummy": DummyClassifier()},
            X_DIGITS,
            Y_DIGITS,
            baseline="logistic",
            cv=5,
            alpha=1e-12,
        )
    assert result.negative_transfer == []
    assert result.alpha == 1e-12


# --- fit parameters ------------------------------------------------------------------


def test_fit_params_reach_every_fit_sliced_to_its_training_fold(calls):
    weights = np.linspace(0.5, 2.0, len(X_IDS))
    compare_strategies(
        {"a": _RecordingCentroids("a")},
        X_IDS,
        Y_IRIS,
        baseline=_RecordingCentroids("b"),
        cv=3,
        scoring="accuracy",
        params={"sample_weight": weights},
    )
    fits = [call for call in calls if call["method"] == "fit"]
    assert len(fits) == 6
    for call in fits:
        np.testing.assert_array_equal(
            call["fit_params"]["sample_weight"], weights[call["ids"]]
        )


def test_sample_weight_changes_the_scores_of_a_weighted_estimator():
    weights = np.where(Y_IRIS == 0, 10.0, 0.1)
    kwargs = {"baseline": DummyClassifier(), "cv": 3, "scoring": "accuracy"}
    estimators = {"logistic": LogisticRegression(C=0.01, max_iter=500)}
    weighted = compare_strategies(
        estimators, X_IRIS, Y_IRIS, params={"sample_weight": weights}, **kwargs
    )
    plain = compare_strategies(estimators, X_IRIS, Y_IRIS, **kwargs)
    assert not np.array_equal(
        weighted.scores["logistic"]["accuracy"], plain.scores["logistic"]["accuracy"]
    )


# --- the corrected paired t-test ----------------------------------------------------


def test_corrected_ttest_matches_the_nadeau_bengio_formula():
    differences = np.array([0.02, 0.05, -0.01, 0.03, 0.04])
    n_train, n_test = 120, 30
    k = len(differences)
    variance = np.var(differences, ddof=1)
    t_expected = differences.mean() / np.sqrt(variance * (1 / k + n_test / n_train))
    p_expected = 2 * stats.t.sf(abs(t_expected), df=k - 1)

    t_statistic, p_value = corrected_paired_ttest(differences, n_train, n_test)

    assert t_statistic == pytest.approx(t_expected)
    assert p_value == pytest.approx(p_expected)
    assert isinstance(t_statistic, float)
    assert isinstance(p_value, float)


def test_corrected_ttest_is_more_conservative_than_the_plain_paired_ttest():
    differences = np.array([0.02, 0.05, -0.01, 0.03, 0.04])
    t_statistic, p_value = corrected_paired_ttest(differences, 120, 30)
    plain = stats.ttest_1samp(differences, 0.0)
    assert abs(t_statistic) < abs(plain.statistic)
    assert p_value > plain.pvalue


def test_corrected_ttest_is_symmetric_in_the_sign_of_the_differences():
    differences = np.array([0.02, 0.05, -0.01, 0.03, 0.04])
    t_up, p_up = corrected_paired_ttest(differences, 120, 30)
    t_down, p_down = corrected_paired_ttest(-differences, 120, 30)
    assert t_down == pytest.approx(-t_up)
    assert p_down == pytest.approx(p_up)


@pytest.mark.parametrize(
    "differences",
    [np.zeros(5), np.full(5, 0.1), np.array([0.3])],
    ids=["zero", "constant", "one-fold"],
)
def test_corrected_ttest_is_undefined_without_spread(differences):
    t_statistic, p_value = corrected_paired_ttest(differences, 120, 30)
    assert np.isnan(t_statistic)
    assert np.isnan(p_value)


# --- the learning curve --------------------------------------------------------------


def test_learning_curve_fractions_are_fractions_of_a_training_fold():
    curve = transfer_learning_curve(
        {"logistic": _logistic()},
        X_IRIS,
        Y_IRIS,
        baseline=DummyClassifier(),
        train_sizes=[0.3, 0.6, 1.0],
        cv=3,
    )
    assert isinstance(curve, TransferLearningCurve)
    np.testing.assert_array_equal(curve.train_sizes, [30, 60, 100])
    for name in ["baseline", "logistic"]:
        assert curve.test_scores[name].shape == (3, 3)
        assert np.all(np.isfinite(curve.test_scores[name]))
    assert curve.test_scores["logistic"][-1].mean() > 0.9


def test_learning_curve_absolute_sizes_are_numbers_of_samples():
    curve = transfer_learning_curve(
        {"logistic": _logistic()},
        X_IRIS,
        Y_IRIS,
        baseline=DummyClassifier(),
        train_sizes=[20, 50],
        cv=5,
    )
    np.testing.assert_array_equal(curve.train_sizes, [20, 50])
    assert curve.test_scores["logistic"].shape == (2, 5)


@pytest.mark.parametrize(
    "random_state",
    [0, None, np.random.RandomState(0)],
    ids=["int", "None", "RandomState"],
)
def test_learning_curve_fits_every_strategy_on_the_same_subsets(calls, random_state):
    transfer_learning_curve(
        {"a": _RecordingCentroids("a"), "b": _RecordingCentroids("b")},
        X_IDS,
        Y_IRIS,
        baseline="a",
        train_sizes=[0.4, 0.7, 1.0],
        cv=KFold(3, shuffle=True),  # no random_state: splits must be drawn once
        random_state=random_state,
    )
    for method in ["fit", "predict"]:
        seen_a, seen_b = _ids_seen(calls, "a", method), _ids_seen(calls, "b", method)
        assert len(seen_a) == len(seen_b) >= 3 * 3
        for ids_a, ids_b in zip(seen_a, seen_b, strict=True):
            np.testing.assert_array_equal(ids_a, ids_b)
    fit_sizes = sorted(len(ids) for ids in _ids_seen(calls, "a", "fit"))
    assert fit_sizes == [40] * 3 + [70] * 3 + [100] * 3


def test_learning_curve_of_identical_estimators_is_identical():
    curve = transfer_learning_curve(
        {"first": _logistic(), "second": _logistic()},
        X_IRIS,
        Y_IRIS,
        baseline="first",
        train_sizes=[0.3, 1.0],
        cv=KFold(3, shuffle=True),
        scoring="balanced_accuracy",
    )
    np.testing.assert_array_equal(
        curve.test_scores["first"], curve.test_scores["second"]
    )
    assert curve.scoring == "balanced_accuracy"


def test_learning_curve_passes_fit_params_sliced_to_each_subset(calls):
    weights = np.linspace(0.5, 2.0, len(X_IDS))
    transfer_learning_curve(
        {"a": _RecordingCentroids("a")},
        X_IDS,
        Y_IRIS,
        baseline="a",
        train_sizes=[0.5, 1.0],
        cv=3,
        params={"sample_weight": weights},
    )
    fits = [call for call in calls if call["method"] == "fit"]
    assert len(fits) == 6
    for call in fits:
        np.testing.assert_array_equal(
            call["fit_params"]["sample_weight"], weights[call["ids"]]
        )


@pytest.fixture(scope="module")
def curve():
    return transfer_learning_curve(
        {"logistic": _logistic(), "ridge": RidgeClassifier()},
        X_IRIS,
        Y_IRIS,
        baseline=DummyClassifier(),
        train_sizes=[30, 60, 100],
        cv=3,
        scoring="accuracy",
    )


def test_learning_curve_to_frame_is_long_format(curve):
    frame = curve.to_frame()
    assert list(frame.columns) == ["strategy", "train_size", "mean", "std"]
    assert len(frame) == 3 * 3
    assert set(frame["strategy"]) == {"baseline", "logistic", "ridge"}
    logistic = frame[frame["strategy"] == "logistic"]
    assert list(logistic["train_size"]) == [30, 60, 100]
    np.testing.assert_allclose(
        logistic["mean"], curve.test_scores["logistic"].mean(axis=1)
    )
    np.testing.assert_allclose(
        logistic["std"], curve.test_scores["logistic"].std(axis=1)
    )


def test_learning_curve_repr_is_a_table_of_sizes_by_strategy(curve):
    header, rule, *rows = repr(curve).splitlines()
    assert header.split() == ["train_size", "baseline", "logistic", "ridge"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert [row.split()[0] for row in rows] == ["30", "60", "100"]
    mean = curve.test_scores["logistic"][-1].mean()
    assert f"{mean:.3f} ±" in rows[-1]


def test_plot_draws_one_line_per_strategy_with_the_baseline_dashed(curve):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = curve.plot()
    try:
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(lines) == {"baseline", "logistic", "ridge"}
        assert lines["baseline"].get_linestyle() == "--"
        assert lines["logistic"].get_linestyle() == "-"
        assert lines["ridge"].get_linestyle() == "-"
        np.testing.assert_array_equal(lines["ridge"].get_xdata(), [30, 60, 100])
        np.testing.assert_allclose(
            lines["ridge"].get_ydata(), curve.test_scores["ridge"].mean(axis=1)
        )
        assert ax.get_ylabel() == "accuracy"
        assert ax.get_legend() is not None
    finally:
        plt.close(ax.figure)


def test_plot_draws_on_the_axes_it_is_given(curve):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, given = plt.subplots()
    try:
        assert curve.plot(ax=given) is given
        assert len(given.get_lines()) == 3
    finally:
        plt.close(figure)


def test_plot_without_matplotlib_says_how_to_install_it(curve, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install sktransfer\[plot\]"):
        curve.plot()


# --- end to end with a transfer estimator --------------------------------------------


def test_fine_tuning_against_training_from_scratch_end_to_end():
    torch.manual_seed(0)
    source = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    settings = {"max_epochs": 3, "lr": 0.02, "batch_size": 16, "random_state": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NegativeTransferWarning)
        result = compare_strategies(
            {"fine_tuned": FineTunedClassifier(source, **settings)},
            X_IRIS.astype(np.float32),
            Y_IRIS,
            baseline=FineTunedClassifier(source, reinitialize=True, **settings),
            cv=3,
        )
    assert result.metrics == [*CLASSIFIER_METRICS, "roc_auc_ovr"]
    for name in ["baseline", "fine_tuned"]:
        for metric in result.metrics:
            scores = result.scores[name][metric]
            assert scores.shape == (3,)
            assert np.all(np.isfinite(scores))
    assert "fine_tuned" in repr(result)
    assert "baseline (baseline)" in repr(result)

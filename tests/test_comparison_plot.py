"""StrategyComparison.plot: each strategy's mean score with ±1 std error bars.

One row per strategy in the order compared, the baseline grey, labelled and
drawn as a dashed line at its mean; the fold scores as ticks. matplotlib is
optional: without it, ``plot`` says how to install it.
"""

import sys
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB

from sktransfer.model_selection import NegativeTransferWarning, compare_strategies

X_IRIS, Y_IRIS = load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def comparison():
    return compare_strategies(
        {
            "logistic": LogisticRegression(max_iter=500),
            "bayes": GaussianNB(),
            "prior": DummyClassifier(strategy="prior"),
        },
        X_IRIS,
        Y_IRIS,
        baseline="prior",
        cv=5,
        scoring=["accuracy", "f1_macro"],
    )


@pytest.fixture
def plt():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def _error_bars(ax):
    """{row label: (x, y, half-width of the bar, colour)} of each error bar."""
    labels = {tick.get_position()[1]: tick.get_text() for tick in ax.get_yticklabels()}
    bars = {}
    for container in ax.containers:
        point, _, (bar,) = container.lines
        (x,), (y,) = point.get_xdata(), point.get_ydata()
        (start, _), (stop, _) = bar.get_segments()[0]
        bars[labels[y]] = (x, y, (stop - start) / 2, point.get_color())
    return bars


def test_one_error_bar_per_strategy_at_its_mean_and_std(comparison, plt):
    ax = comparison.plot()

    bars = _error_bars(ax)
    assert set(bars) == {"logistic", "bayes", "prior (baseline)"}
    for name, label in [("logistic", "logistic"), ("prior", "prior (baseline)")]:
        x, _, half_width, _ = bars[label]
        scores = comparison.scores[name]["accuracy"]
        assert x == pytest.approx(scores.mean())
        assert half_width == pytest.approx(scores.std())
    assert ax.get_xlabel() == "accuracy, mean ± std over folds"


def test_strategies_are_drawn_top_down_in_the_order_compared(comparison, plt):
    ax = comparison.plot()

    bars = _error_bars(ax)
    from_top = sorted(bars, key=lambda label: -bars[label][1])
    assert from_top == ["logistic", "bayes", "prior (baseline)"]


def test_the_baseline_is_grey_and_its_mean_is_a_dashed_line(comparison, plt):
    ax = comparison.plot()

    bars = _error_bars(ax)
    assert bars["prior (baseline)"][3] == "grey"
    assert bars["logistic"][3] != "grey"
    (line,) = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert line.get_xdata()[0] == pytest.approx(
        comparison.scores["prior"]["accuracy"].mean()
    )


def test_every_fold_score_is_drawn(comparison, plt):
    ax = comparison.plot()

    caps = {cap for container in ax.containers for cap in container.lines[1]}
    ticks = sorted(
        float(x)
        for line in ax.get_lines()
        if line.get_marker() == "|" and line not in caps
        for x in line.get_xdata()
    )
    expected = sorted(
        np.concatenate([scores["accuracy"] for scores in comparison.scores.values()])
    )
    np.testing.assert_allclose(ticks, expected)


def test_metric_chooses_another_measured_metric(comparison, plt):
    ax = comparison.plot(metric="f1_macro")

    x, *_ = _error_bars(ax)["logistic"]
    assert x == pytest.approx(comparison.scores["logistic"]["f1_macro"].mean())
    assert ax.get_xlabel().startswith("f1_macro")


def test_fit_time_can_be_plotted(comparison, plt):
    ax = comparison.plot(metric="fit_time")

    x, *_ = _error_bars(ax)["bayes"]
    assert x == pytest.approx(comparison.scores["bayes"]["fit_time"].mean())
    assert ax.get_xlabel() == "fit time (s)"


def test_a_metric_that_was_not_measured_is_refused_with_the_choices(comparison):
    with pytest.raises(ValueError, match=r"'roc_auc' was not measured.*'f1_macro'"):
        comparison.plot(metric="roc_auc")


def test_plot_draws_on_the_axes_it_is_given(comparison, plt):
    _, given = plt.subplots()

    assert comparison.plot(ax=given) is given
    assert len(given.containers) == 3


def test_negative_transfer_is_written_next_to_the_strategy(plt):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NegativeTransferWarning)
        comparison = compare_strategies(
            {"prior": DummyClassifier(strategy="prior")},
            X_IRIS,
            Y_IRIS,
            baseline=LogisticRegression(max_iter=500),
            cv=5,
            scoring="accuracy",
        )
    assert comparison.negative_transfer == ["prior"]

    labels = [tick.get_text() for tick in comparison.plot().get_yticklabels()]

    assert "prior (negative transfer)" in labels


def test_plot_without_matplotlib_says_how_to_install_it(comparison, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)

    with pytest.raises(ImportError, match=r"pip install sktransfer\[plot\]"):
        comparison.plot()

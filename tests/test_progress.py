"""Progress on long work is reported when, and only when, verbose asks for it.

Estimators and the comparison functions print nothing by default (they run by
the hundred inside grid searches); with ``verbose=1`` a fit prints its epoch
table and, during an epoch longer than a few seconds, how far it got, and
``compare_strategies`` / ``transfer_learning_curve`` print a line as each
strategy finishes.
"""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from skorch import NeuralNetClassifier
from torch import nn

from sktransfer import FineTunedClassifier
from sktransfer._progress import EpochProgress
from sktransfer.model_selection import compare_strategies, transfer_learning_curve

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_IRIS = X_IRIS.astype(np.float32)


def _source():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def _strategies():
    return {
        "logistic": LogisticRegression(max_iter=500),
        "prior": DummyClassifier(strategy="prior"),
    }


@pytest.mark.parametrize("verbose", [0, 1])
def test_a_fit_prints_its_epoch_table_only_when_verbose(verbose, capsys):
    FineTunedClassifier(
        _source(), max_epochs=2, batch_size=50, random_state=0, verbose=verbose
    ).fit(X_IRIS, Y_IRIS)

    out = capsys.readouterr().out
    if verbose:
        header, _, *rows = out.splitlines()
        assert header.split()[:2] == ["epoch", "train_loss"]
        assert [row.split()[0] for row in rows] == ["1", "2"]
    else:
        assert out == ""


def test_a_slow_epoch_reports_the_batches_done_until_its_last_one():
    lines = []
    net = NeuralNetClassifier(
        _source(),
        criterion=nn.CrossEntropyLoss,
        max_epochs=2,
        batch_size=30,  # 150 rows: 5 batches per epoch
        train_split=None,
        verbose=0,
        callbacks=[("progress", EpochProgress(interval=0, sink=lines.append))],
    )

    net.fit(X_IRIS, Y_IRIS)

    assert [line.split(",")[0] for line in lines] == [
        f"epoch {epoch}: {done}/5 batches" for epoch in (1, 2) for done in (1, 2, 3, 4)
    ]
    assert all(line.endswith(" s") for line in lines)


def test_an_epoch_shorter_than_the_interval_reports_nothing():
    lines = []
    net = NeuralNetClassifier(
        _source(),
        criterion=nn.CrossEntropyLoss,
        max_epochs=2,
        train_split=None,
        verbose=0,
        callbacks=[("progress", EpochProgress(interval=60, sink=lines.append))],
    )

    net.fit(X_IRIS, Y_IRIS)

    assert lines == []


def test_compare_strategies_is_silent_by_default(capsys):
    compare_strategies(
        _strategies(), X_IRIS, Y_IRIS, baseline="prior", cv=3, scoring="accuracy"
    )

    assert capsys.readouterr().out == ""


def test_compare_strategies_verbose_reports_each_strategy_as_it_finishes(capsys):
    result = compare_strategies(
        _strategies(),
        X_IRIS,
        Y_IRIS,
        baseline="prior",
        cv=3,
        scoring=["accuracy", "f1_macro"],
        verbose=1,
    )

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for position, (line, name) in enumerate(
        zip(lines, ["logistic", "prior"], strict=True), 1
    ):
        scores = result.scores[name]["accuracy"]
        assert line.startswith(f"[compare_strategies] {position}/2 {name}: ")
        assert f"accuracy {scores.mean():.3f} ± {scores.std():.3f} (" in line
        assert line.endswith(" s)")


def test_compare_strategies_verbose_2_also_reports_every_fold(capsys):
    compare_strategies(
        _strategies(),
        X_IRIS,
        Y_IRIS,
        baseline="prior",
        cv=3,
        scoring="accuracy",
        verbose=2,
    )

    out = capsys.readouterr().out
    assert out.count("[CV] END") == 2 * 3
    assert out.count("[compare_strategies]") == 2


def test_learning_curve_verbose_reports_each_strategy_with_each_size(capsys):
    curve = transfer_learning_curve(
        _strategies(),
        X_IRIS,
        Y_IRIS,
        baseline="prior",
        train_sizes=[30, 90],
        cv=3,
        scoring="accuracy",
        verbose=1,
    )

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    means = curve.test_scores["logistic"].mean(axis=1)
    assert lines[0].startswith("[transfer_learning_curve] 1/2 logistic: ")
    assert f"accuracy {means[0]:.3f} at 30, {means[1]:.3f} at 90 (" in lines[0]
    assert lines[1].startswith("[transfer_learning_curve] 2/2 prior: ")


def test_learning_curve_is_silent_by_default(capsys):
    transfer_learning_curve(
        _strategies(), X_IRIS, Y_IRIS, baseline="prior", train_sizes=[30, 90], cv=3
    )

    assert capsys.readouterr().out == ""

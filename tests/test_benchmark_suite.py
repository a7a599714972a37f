"""The accuracy suite in benchmarks/ runs, and its summary says the right thing.

The benchmark scripts import their sibling modules (``_tasks``,
``_contenders``, ``_harness``) from their own folder, as Python does for a
script; these tests put that folder on the path the same way.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

import _tasks
import bench_accuracy
from _contenders import (
    BASELINE,
    FINE_TUNED,
    SOURCE,
    TRANSFER,
    Contender,
    expand_grid,
    linear_on_raw_inputs,
    network,
    untouched_source,
)
from _harness import (
    SuiteResult,
    draw_split,
    format_summary,
    format_task_table,
    run_suite,
    summarize,
)
from _tasks import TASKS, TaskUnavailable, TransferTask, build_task


def linear_regression_task():
    """A source that is exactly the target's function: untouched R² is 1."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3)).astype(np.float32)
    weights = np.array([1.0, -2.0, 0.5], dtype=np.float32)
    source = torch.nn.Sequential(torch.nn.Linear(3, 1))
    with torch.no_grad():
        source[0].weight.copy_(torch.from_numpy(weights[None]))
        source[0].bias.zero_()
    return TransferTask(
        name="exact-linear",
        kind="regression",
        description="the source is the target function",
        X=X,
        y=X @ weights,
        source=source.eval(),
        source_classes=None,
        same_label_space=True,
        tabular=True,
        sizes=(20,),
    )


def iris_task():
    """Iris with string labels; the source scores every flower as 'setosa'."""
    X, y = load_iris(return_X_y=True)
    source = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 3))
    with torch.no_grad():
        for parameter in source.parameters():
            parameter.zero_()
        source[1].bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
    names = np.array(["setosa", "versicolor", "virginica"])
    return TransferTask(
        name="iris",
        kind="classification",
        description="iris, a source that always says setosa",
        X=X.astype(np.float32),
        y=names[y],
        source=source.eval(),
        source_classes=names,
        same_label_space=True,
        tabular=True,
        sizes=(3, 5),
    )


QUICK_NETWORK = {"max_epochs": 2, "batch_size": 16}

SMOKE_CONTENDERS = [
    Contender("untouched source", SOURCE, untouched_source),
    Contender("linear on raw inputs", BASELINE, linear_on_raw_inputs),
    Contender(
        "scratch", BASELINE, network(*FINE_TUNED, reinitialize=True, **QUICK_NETWORK)
    ),
    Contender("Auto", TRANSFER, network(*FINE_TUNED, **QUICK_NETWORK), is_default=True),
]


def test_draw_split_is_stratified_disjoint_and_capped():
    y = np.repeat(["a", "b", "c"], 50)
    train, test = draw_split(y, 4, seed=0, classification=True, max_test=100)
    assert sorted(np.unique(y[train], return_counts=True)[1]) == [4, 4, 4]
    assert np.intersect1d(train, test).size == 0
    assert test.shape[0] == 100
    again = draw_split(y, 4, seed=0, classification=True, max_test=100)
    assert all(np.array_equal(a, b) for a, b in zip((train, test), again, strict=True))
    other, _ = draw_split(y, 4, seed=1, classification=True)
    assert not np.array_equal(train, other)


def test_draw_split_for_regression_draws_that_many_samples():
    train, test = draw_split(np.arange(50.0), 30, seed=0, classification=False)
    assert train.shape[0] == 30
    assert test.shape[0] == 20


def test_expand_grid_names_one_contender_per_combination():
    contenders = expand_grid(
        "fine-tune", TRANSFER, FINE_TUNED, {"lr": [1e-4, 1e-3], "max_epochs": [5]}
    )
    assert [c.name for c in contenders] == [
        "fine-tune lr=0.0001 max_epochs=5",
        "fine-tune lr=0.001 max_epochs=5",
    ]
    estimator = contenders[0].make(iris_task(), seed=7)
    assert (estimator.lr, estimator.max_epochs, estimator.random_state) == (
        1e-4,
        5,
        7,
    )


def test_network_factory_passes_source_classes_only_when_asked_and_known():
    labelled = network(*FINE_TUNED, with_source_classes=True)
    assert list(labelled(iris_task(), 0).source_classes) == [
        "setosa",
        "versicolor",
        "virginica",
    ]
    assert network(*FINE_TUNED)(iris_task(), 0).source_classes is None
    regressor = labelled(linear_regression_task(), 0)
    assert "source_classes" not in regressor.get_params()


def test_suite_scores_every_contender_and_the_untouched_source():
    tasks = [iris_task(), linear_regression_task()]
    result = run_suite(tasks, SMOKE_CONTENDERS, seeds=(0, 1), max_test=40)

    assert not [r["error"] for r in result.records if r["error"]]
    # 2 seeds x (iris: 2 sizes x 4 contenders + exact-linear: 1 size x 4)
    assert len(result.records) == 2 * (2 * 4 + 4)
    untouched = {
        r["task"]: r["score"]
        for r in result.records
        if r["contender"] == "untouched source"
    }
    assert untouched["exact-linear"] == pytest.approx(1.0)
    assert untouched["iris"] == pytest.approx(1 / 3, abs=0.15)
    assert all(r["n_test"] <= 40 for r in result.records)

    rows = summarize(result)
    assert [(row["task"], row["size"]) for row in rows] == [
        ("iris", 3),
        ("iris", 5),
        ("exact-linear", 20),
    ]
    exact = rows[-1]
    assert exact["source"] == "untouched source"
    assert exact["best"] == "untouched source"
    assert exact["regret_best"] == pytest.approx(exact["auto_score"] - 1.0)
    assert "Auto" in format_summary(rows)
    assert "untouched source" in format_task_table(result, "iris")


def summary_of(scores, roles, defaults=()):
    """summarize() on hand-made scores: {contender: [score per seed]}."""
    records = [
        {
            "task": "t",
            "size": 10,
            "seed": seed,
            "contender": name,
            "score": score,
            "fit_seconds": 0.0,
        }
        for name, by_seed in scores.items()
        for seed, score in enumerate(by_seed)
    ]
    result = SuiteResult(
        records=records,
        tasks={"t": {"kind": "classification", "description": "", "sizes": [10]}},
        contenders={
            name: {"role": roles[name], "is_default": name in defaults}
            for name in scores
        },
    )
    return summarize(result)[0]


ROLES = {
    "raw": BASELINE,
    "source": SOURCE,
    "fine-tune": TRANSFER,
    "Auto": TRANSFER,
}


def test_summary_flags_auto_clearly_below_the_better_floor():
    row = summary_of(
        {
            "raw": [0.80, 0.81, 0.79],
            "source": [0.70, 0.70, 0.70],
            "fine-tune": [0.90, 0.90, 0.90],
            "Auto": [0.75, 0.76, 0.74],
        },
        ROLES,
    )
    assert row["baseline"] == "raw"
    assert row["best"] == "fine-tune"
    assert row["regret_best"] == pytest.approx(-0.15)
    assert row["regret_baseline"] == pytest.approx(-0.05)
    assert len(row["flags"]) == 1
    assert "Auto below raw" in row["flags"][0]


def test_summary_does_not_flag_auto_within_one_standard_error():
    row = summary_of(
        {
            "raw": [0.80, 0.80, 0.80],
            "source": [0.70, 0.70, 0.70],
            "Auto": [0.76, 0.84, 0.79],  # mean 0.797, standard error 0.023
        },
        ROLES,
    )
    assert row["flags"] == []


def test_summary_flags_defaults_below_the_untouched_source():
    row = summary_of(
        {
            "raw": [0.60, 0.60, 0.60],
            "source": [0.70, 0.71, 0.69],
            "fine-tune": [0.65, 0.66, 0.64],
        },
        ROLES,
        defaults=("fine-tune",),
    )
    assert row["auto"] is None
    assert row["flags"] == ["fine-tune below source (-0.050)"]


def test_runner_builds_a_task_runs_and_writes_json_it_can_report(tmp_path, capsys):
    output = tmp_path / "run.json"
    bench_accuracy.main(
        [
            "--tasks",
            "digits-new-labels",
            "--contenders",
            "untouched source",
            "linear on raw inputs",
            "features + linear",
            "--quick",
            "--n-jobs",
            "1",
            "--no-cache",
            "--output",
            str(output),
        ]
    )
    printed = capsys.readouterr().out
    assert "digits-new-labels" in printed
    assert "best baseline" in printed
    stored = json.loads(output.read_text())
    # New labels: the untouched source does not apply; two seeds, size 10.
    assert {r["contender"] for r in stored["records"]} == {
        "linear on raw inputs",
        "features + linear",
    }
    assert {(r["size"], r["seed"]) for r in stored["records"]} == {(10, 0), (10, 1)}
    assert all(0.5 < r["score"] <= 1 for r in stored["records"])

    bench_accuracy.main(["--report", str(output)])
    assert "features + linear" in capsys.readouterr().out


# Data generation is what these check; building the text task embeds 3,600
# sentences with MiniLM, and MNIST-1D generates 7,000 signals.
EXPENSIVE_TO_BUILD = {"mnist1d-shift", "text-sentiment-shift"}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            name, marks=[pytest.mark.slow] if name in EXPENSIVE_TO_BUILD else []
        )
        for name in TASKS
    ],
)
def test_task_pool_fits_its_source_and_allows_every_draw(name, monkeypatch):
    # Pretraining is stubbed (an untrained source in eval mode): this checks
    # the data and the architecture; the next test pretrains for real.
    monkeypatch.setattr(_tasks, "_pretrain", lambda network, *a, **k: network.eval())
    try:
        task = TASKS[name](None)
    except TaskUnavailable as exc:
        pytest.skip(str(exc))
    assert task.name == name
    assert task.kind in ("classification", "regression")
    assert not task.source.training
    with torch.inference_mode():
        outputs = task.source(torch.as_tensor(task.X[:5]))
    assert outputs.shape[0] == 5
    if task.same_label_space and task.kind == "classification":
        assert outputs.shape[1] == len(task.source_classes)
        assert set(np.unique(task.y)) <= set(task.source_classes.tolist())
    if task.kind == "classification":
        smallest_class = np.unique(task.y, return_counts=True)[1].min()
        assert smallest_class > max(task.sizes)
    else:
        assert task.y.shape[0] > max(task.sizes)


def test_pretrained_source_is_cached_on_disk_and_read_back_identical(tmp_path):
    built = TASKS["digits-new-labels"](tmp_path)
    assert len(list(tmp_path.glob("digits-new-labels-*.pt"))) == 1
    reread = TASKS["digits-new-labels"](tmp_path)
    assert reread.source is not built.source
    for before, after in zip(
        built.source.state_dict().values(),
        reread.source.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(before, after)
    assert build_task("digits-new-labels") is build_task("digits-new-labels")

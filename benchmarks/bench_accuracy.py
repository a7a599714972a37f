"""Target accuracy of every transfer strategy vs training from scratch.

Run it from the repository root, with sktransfer installed::

    python benchmarks/bench_accuracy.py                # about 15 minutes on 2 cores
    python benchmarks/bench_accuracy.py --only fine-tune features reference  # 1 min

The MNIST-1D task needs the optional ``mnist1d`` package (``pip install
mnist1d``); without it that task is skipped with a note.

Tasks
-----
*digits*: :func:`sktransfer.datasets.load_digits_transfer` -- source task the
8x8 digits 0-4, target task the digits 5-9 (different classes, same pixels).
The source network is :func:`~sktransfer.datasets.pretrain_source_network`
with its defaults (MLP 64-128-64-5, 40 epochs). Every network contender puts
a new 5-way head on it.

*mnist1d*: :func:`sktransfer.datasets.load_mnist1d_transfer` -- the same ten
classes in both tasks, but the target signals come from a differently set
generator (domain shift 1.0: stronger amplitude scaling, noise and shear).
Source network: an MLP 40-256-128-10 pretrained with
:func:`~sktransfer.datasets.pretrain_source_network` on 4,000 source signals
for 60 epochs. The network contenders keep the source's head (the classes
match), except the row marked "new head".

Each source network is pretrained once, before any target data is looked at.

Contenders
----------
All network contenders train the same architecture for the same budget,
fixed in advance and not tuned on any test split: Adam, ``lr=1e-3``,
``batch_size=32``, ``max_epochs=100``, no early stopping.

Group ``fine-tune`` (:class:`~sktransfer.FineTunedClassifier`):

* ``scratch``: ``reinitialize=True`` -- the source architecture with fresh
  weights, the baseline every other row is compared with.
* ``fine-tune (λ=0)``: every layer trains from the source weights. This is
  also ``KnowledgeRegularizedClassifier`` with ``lam=0`` (bit-identical).
* ``fine-tune, body lr ×0.1``: the same with ``body_lr_ratio=0.1``.
* ``fine-tune, new head`` (mnist1d only): a fresh head instead of the
  source's.
* ``frozen body, new head``: ``freeze="body"`` -- only a new head trains.

Group ``knowledge`` (:class:`~sktransfer.KnowledgeRegularizedClassifier`,
same head as ``fine-tune (λ=0)``): ``l2sp``, ``features`` and ``outputs``,
each with λ chosen by ``GridSearchCV(cv=3)`` on the target *training* set
only, over the grid in ``LAM_GRID`` (λ = 0 is not in the grid: the row
``fine-tune (λ=0)`` is that choice). The most frequent choice of λ is printed
after the table.

Group ``combined`` (the strategies that combine the source with something
else): ``DistilledClassifier`` into a student a quarter of the source's width
(one hidden layer of 64, ``temperature=4``, ``alpha=0.5``,
``source_classes`` the source task's labels; on digits they differ from the
target's, so an auxiliary head learns them), ``FusionClassifier``
with summed logits and with concatenated features, and
``JointTrainingClassifier(source_weight=1)`` trained on the target batches and
the task's source data (``fit(..., source_data=SourceData(X_source,
y_source))``).

Group ``features``: ``make_pipeline(PretrainedFeatureTransformer(source),
StandardScaler(), LogisticRegression(max_iter=1000))`` -- feature transfer.

Group ``reference``: ``logreg on raw inputs`` -- ``make_pipeline(
StandardScaler(), LogisticRegression(max_iter=1000))`` on the inputs
themselves, no network at all; and, on mnist1d, ``source, no target
training`` -- the source network's own predictions on the target test set.

Protocol
--------
For every target size (labelled samples per class) and seed, the seed draws
that many training samples of each class from the target data; every other
target sample is the test set. All contenders see the same split, and the
network contenders get ``random_state=seed``. The table shows test accuracy,
mean ± standard deviation over the seeds, and in brackets the mean paired
difference to ``scratch`` on the same splits.

The (target size, seed) jobs run in parallel (``--n-jobs``, default: one per
CPU), each on one torch thread, which is as fast as two threads for networks
this small.
"""

import argparse
import os
import platform
import time
import warnings
from collections import Counter

import numpy as np
import sklearn
import torch
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

import sktransfer
from sktransfer import (
    DistilledClassifier,
    FineTunedClassifier,
    FusionClassifier,
    JointTrainingClassifier,
    KnowledgeRegularizedClassifier,
    PretrainedFeatureTransformer,
    SourceData,
)
from sktransfer.datasets import load_digits_transfer, pretrain_source_network

BUDGET = {"max_epochs": 100, "lr": 1e-3, "batch_size": 32}
LAM_GRID = {
    "l2sp": [1e-3, 1e-2, 1e-1, 1.0, 10.0],
    "features": [1e-2, 1e-1, 1.0, 10.0, 100.0],
    "outputs": [1e-2, 1e-1, 1.0, 10.0],
}
GROUPS = ("fine-tune", "knowledge", "combined", "features", "reference")


def student(n_features, n_classes):
    """The distillation student: one hidden layer of 64, a quarter of the source."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(n_features, 64), nn.ReLU(), nn.Linear(64, n_classes))


def contenders(source, same_classes, groups, n_features, n_classes, source_classes):
    """Fresh, unfitted contenders by group, in table order."""
    head = "reuse" if same_classes else "new"
    estimators = {"scratch": FineTunedClassifier(source, reinitialize=True, **BUDGET)}
    if "fine-tune" in groups:
        estimators["fine-tune (λ=0)"] = FineTunedClassifier(source, head=head, **BUDGET)
        estimators["fine-tune, body lr ×0.1"] = FineTunedClassifier(
            source, head=head, body_lr_ratio=0.1, **BUDGET
        )
        if same_classes:
            estimators["fine-tune, new head"] = FineTunedClassifier(
                source, head="new", **BUDGET
            )
        estimators["frozen body, new head"] = FineTunedClassifier(
            source, head="new", freeze="body", **BUDGET
        )
    if "knowledge" in groups:
        for knowledge, grid in LAM_GRID.items():
            estimators[f"{knowledge}, λ by grid search"] = GridSearchCV(
                KnowledgeRegularizedClassifier(
                    source, knowledge=knowledge, head=head, **BUDGET
                ),
                {"lam": grid},
                cv=3,
            )
    if "combined" in groups:
        estimators["distilled into a small student"] = DistilledClassifier(
            source,
            student(n_features, n_classes),
            temperature=4.0,
            source_classes=source_classes,
            **BUDGET,
        )
        estimators["fusion, summed logits"] = FusionClassifier(
            source, fusion="sum", **BUDGET
        )
        estimators["fusion, concatenated features"] = FusionClassifier(
            source, fusion="concat", **BUDGET
        )
        estimators["joint training with source data"] = JointTrainingClassifier(
            source, source_weight=1.0, **BUDGET
        )
    if "features" in groups:
        estimators["features + logreg"] = make_pipeline(
            PretrainedFeatureTransformer(source),
            StandardScaler(),
            LogisticRegression(max_iter=1000),
        )
    if "reference" in groups:
        estimators["logreg on raw inputs"] = make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=1000)
        )
    return estimators


def stratified_draw(y, n_per_class, seed):
    """Indices of ``n_per_class`` samples of each class, and of all the others."""
    rng = np.random.default_rng(seed)
    train = np.concatenate(
        [
            rng.choice(np.flatnonzero(y == label), size=n_per_class, replace=False)
            for label in np.unique(y)
        ]
    )
    test = np.setdiff1d(np.arange(y.shape[0]), train)
    return np.sort(train), test


def source_accuracy(source, X, y):
    """Accuracy of the source network's own predictions (labels 0..k-1)."""
    with torch.inference_mode():
        predicted = source(torch.as_tensor(X)).argmax(dim=1).numpy()
    return float((predicted == y).mean())


def one_split(X, y, source, same_classes, groups, size, seed, source_data):
    """Fit every contender on one split; {contender: (accuracy, chosen λ)}."""
    torch.set_num_threads(1)  # one job per core: small nets run best this way
    train, test = stratified_draw(y, size, seed)
    results = {}
    n_classes = np.unique(y).shape[0]
    source_classes = np.unique(source_data.y)
    for label, estimator in contenders(
        source, same_classes, groups, X.shape[1], n_classes, source_classes
    ).items():
        if isinstance(estimator, GridSearchCV):
            estimator.set_params(estimator__random_state=seed)
        elif "random_state" in estimator.get_params(deep=False):
            estimator.set_params(random_state=seed)
        fit_params = (
            {"source_data": source_data}
            if isinstance(estimator, JointTrainingClassifier)
            else {}
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            estimator.fit(X[train], y[train], **fit_params)
        chosen = getattr(estimator, "best_params_", {}).get("lam")
        results[label] = (estimator.score(X[test], y[test]), chosen)
    if same_classes and "reference" in groups:
        results["source, no target training"] = (
            source_accuracy(source, X[test], y[test]),
            None,
        )
    return results


def evaluate(X, y, source, same_classes, groups, sizes, seeds, n_jobs, source_data):
    """{contender: {size: array over seeds}} and {contender: [chosen λ, ...]}."""
    jobs = [(size, seed) for size in sizes for seed in seeds]
    outcomes = Parallel(n_jobs=n_jobs)(
        delayed(one_split)(X, y, source, same_classes, groups, size, seed, source_data)
        for size, seed in jobs
    )
    scores, chosen = {}, {}
    for (size, _), results in zip(jobs, outcomes, strict=True):
        for label, (accuracy, lam) in results.items():
            scores.setdefault(label, {}).setdefault(size, []).append(accuracy)
            if lam is not None:
                chosen.setdefault(label, {}).setdefault(size, []).append(lam)
    scores = {
        label: {size: np.array(values) for size, values in by_size.items()}
        for label, by_size in scores.items()
    }
    return scores, chosen


def digits_task():
    task = load_digits_transfer()
    source = pretrain_source_network(task.X_source, task.y_source)
    return task, source, False


def mnist1d_task():
    from sktransfer.datasets import load_mnist1d_transfer

    task = load_mnist1d_transfer(
        n_source=4000, n_target_per_class=300, shift=1.0, random_state=0
    )
    source = pretrain_source_network(
        task.X_source, task.y_source, hidden_layer_sizes=(256, 128), max_epochs=60
    )
    return task, source, True


def mnist1d_available():
    try:
        import mnist1d  # noqa: F401
    except ImportError:
        return False
    return True


def print_table(results):
    """One table: a row per task and contender, a column per target size."""
    width = max(len(label) for _, _, scores, _ in results for label in scores)
    cell = 23
    print(f"{'task':<8} {'contender':<{width}}" + f"{'labelled per class:':>{cell}}")
    for task, sizes, scores, _ in results:
        print(f"{task:<8} {'':<{width}}" + "".join(f"{size:>{cell}}" for size in sizes))
        baseline = scores["scratch"]
        for label, by_size in scores.items():
            cells = []
            for size in sizes:
                values = by_size[size]
                text = f"{values.mean():.3f} ± {values.std():.3f}"
                if label != "scratch":
                    diff = (values - baseline[size]).mean()
                    text += f" [{diff:+.3f}]"
                cells.append(f"{text:>{cell}}")
            print(f"{'':<8} {label:<{width}}" + "".join(cells))
        print()


def print_chosen(results):
    """The λ grid search chose, most frequent first, per task and target size."""
    lines = []
    for task, sizes, _, chosen in results:
        for label, by_size in chosen.items():
            picks = "; ".join(
                f"{size}/class: "
                + ", ".join(
                    f"{lam:g}×{count}"
                    for lam, count in Counter(by_size[size]).most_common()
                )
                for size in sizes
            )
            lines.append(f"{task:<8} {label:<26} {picks}")
    if lines:
        print("λ chosen by GridSearchCV (value×times over the seeds):")
        print("\n".join(lines))
        print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds (>= 3)")
    parser.add_argument(
        "--n-jobs",
        type=int,
        default=os.cpu_count(),
        help="parallel jobs, each (target size, seed) on one torch thread",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=GROUPS,
        default=list(GROUPS),
        help="groups of contenders to run (scratch always runs)",
    )
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    print(
        f"sktransfer {sktransfer.__version__}, torch {torch.__version__}, "
        f"scikit-learn {sklearn.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; load average "
        f"{'{:.2f} {:.2f} {:.2f}'.format(*os.getloadavg())}"
    )
    print(
        f"budget of every network contender: Adam, lr={BUDGET['lr']}, "
        f"batch_size={BUDGET['batch_size']}, max_epochs={BUDGET['max_epochs']}; "
        f"{len(seeds)} seeds; λ grids {LAM_GRID}\n"
    )
    start = time.perf_counter()
    tasks = [("digits", digits_task, (5, 10, 25))]
    if mnist1d_available():
        tasks.append(("mnist1d", mnist1d_task, (10, 30, 100)))
    else:
        print(
            "NOTE: the mnist1d task is skipped: the optional 'mnist1d' package "
            "is not installed (pip install mnist1d).\n"
        )
    results = []
    for name, make_task, sizes in tasks:
        task, source, same_classes = make_task()
        print(f"{name}: {task.description}")
        task_start = time.perf_counter()
        scores, chosen = evaluate(
            task.X_target,
            task.y_target,
            source,
            same_classes,
            args.only,
            sizes,
            seeds,
            args.n_jobs,
            SourceData(task.X_source, task.y_source),
        )
        results.append((name, sizes, scores, chosen))
        print(f"  {name} done in {time.perf_counter() - task_start:.0f} s", flush=True)
    print(
        f"\n== target test accuracy, mean ± std over {len(seeds)} seeds "
        "[mean paired difference to scratch] ==\n"
    )
    print_table(results)
    print_chosen(results)
    elapsed = time.perf_counter() - start
    print(
        f"total {elapsed:.0f} s; load average "
        f"{'{:.2f} {:.2f} {:.2f}'.format(*os.getloadavg())}"
    )


if __name__ == "__main__":
    main()

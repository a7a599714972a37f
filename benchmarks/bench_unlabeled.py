"""Unlabelled target rows: distillation and self-training beside their plain versions.

Run it from the repository root, with sktransfer installed::

    python benchmarks/bench_unlabeled.py           # 5 seeds, about a minute
    python benchmarks/bench_unlabeled.py --seeds 10

What is compared, per seed (the seed draws the labelled rows), on rows no
fit sees:

- **Distillation.** A teacher MLP (10-64-64-4) trained on 1,500 labelled
  rows of a 4-class ``make_classification`` task; a student MLP (10-16-4)
  given 5 labelled rows per class. ``DistilledClassifier(teacher, student,
  alpha=0.5)`` fitted on the labelled rows alone, and with
  ``unlabeled_data=UnlabeledData(X_pool)`` (1,000 unlabelled rows of the same
  task), beside the teacher itself.
- **Self-training.** ``LogisticRegression`` on 2 labelled rows per class of
  four overlapping Gaussian blobs, alone and inside
  ``PseudoLabelingClassifier(threshold=0.8)`` with 600 unlabelled rows.

It prints accuracy mean ± std over the seeds and the paired difference with
its standard error.
"""

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import make_blobs, make_classification
from sklearn.linear_model import LogisticRegression
from torch import nn

from sktransfer import DistilledClassifier, PseudoLabelingClassifier, UnlabeledData


def distillation_task():
    X, y = make_classification(
        n_samples=3000,
        n_features=10,
        n_informative=8,
        n_redundant=0,
        n_classes=4,
        n_clusters_per_class=2,
        class_sep=1.5,
        random_state=0,
    )
    X = X.astype(np.float32)
    torch.manual_seed(0)
    teacher = nn.Sequential(
        nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4)
    )
    optimizer = torch.optim.Adam(teacher.parameters(), 1e-2)
    inputs, targets = torch.tensor(X[:1500]), torch.tensor(y[:1500])
    for _ in range(300):
        optimizer.zero_grad()
        nn.functional.cross_entropy(teacher(inputs), targets).backward()
        optimizer.step()
    return teacher, X[1500:], y[1500:]


def distillation(seeds):
    teacher, X, y = distillation_task()
    X_pool, y_pool, X_test, y_test = X[:1000], y[:1000], X[1000:], y[1000:]
    with torch.no_grad():
        teacher_score = (
            teacher(torch.tensor(X_test)).argmax(1).numpy() == y_test
        ).mean()
    scores = {"labelled rows only": [], "with 1,000 unlabelled rows": []}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        labelled = np.concatenate(
            [
                rng.choice(np.flatnonzero(y_pool == c), 5, replace=False)
                for c in range(4)
            ]
        )
        for name, unlabeled in zip(scores, (None, UnlabeledData(X_pool)), strict=True):
            torch.manual_seed(1)
            student = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 4))
            model = DistilledClassifier(teacher, student, alpha=0.5, random_state=seed)
            model.fit(X_pool[labelled], y_pool[labelled], unlabeled_data=unlabeled)
            scores[name].append(model.score(X_test, y_test))
    return scores, f"teacher: {teacher_score:.3f}"


def self_training(seeds):
    scores = {"LogisticRegression": [], "PseudoLabelingClassifier": []}
    for seed in seeds:
        X, y = make_blobs(n_samples=1200, centers=4, cluster_std=2.0, random_state=seed)
        rng = np.random.default_rng(seed)
        labelled = np.concatenate(
            [rng.choice(np.flatnonzero(y == c), 2, replace=False) for c in range(4)]
        )
        rest = np.setdiff1d(np.arange(len(y)), labelled)
        pool, test = rest[:600], rest[600:]
        plain = LogisticRegression().fit(X[labelled], y[labelled])
        pseudo = PseudoLabelingClassifier(LogisticRegression(), threshold=0.8).fit(
            X[labelled], y[labelled], unlabeled_data=UnlabeledData(X[pool])
        )
        scores["LogisticRegression"].append(plain.score(X[test], y[test]))
        scores["PseudoLabelingClassifier"].append(pseudo.score(X[test], y[test]))
    return scores, ""


def report(title, scores, note):
    print(f"\n{title}" + (f" ({note})" if note else ""))
    for name, values in scores.items():
        print(f"  {name:<30} {np.mean(values):.3f} ± {np.std(values):.3f}")
    first, second = (np.array(values) for values in scores.values())
    difference = second - first
    error = difference.std(ddof=1) / np.sqrt(len(difference))
    print(
        f"  {'difference (second - first)':<30} {difference.mean():+.3f} ± {error:.3f}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    report("Distillation, 5 labelled rows per class", *distillation(seeds))
    report("Self-training, 2 labelled rows per class", *self_training(seeds))
    print(f"\n{len(seeds)} seeds, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

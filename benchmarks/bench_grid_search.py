"""GridSearchCV over λ: one job vs two, side by side.

Run it from the repository root, with sktransfer installed, on an otherwise
idle machine::

    python benchmarks/bench_grid_search.py [--repeats 3]

Many fits -- cross-validation folds times grid points -- are where transfer
learning spends its time, and they are independent: joblib runs them in
parallel. This script times ``GridSearchCV(KnowledgeRegularizedClassifier(
source, knowledge="l2sp"), {"lam": [0, 1e-3, 1e-2, 1e-1, 1, 10]}, cv=5)`` on
the digits target task (896 images, 40 epochs per fit, 31 fits with the refit)
with ``n_jobs=1`` and ``n_jobs=2`` and prints the speed-up; the target on two
cores is ≥ 1.8. The refit on the whole data runs alone after the search, so
even perfect workers cannot beat 31 / (15 + 1) ≈ 1.94 here (the script prints
that bound).

That needs each worker to keep to its core. joblib's default (loky) backend
starts its workers with ``OMP_NUM_THREADS`` set to ``cpu_count // n_jobs``,
and torch reads it at start-up, so two workers run one torch thread each
instead of fighting over the cores with two each. The script prints the
thread count each worker saw. The single-job run uses torch's default
(one thread per core) in this process, as a user's script would; the row
``n_jobs=1, 1 torch thread`` shows what that default is worth here.

joblib's workers also need ``psutil`` (the ``parallel`` extra): without it,
loky runs a full ``gc.collect()`` in each worker after a task whenever a
second has passed since the last one, and with torch loaded that takes about
130 ms -- 10 % of a grid search of sub-second fits. With psutil it only
measures the worker's memory. The script says whether psutil is installed.

The contenders alternate (1 job, 2 jobs, 1 job, …) after a warm-up that also
starts the worker processes, and the minimum time of each is compared. The
script also checks that both give the same ``best_params_`` and bit-identical
``cv_results_`` scores: parallelism must not change results.
"""

import argparse
import os
import platform
import time

import numpy as np
import torch
from joblib import Parallel, delayed
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from sktransfer import KnowledgeRegularizedClassifier
from sktransfer.datasets import load_digits_transfer, pretrain_source_network

GRID = {"lam": [0.0, 1e-3, 1e-2, 1e-1, 1.0, 10.0]}


def worker_threads(n_jobs):
    """torch's thread count inside joblib workers."""
    return Parallel(n_jobs=n_jobs)(
        delayed(torch.get_num_threads)() for _ in range(n_jobs)
    )


def search(source, X, y, n_jobs, epochs):
    return GridSearchCV(
        KnowledgeRegularizedClassifier(
            source, knowledge="l2sp", head="new", max_epochs=epochs, random_state=0
        ),
        GRID,
        cv=StratifiedKFold(5, shuffle=True, random_state=0),
        n_jobs=n_jobs,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({default_threads} threads in this process); "
        f"load average {'{:.2f} {:.2f} {:.2f}'.format(*os.getloadavg())}"
    )
    print(f"torch threads in each of 2 joblib workers: {worker_threads(2)}")
    try:
        import psutil  # noqa: F401
    except ImportError:
        print(
            "NOTE: psutil is not installed (pip install sktransfer[parallel]): "
            "joblib's workers will run a full gc.collect() about every second."
        )
    else:
        print("psutil installed: joblib's workers skip their periodic gc.collect()")

    task = load_digits_transfer()
    source = pretrain_source_network(task.X_source, task.y_source)
    X, y = task.X_target, task.y_target
    n_fits = len(GRID["lam"]) * 5 + 1
    print(
        f"GridSearchCV over lam={GRID['lam']}, 5 folds (+ refit = {n_fits} fits), "
        f"{len(y)} samples, {args.epochs} epochs per fit\n"
    )

    def one_job_one_thread():
        torch.set_num_threads(1)
        try:
            return search(source, X, y, 1, args.epochs).fit(X, y)
        finally:
            torch.set_num_threads(default_threads)

    contenders = {
        f"n_jobs=1 ({default_threads} torch threads)": lambda: search(
            source, X, y, 1, args.epochs
        ).fit(X, y),
        "n_jobs=2 (1 torch thread each)": lambda: search(
            source, X, y, 2, args.epochs
        ).fit(X, y),
        "n_jobs=1, 1 torch thread": one_job_one_thread,
    }
    fitted = {name: run() for name, run in contenders.items()}  # warm-up
    reference = fitted[next(iter(contenders))]

    def fold_scores(search):
        return np.column_stack(
            [search.cv_results_[f"split{k}_test_score"] for k in range(5)]
        )

    for name, other in fitted.items():
        same = other.best_params_ == reference.best_params_ and np.array_equal(
            fold_scores(other), fold_scores(reference)
        )
        print(
            f"{name:<34} best {other.best_params_}, "
            f"fold scores identical to the first row's: {same}"
        )
    times = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    baseline = min(times[next(iter(contenders))])
    n_search_fits = n_fits - 1
    bound = n_fits / (-(-n_search_fits // 2) + 1)
    print(
        f"\nbest possible speed-up with 2 workers: {n_fits} fits / "
        f"({-(-n_search_fits // 2)} per worker + the refit) = {bound:.2f}"
    )
    print(f"\n{'contender':<34}{'time (s)':>10}{'speed-up':>10}  target")
    for name, values in times.items():
        best = min(values)
        target = ">= 1.8" if name.startswith("n_jobs=2") else ""
        print(f"{name:<34}{best:>10.2f}{baseline / best:>10.2f}  {target}")
    print(f"\nload average after: {'{:.2f} {:.2f} {:.2f}'.format(*os.getloadavg())}")


if __name__ == "__main__":
    main()

"""Run contenders on tasks over seeds and sizes; summarise, print, store.

:func:`run_suite` fits every contender on every (task, size, seed) draw, in
parallel with joblib, and returns a :class:`SuiteResult`: one record per fit
(score, fit time, error), which prints the per-task tables and the summary
and round-trips through JSON.

Protocol: for each (task, size, seed), the seed draws ``size`` labelled
samples of each class (classification) or ``size`` samples (regression)
from the task's pool; the remaining samples, at most ``max_test`` of them
(a seeded subset), are the test set. Every contender sees the same draw and
gets ``random_state=seed``. Scores are accuracy (classification) and R²
(regression): higher is better for both.
"""

import contextlib
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from _contenders import BASELINE, SOURCE
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.metrics import accuracy_score, r2_score
from threadpoolctl import ThreadpoolController

from sktransfer import FineTunedClassifier

__all__ = [
    "SuiteResult",
    "draw_split",
    "format_summary",
    "format_task_table",
    "run_suite",
    "summarize",
]


def draw_split(y, size, seed, *, classification, max_test=None):
    """Training and test indices of one draw.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
    size : int
        Training samples per class (classification) or in all (regression).
    seed : int
    classification : bool
    max_test : int or None
        Keep at most this many test samples (a seeded random subset).

    Returns
    -------
    train, test : ndarray of int
    """
    rng = np.random.default_rng(seed)
    if classification:
        train = np.concatenate(
            [
                rng.choice(np.flatnonzero(y == label), size=size, replace=False)
                for label in np.unique(y)
            ]
        )
    else:
        train = rng.choice(y.shape[0], size=size, replace=False)
    test = np.setdiff1d(np.arange(y.shape[0]), train)
    if max_test is not None and test.shape[0] > max_test:
        test = np.sort(rng.choice(test, size=max_test, replace=False))
    return np.sort(train), test


@contextlib.contextmanager
def _one_thread():
    # One job per core: the networks are small, and two threads per job on
    # a shared 2-core machine only wait for each other.
    global _thread_pools
    if _thread_pools is None:  # finding the BLAS libraries takes ~50 ms
        _thread_pools = ThreadpoolController()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _thread_pools.limit(limits=1):
            yield
    finally:
        torch.set_num_threads(threads)


_thread_pools = None


def _score(kind, y_true, y_pred):
    if kind == "classification":
        return float(accuracy_score(y_true, y_pred))
    return float(r2_score(y_true, y_pred))


def _warm_up():
    """One tiny fit per process, before any fit is timed.

    The first network fit in a process pays for torch's lazy imports (the
    optimizer pulls in torch._dynamo), seconds that belong to no contender.
    """
    global _warmed_up
    if _warmed_up:
        return
    X = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    source = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        FineTunedClassifier(source, max_epochs=1).fit(X, np.arange(8) % 2)
    _warmed_up = True


_warmed_up = False


def _run_job(job, task, estimator, max_test):
    """Fit one contender on one draw; its record."""
    _warm_up()
    train, test = draw_split(
        task.y,
        job["size"],
        job["seed"],
        classification=task.kind == "classification",
        max_test=max_test,
    )
    record = {**job, "n_train": int(train.shape[0]), "n_test": int(test.shape[0])}
    X_train, y_train, X_test, y_test = (
        task.X[train],
        task.y[train],
        task.X[test],
        task.y[test],
    )
    with _one_thread(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            start = time.perf_counter()
            # A fresh copy: the job list keeps only unfitted estimators.
            estimator = clone(estimator).fit(X_train, y_train)
            fit_seconds = time.perf_counter() - start
            predicted = estimator.predict(X_test)
            record.update(
                score=_score(task.kind, y_test, predicted),
                fit_seconds=fit_seconds,
                error=None,
            )
        except Exception as exc:  # a failed fit is a result, not a crash
            record.update(
                score=None, fit_seconds=None, error=f"{type(exc).__name__}: {exc}"
            )
    record["warnings"] = sorted(
        {f"{w.category.__name__}: {str(w.message)[:200]}" for w in caught}
    )
    return record


@dataclass
class SuiteResult:
    """Every fit of one run, and what is needed to read them.

    Attributes
    ----------
    records : list of dict
        One per (task, size, seed, contender): ``score`` (None when the fit
        failed, then ``error`` says why), ``fit_seconds``, ``n_train``,
        ``n_test``, ``warnings``.
    tasks : dict
        Per task: ``kind``, ``description``, ``same_label_space``,
        ``tabular``, ``sizes``.
    contenders : dict
        Per contender, in table order: ``role`` and ``is_default``.
    meta : dict
        Versions, machine, settings and timing of the run.
    """

    records: list
    tasks: dict
    contenders: dict
    meta: dict = field(default_factory=dict)

    def to_json(self, path):
        with open(path, "w", encoding="utf-8") as file:
            json.dump(asdict(self), file, indent=1, ensure_ascii=False)

    @classmethod
    def from_json(cls, path):
        with open(path, encoding="utf-8") as file:
            return cls(**json.load(file))

    def scores(self, task, size):
        """{contender: {seed: score or nan}} for one task and size."""
        table = {}
        for record in self.records:
            if record["task"] == task and record["size"] == size:
                score = record["score"]
                table.setdefault(record["contender"], {})[record["seed"]] = (
                    np.nan if score is None else score
                )
        return table


def _sizes(task, sizes):
    return task.sizes if sizes is None else sizes(task)


def run_suite(
    tasks,
    contenders,
    *,
    seeds=(0, 1, 2),
    sizes=None,
    max_test=2000,
    n_jobs=1,
    progress=None,
):
    """Fit every contender on every task, size and seed.

    Parameters
    ----------
    tasks : list of TransferTask
    contenders : list of Contender
    seeds : sequence of int
    sizes : callable or None
        ``sizes(task)`` -> the sizes to run; None: ``task.sizes``.
    max_test : int or None
        Largest test set per draw.
    n_jobs : int
        joblib workers; each fit runs on one torch / BLAS thread.
    progress : callable or None
        Called with a line of text as each task completes and after every
        tenth of the fits.

    Returns
    -------
    result : SuiteResult
    """
    jobs = []
    for task in tasks:
        for size in _sizes(task, sizes):
            for seed in seeds:
                for contender in contenders:
                    estimator = contender.make(task, seed)
                    if estimator is None:
                        continue
                    job = {
                        "task": task.name,
                        "size": int(size),
                        "seed": int(seed),
                        "contender": contender.name,
                    }
                    jobs.append((job, task, estimator))
    # The largest draws first, so that no long fit starts last.
    jobs.sort(key=lambda item: -item[0]["size"])
    remaining = {task.name: 0 for task in tasks}
    for job, _, _ in jobs:
        remaining[job["task"]] += 1
    start = time.perf_counter()
    records = []
    outcomes = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
        delayed(_run_job)(job, task, estimator, max_test)
        for job, task, estimator in jobs
    )
    for record in outcomes:
        records.append(record)
        remaining[record["task"]] -= 1
        if progress is None:
            continue
        done = len(records)
        elapsed = time.perf_counter() - start
        if remaining[record["task"]] == 0:
            progress(
                f"  {record['task']} done ({done}/{len(jobs)} fits, {elapsed:.0f} s)"
            )
        elif done % max(1, len(jobs) // 10) == 0:
            progress(f"  {done}/{len(jobs)} fits, {elapsed:.0f} s")
    order = {contender.name: index for index, contender in enumerate(contenders)}
    records.sort(key=lambda r: (r["task"], r["size"], order[r["contender"]], r["seed"]))
    return SuiteResult(
        records=records,
        tasks={
            task.name: {
                "kind": task.kind,
                "description": task.description,
                "same_label_space": task.same_label_space,
                "tabular": task.tabular,
                "sizes": [int(size) for size in _sizes(task, sizes)],
            }
            for task in tasks
        },
        contenders={
            contender.name: {"role": contender.role, "is_default": contender.is_default}
            for contender in contenders
        },
        meta={
            "seeds": [int(seed) for seed in seeds],
            "max_test": max_test,
            "n_jobs": n_jobs,
            "seconds": time.perf_counter() - start,
        },
    )


# --- summary ---------------------------------------------------------------


def _paired(a, b):
    """Mean and standard error of a - b over the seeds both have."""
    seeds = sorted(set(a) & set(b))
    differences = np.array([a[seed] - b[seed] for seed in seeds])
    differences = differences[~np.isnan(differences)]
    if differences.shape[0] == 0:
        return np.nan, np.nan
    if differences.shape[0] == 1:
        return differences[0], np.nan
    return differences.mean(), differences.std(ddof=1) / np.sqrt(differences.shape[0])


def _mean(by_seed):
    values = np.array(list(by_seed.values()), dtype=float)
    return np.nan if np.isnan(values).any() else values.mean()


def _best(scores, names):
    """The name with the highest mean score (complete over seeds), or None."""
    means = {name: _mean(scores[name]) for name in names if name in scores}
    means = {name: mean for name, mean in means.items() if not np.isnan(mean)}
    return max(means, key=means.get) if means else None


def _fit_seconds(result, task, size, names):
    """Mean fit seconds of the contenders ``names`` on one task and size."""
    seconds = [
        record["fit_seconds"]
        for record in result.records
        if record["task"] == task
        and record["size"] == size
        and record["contender"] in names
        and record["fit_seconds"] is not None
    ]
    return np.mean(seconds) if seconds else np.nan


def summarize(result, auto="Auto"):
    """One row per task and size: floors, best strategy, Auto and regrets.

    A target is missed (``flags``) when Auto's mean is below the better of
    the best baseline and the untouched source by more than one standard
    error of their paired difference over the seeds, or when a contender
    with ``is_default`` is below the untouched source by that margin (where
    label spaces match), or when either failed on a seed. Also: the mean fit
    seconds of Auto and of the ``is_default`` contenders.

    Returns
    -------
    rows : list of dict
    """
    roles = {name: info["role"] for name, info in result.contenders.items()}
    defaults = [name for name, info in result.contenders.items() if info["is_default"]]
    rows = []
    for task, info in result.tasks.items():
        for size in info["sizes"]:
            scores = result.scores(task, size)
            baseline = _best(scores, [n for n in scores if roles[n] == BASELINE])
            source = _best(scores, [n for n in scores if roles[n] == SOURCE])
            best = _best(scores, [n for n in scores if n != auto])
            row = {
                "task": task,
                "size": size,
                "baseline": baseline,
                "source": source,
                "best": best,
                "auto": auto if auto in scores else None,
                "flags": [],
            }
            for key in ("baseline", "source", "best", "auto"):
                name = row[key]
                row[f"{key}_score"] = np.nan if name is None else _mean(scores[name])
            row["auto_seconds"], row["default_seconds"] = (
                _fit_seconds(result, task, size, names) for names in ([auto], defaults)
            )
            floor = _best(scores, [n for n in (baseline, source) if n is not None])
            row["regret_best"] = row["auto_score"] - row["best_score"]
            row["regret_baseline"] = row["auto_score"] - row["baseline_score"]
            if row["auto"] is not None and floor is not None:
                difference, error = _paired(scores[auto], scores[floor])
                if difference < -(0 if np.isnan(error) else error):
                    row["flags"].append(f"{auto} below {floor} ({difference:+.3f})")
            for name in [auto, *defaults]:
                failed = sum(np.isnan(v) for v in scores.get(name, {}).values())
                if failed:
                    row["flags"].append(f"{name} failed on {failed} seed(s)")
            for name in defaults:
                if source is None or name not in scores:
                    continue
                difference, error = _paired(scores[name], scores[source])
                if difference < -(0 if np.isnan(error) else error):
                    row["flags"].append(f"{name} below {source} ({difference:+.3f})")
            rows.append(row)
    return rows


# --- printing --------------------------------------------------------------

_ROLE_TAGS = {"transfer": "T", "baseline": "B", "source": "S"}


def _cell(values):
    values = np.array(values, dtype=float)
    if np.isnan(values).all():
        return "failed"
    text = f"{np.nanmean(values):.3f} ± {np.nanstd(values):.3f}"
    failed = int(np.isnan(values).sum())
    return text + (f" ({failed} failed)" if failed else "")


def format_task_table(result, task):
    """Rows = contenders, columns = sizes: mean ± std over seeds, fit seconds."""
    info = result.tasks[task]
    metric = "accuracy" if info["kind"] == "classification" else "R²"
    unit = "per class" if info["kind"] == "classification" else "samples"
    sizes = info["sizes"]
    by_size = {size: result.scores(task, size) for size in sizes}
    seconds = {}
    for record in result.records:
        if record["task"] == task and record["fit_seconds"] is not None:
            seconds.setdefault((record["contender"], record["size"]), []).append(
                record["fit_seconds"]
            )
    names = [n for n in result.contenders if any(n in by_size[s] for s in sizes)]
    width = max(len(name) for name in names) + 4
    cell = 22
    lines = [
        f"{task}: {info['description']}",
        f"test {metric}, mean ± std over seeds; [T] transfer, [B] non-transfer "
        "baseline, [S] untouched source; * best mean",
        f"{'':<{width}}"
        + "".join(f"{f'{size} {unit}':>{cell}}" for size in sizes)
        + "   fit seconds (mean per size)",
    ]
    best = {size: _best(by_size[size], list(by_size[size])) for size in sizes}
    for name in names:
        tag = _ROLE_TAGS[result.contenders[name]["role"]]
        cells = []
        for size in sizes:
            if name not in by_size[size]:
                cells.append(f"{'n/a':>{cell}}")
                continue
            text = _cell(list(by_size[size][name].values()))
            cells.append(f"{text + ('*' if best[size] == name else ' '):>{cell}}")
        times = " / ".join(
            f"{np.mean(seconds[(name, size)]):.1f}" if (name, size) in seconds else "-"
            for size in sizes
        )
        lines.append(f"[{tag}] {name:<{width - 4}}" + "".join(cells) + f"   {times}")
    return "\n".join(lines)


def format_summary(rows, auto="Auto"):
    """The summary table: one line per task and size, then the mean regrets."""

    def named(row, key):
        if row[key] is None:
            return "-"
        return f"{row[f'{key}_score']:.3f} {row[key]}"

    def number(value):
        return "-" if np.isnan(value) else f"{value:+.3f}"

    columns = (
        ("task", 20),
        ("size", 5),
        ("best baseline", 34),
        ("untouched", 9),
        ("best strategy", 34),
        (auto, max(7, len(auto))),
        (f"{auto}-best", max(9, len(auto) + 5)),
        (f"{auto}-base", max(9, len(auto) + 5)),
        ("fit s: auto / defaults", 22),
    )
    lines = [" ".join(f"{title:<{width}}" for title, width in columns) + " flags"]
    for row in rows:
        values = (
            row["task"],
            str(row["size"]),
            named(row, "baseline"),
            "-" if row["source"] is None else f"{row['source_score']:.3f}",
            named(row, "best"),
            "-" if row["auto"] is None else f"{row['auto_score']:.3f}",
            number(row["regret_best"]),
            number(row["regret_baseline"]),
            " / ".join(
                "-" if np.isnan(seconds) else f"{seconds:.1f}"
                for seconds in (row["auto_seconds"], row["default_seconds"])
            ),
        )
        cells = zip(values, columns, strict=True)
        line = " ".join(f"{value:<{width}}" for value, (_, width) in cells)
        flags = "; ".join(row["flags"])
        lines.append(line + (f" MISSED: {flags}" if flags else ""))
    regrets = np.array([row["regret_best"] for row in rows], dtype=float)
    if regrets.size and not np.isnan(regrets).all():
        lines.append(
            f"mean {auto} - best strategy: {np.nanmean(regrets):+.4f} "
            f"(target >= -0.01); mean {auto} - best baseline: "
            f"{np.nanmean([row['regret_baseline'] for row in rows]):+.4f}"
        )
    else:
        lines.append(f"no contender named {auto!r}: its columns are empty")
    missed = sum(bool(row["flags"]) for row in rows)
    lines.append(f"rows with a missed target: {missed} of {len(rows)}")
    return "\n".join(lines)


def machine_description():
    """One line: versions, CPUs and the load average now."""
    import platform

    import sklearn

    import sktransfer

    return (
        f"sktransfer {sktransfer.__version__}, torch {torch.__version__}, "
        f"scikit-learn {sklearn.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average "
        + " ".join(f"{load:.2f}" for load in os.getloadavg())
    )

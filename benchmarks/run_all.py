"""Run every benchmark in this folder, one after the other.

Run it from the repository root, with sktransfer installed (``pip install -e
".[examples]"`` for the MNIST-1D task), on an otherwise idle machine::

    python benchmarks/run_all.py            # about 10 minutes on 2 CPU cores
    python benchmarks/run_all.py --full     # the full settings, about 30 minutes

Each script prints sktransfer and its reference side by side, with the
ratio; this runner only starts them in turn (each in a fresh interpreter, so
that one's memory or thread settings cannot affect the next), passes their
output through, and exits non-zero if any of them failed. Without ``--full``
the slow ones run with lighter settings: fewer timing repeats for the
knowledge and grid-search benchmarks, and the accuracy suite with two seeds
and one size per task (``--quick``).
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent

# (script, arguments for the default run, arguments for --full)
BENCHMARKS = [
    # Fewer than 15 runs leave a few per cent of noise in bench_fit's minima.
    ("bench_fit.py", ["--threads", "1"], ["--threads", "1"]),
    ("bench_knowledge.py", ["--repeats", "3"], []),
    ("bench_transform.py", ["--threads", "1"], ["--threads", "1"]),
    ("bench_memory.py", [], []),
    ("bench_grid_search.py", ["--repeats", "2"], []),
    ("bench_accuracy.py", ["--quick"], []),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full", action="store_true", help="every benchmark with its full settings"
    )
    args = parser.parse_args()
    failed = []
    for script, quick_arguments, full_arguments in BENCHMARKS:
        arguments = full_arguments if args.full else quick_arguments
        command = [sys.executable, str(HERE / script), *arguments]
        print(f"\n{'=' * 79}\n$ python benchmarks/{script} {' '.join(arguments)}")
        print("=" * 79, flush=True)
        start = time.perf_counter()
        completed = subprocess.run(command, check=False)
        print(f"[{script}: {time.perf_counter() - start:.0f} s]", flush=True)
        if completed.returncode != 0:
            failed.append(script)
    if failed:
        print(f"\nFAILED: {', '.join(failed)}")
        sys.exit(1)
    print("\nall benchmarks ran")


if __name__ == "__main__":
    main()

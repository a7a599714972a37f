"""Peak memory of transform and predict on 10⁴, 10⁵ and 10⁶ rows.

Run it from the repository root, with sktransfer installed::

    python benchmarks/bench_memory.py

What is measured
----------------
The claim: ``PretrainedFeatureTransformer.transform`` and
``FineTunedClassifier.predict`` stream the rows through the network in
batches, so that their memory is the input X (the caller's) plus the output
array plus O(batch_size), never a copy of all of X or all activations.

Each (method, number of rows) runs in a fresh subprocess: it builds a float32
X of 64 features, fits the estimator on the first 2,000 rows, warms the
method up on a few batches, and then measures one call on all rows with

* ``tracemalloc``: every numpy buffer allocated during the call (numpy reports
  its allocations to it), exact and deterministic, but blind to memory that
  torch allocates for activations;
* the resident-set high-water mark, which sees everything (torch included)
  with page granularity. On Linux it is reset just before the call
  (``echo 5 > /proc/self/clear_refs``), so "RSS peak +" is the peak during the
  call minus the RSS just before it; elsewhere the lifetime peak from
  ``resource.getrusage`` is used, and the output says so.

Both are printed next to the sizes of the input and of the output array, and
"- output" subtracts the output: that remainder should be about the same at
every size (O(batch)), not grow with the number of rows.

The network is an MLP 64→256→128→10; the transformer reads the 128-wide
penultimate layer (float32 output), the classifier predicts one of 10 labels
(int64 output).
"""

import argparse
import json
import subprocess
import sys

import numpy as np
import torch
from _memory import measure_peak_memory
from torch import nn

from sktransfer import FineTunedClassifier, PretrainedFeatureTransformer

MIB = 2**20
N_FEATURES = 64


def make_mlp():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(N_FEATURES, 256),
        nn.ReLU(),
        nn.Linear(256, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def fitted_estimator(method, X, batch_size):
    if method == "transform":
        estimator = PretrainedFeatureTransformer(make_mlp(), batch_size=batch_size)
        return estimator.fit(X[:2000])
    y = np.arange(2000) % 10
    estimator = FineTunedClassifier(
        make_mlp(), max_epochs=1, batch_size=batch_size, random_state=0
    )
    return estimator.fit(X[:2000], y)


def child(method, n_rows, batch_size):
    """Measure one call on ``n_rows`` in this (fresh) process; print JSON."""
    torch.set_num_threads(1)
    X = np.random.default_rng(0).random((n_rows, N_FEATURES), dtype=np.float32)
    estimator = fitted_estimator(method, X, batch_size)
    call = getattr(estimator, method)
    call(X[: 4 * batch_size])  # warm-up: allocator caches, lazy imports
    result, figures = measure_peak_memory(lambda: call(X))
    figures.pop("rss_before_bytes")
    print(
        json.dumps({"input_bytes": X.nbytes, "output_bytes": result.nbytes, **figures})
    )


def run(methods, sizes, batch_size):
    print(
        f"MLP {N_FEATURES}→256→128→10, batch_size={batch_size}, float32 X, one "
        "fresh process per row; MiB.\n'numpy peak': numpy memory allocated "
        "during the call (tracemalloc). 'RSS peak +': peak resident memory "
        "during the call\nminus resident memory just before it (torch "
        "included). '- output': the same minus the output array."
    )
    how = None
    for method in methods:
        name = {
            "transform": "PretrainedFeatureTransformer.transform",
            "predict": "FineTunedClassifier.predict",
        }[method]
        print(f"\n{name}")
        print(
            f"{'rows':>10} {'input X':>8} {'output':>7} {'numpy peak':>11} "
            f"{'- output':>9} {'RSS peak +':>11} {'- output':>9}"
        )
        for n_rows in sizes:
            completed = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    method,
                    str(n_rows),
                    "--batch-size",
                    str(batch_size),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(completed.stdout.strip().splitlines()[-1])
            how = result["rss_method"]
            out = result["output_bytes"]
            traced = result["traced_peak_bytes"]
            rss = result["rss_peak_increase_bytes"]
            print(
                f"{n_rows:>10,} {result['input_bytes'] / MIB:>8.1f} "
                f"{out / MIB:>7.1f} {traced / MIB:>11.2f} "
                f"{(traced - out) / MIB:>9.2f} {rss / MIB:>11.1f} "
                f"{(rss - out) / MIB:>9.1f}"
            )
    print(f"\nRSS peak measured with: {how}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000]
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=["transform", "predict"],
        default=["transform", "predict"],
    )
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "ROWS"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.batch_size)
    else:
        run(args.methods, args.sizes, args.batch_size)


if __name__ == "__main__":
    main()

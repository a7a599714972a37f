"""Transform speed and memory of PretrainedFeatureTransformer, side by side.

Run it from the repository root, with sktransfer installed::

    python benchmarks/bench_transform.py

What is compared
----------------
*sktransfer* is ``PretrainedFeatureTransformer(source, feature_layer=...,
batch_size=B).transform(X)``. *plain* is what a careful user would write by
hand for the same features: a loop over batches of ``B`` rows under
``torch.inference_mode()`` that calls the same layer directly and writes each
batch into a preallocated float32 array. Both read the same C-contiguous
float32 ``X``, run the same module on the same thread count, and their outputs
are checked to be equal, so the only difference is what sktransfer adds: input
validation (including sklearn's finiteness check of all of X), reading one
layer through a forward hook, and per-batch bookkeeping.

Two networks: an MLP 784→512→256→10 on tabular rows (features: the 256-wide
``body``), and a small convolutional net on ``(n, 3, 32, 32)`` images
(features: the last feature maps, average-pooled to 128 values).

Timing
------
These 2-core machines are noisy (one timing varies by ±30% from run to run),
so the two contenders are run alternately, A B A B ... (``--repeats`` each,
after one warm-up each), and the *minimum* time of each is compared. The ratio
of minima is stable to about 1.5%. Throughput is rows per second at the
minimum time; the ratio is sktransfer / plain throughput (1.0 = no overhead;
the project's target is >= 0.95).

Memory
------
The claim to check is that ``transform`` needs memory for its output array and
for one batch, never for a copy of all of X, so that its peak grows with the
number of rows only by the output's size. Each size (10,000 and 100,000 rows)
is measured in a fresh subprocess, after a warm-up transform, so that
allocator caches and earlier peaks of one size cannot hide in the other. Two
measures, because neither alone is complete:

* ``tracemalloc`` sees every numpy buffer allocated during ``transform``
  (numpy reports its allocations to it), exactly and deterministically, but it
  does not see memory that torch allocates for activations.
* The resident-set high-water mark sees everything, torch included, but with
  page granularity and allocator caching. On Linux it is reset just before
  ``transform`` (``echo 5 > /proc/self/clear_refs``), so "peak RSS increase" is
  the peak during ``transform`` minus the RSS just before it. Where that reset
  is not possible, ``resource.getrusage`` gives the lifetime peak instead; the
  output says which method was used.

For both, the script prints the increase beyond the output array itself: it
should be small and about the same for 10,000 and 100,000 rows.
"""

import argparse
import cProfile
import gc
import json
import os
import platform
import pstats
import subprocess
import sys
import time
from collections import OrderedDict
from functools import partial

import numpy as np
import sklearn
import torch
from _memory import measure_peak_memory
from torch import nn

import sktransfer
from sktransfer import PretrainedFeatureTransformer

MIB = 2**20


def make_mlp():
    """MLP 784→512→256→10; features: the 256-wide output of ``body``."""
    torch.manual_seed(0)
    body = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU())
    return nn.Sequential(OrderedDict(body=body, head=nn.Linear(256, 10))).eval()


def make_convnet():
    """Three conv blocks on 3×32×32 images; features: 128 pooled channels."""
    torch.manual_seed(0)
    features = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1),
        nn.ReLU(),
    )
    return nn.Sequential(
        OrderedDict(
            features=features,
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            head=nn.Linear(128, 10),
        )
    ).eval()


# name, network factory, sample shape, rows timed, feature_layer, pooling,
# and the same features computed by hand from the network.
CASES = [
    (
        "MLP 784-512-256-10",
        make_mlp,
        (784,),
        20_000,
        "body",
        "flatten",
        lambda net, x: net.body(x),
    ),
    (
        "ConvNet (n,3,32,32)",
        make_convnet,
        (3, 32, 32),
        2_000,
        "features",
        "avg",
        lambda net, x: net.features(x).mean(dim=(2, 3)),
    ),
]


def plain_transform(network, layer_fn, X, batch_size, n_features_out):
    """The hand-written baseline: batched inference into a preallocated array."""
    out = np.empty((X.shape[0], n_features_out), dtype=np.float32)
    out_view = torch.from_numpy(out)
    X_tensor = torch.from_numpy(X)
    with torch.inference_mode():
        for start in range(0, X.shape[0], batch_size):
            stop = start + batch_size
            out_view[start:stop] = layer_fn(network, X_tensor[start:stop])
    return out


def alternate(contenders, repeats):
    """Run the contenders A B A B ... and return each one's minimum time."""
    for run in contenders.values():  # warm-up: thread pools, allocator, caches
        run()
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            gc.collect()
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def bench_throughput(batch_sizes, repeats):
    print(
        f"{'network':<20} {'batch':>5} {'rows':>6} {'sktransfer rows/s':>18} "
        f"{'plain rows/s':>13} {'ratio':>6}"
    )
    rng = np.random.default_rng(0)
    for name, factory, shape, n_rows, layer, pooling, layer_fn in CASES:
        network = factory()
        X = rng.random((n_rows, *shape), dtype=np.float32)
        for batch_size in batch_sizes:
            est = PretrainedFeatureTransformer(
                network, feature_layer=layer, pooling=pooling, batch_size=batch_size
            ).fit(X[:batch_size])
            # Time the estimator's own private copy in both contenders, so that
            # the weights (and their memory placement) are identical.
            module = est.module_
            n_out = est.get_feature_names_out().shape[0]
            ours = est.transform(X)
            theirs = plain_transform(module, layer_fn, X, batch_size, n_out)
            np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
            best = alternate(
                {
                    "sktransfer": partial(est.transform, X),
                    "plain": partial(
                        plain_transform, module, layer_fn, X, batch_size, n_out
                    ),
                },
                repeats,
            )
            ours_rate = n_rows / best["sktransfer"]
            plain_rate = n_rows / best["plain"]
            print(
                f"{name:<20} {batch_size:>5} {n_rows:>6} {ours_rate:>18,.0f} "
                f"{plain_rate:>13,.0f} {ours_rate / plain_rate:>6.3f}"
            )


def memory_child(n_rows, batch_size):
    """Measure one transform of ``n_rows`` in this (fresh) process; print JSON."""
    rng = np.random.default_rng(0)
    X = rng.random((n_rows, 784), dtype=np.float32)
    est = PretrainedFeatureTransformer(
        make_mlp(), feature_layer="body", batch_size=batch_size
    ).fit(X[:batch_size])
    est.transform(X[: 4 * batch_size])  # warm-up
    features, figures = measure_peak_memory(lambda: est.transform(X))
    print(
        json.dumps(
            {
                "n_rows": n_rows,
                "input_bytes": X.nbytes,
                "output_bytes": features.nbytes,
                **figures,
            }
        )
    )


def bench_memory(sizes, batch_size):
    print(
        f"MLP, batch_size={batch_size}, float32 input, each size in a fresh "
        "process; MiB.\n'numpy peak': numpy memory allocated during transform "
        "(tracemalloc). 'RSS peak +': peak resident memory during transform "
        "minus\nresident memory just before it (torch included). '- output': "
        "the same minus the output array."
    )
    print(
        f"{'rows':>8} {'input X':>8} {'output':>7} {'RSS before':>11} "
        f"{'numpy peak':>11} {'- output':>9} {'RSS peak +':>11} {'- output':>9}"
    )
    method = None
    for n_rows in sizes:
        completed = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-child",
                str(n_rows),
                "--memory-batch-size",
                str(batch_size),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        method = result["rss_method"]
        out = result["output_bytes"]
        traced = result["traced_peak_bytes"]
        rss = result["rss_peak_increase_bytes"]
        before = result["rss_before_bytes"]
        before = f"{before / MIB:>11.1f}" if before is not None else f"{'?':>11}"
        print(
            f"{n_rows:>8,} {result['input_bytes'] / MIB:>8.1f} {out / MIB:>7.1f} "
            f"{before} {traced / MIB:>11.1f} {(traced - out) / MIB:>9.2f} "
            f"{rss / MIB:>11.1f} {(rss - out) / MIB:>9.2f}"
        )
    print(f"RSS peak measured with: {method}")


def profile_transform(batch_size):
    """cProfile of sktransfer's MLP transform, heaviest functions first."""
    X = np.random.default_rng(0).random((20_000, 784), dtype=np.float32)
    est = PretrainedFeatureTransformer(
        make_mlp(), feature_layer="body", batch_size=batch_size
    ).fit(X[:batch_size])
    est.transform(X)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(5):
        est.transform(X)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


def _load_average():
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except (AttributeError, OSError):
        return "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=7, help="timed runs per contender (>= 5)"
    )
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[64, 256], metavar="B"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also print a cProfile of transform"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads for both contenders (default: torch's own choice); "
        "1 is steadier on a machine that other programs keep busy",
    )
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--memory-batch-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.memory_child is not None:
        memory_child(args.memory_child, args.memory_batch_size)
        return

    print(
        f"sktransfer {sktransfer.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {_load_average()}"
    )
    print(
        f"\n== transform throughput (min of {args.repeats} alternating runs each; "
        "ratio = sktransfer / plain, target >= 0.95) =="
    )
    bench_throughput(args.batch_sizes, args.repeats)
    print("\n== peak memory of transform ==")
    bench_memory([10_000, 100_000], batch_size=256)
    print(
        f"\nload average at the end: {_load_average()} "
        "(other busy programs on this machine distort the timings)"
    )
    if args.profile:
        print("\n== cProfile of sktransfer transform (MLP, batch_size=256) ==")
        profile_transform(256)


if __name__ == "__main__":
    main()

"""AutoTransferClassifier's fit time, beside one fine-tune and a GridSearchCV.

Run it from the repository root, with sktransfer installed (``pip install -e
".[examples]"``, for the MNIST-1D task), on an otherwise idle machine::

    python benchmarks/bench_auto.py [--repeats 3] [--n-per-class 10]

The task: MNIST-1D under a domain shift, ``--n-per-class`` labelled signals
per digit, the source an MLP pretrained on the default generator (as in the
flagship example). Three contenders, each timed on the same data:

* ``one fine-tune``: ``FineTunedClassifier(source)`` with its defaults, one
  fit: the unit of cost;
* ``AutoTransferClassifier``: the whole portfolio (untouched source, linear
  models on the inputs and on the source features, fine-tuning and its WiSE-FT
  interpolation, L2-SP at three λ, from scratch), cross-validated on the same
  repeated stratified splits, then the refit;
* ``GridSearchCV over the portfolio``: the same candidates as a
  ``GridSearchCV`` over a pipeline's final step, on the same splits, with
  ``refit=True``: what a user would write by hand. It runs the frozen source
  once per candidate that reads it and split, and trains WiSE-FT separately.

Both searches get ``n_jobs=1`` (one process: the comparison is about work,
not parallelism). The contenders alternate (A B C A B C …) and the minimum
time of each is compared; the script also prints how many rows went through
the source network without gradients (frozen passes and predictions), in
multiples of the training set, and what each search chose.
"""

import argparse
import os
import platform
import time
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, RepeatedStratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from torch import nn

from sktransfer import (
    AutoTransferClassifier,
    FineTunedClassifier,
    KnowledgeRegularizedClassifier,
    PretrainedFeatureTransformer,
    SourceModelClassifier,
)
from sktransfer._portfolio import flatten_samples, linear_model
from sktransfer.datasets import load_mnist1d_transfer, pretrain_source_network
from sktransfer.model_selection import NegativeTransferWarning


class CountingLayer(nn.Module):
    """Counts the rows that go through the network without gradients."""

    def __init__(self):
        super().__init__()
        self.rows = 0

    def forward(self, inputs):
        if torch.is_inference_mode_enabled():
            self.rows += inputs.shape[0]
        return inputs


def grid_search(source, cv, seed):
    """The portfolio of AutoTransferClassifier as a hand-written GridSearchCV."""
    network = {"random_state": seed}
    candidates = [
        SourceModelClassifier(source),
        make_pipeline(
            FunctionTransformer(flatten_samples), StandardScaler(), linear_model(True)
        ),
        make_pipeline(
            PretrainedFeatureTransformer(source), StandardScaler(), linear_model(True)
        ),
        FineTunedClassifier(source, interpolation=0.5, **network),
        *(
            KnowledgeRegularizedClassifier(source, knowledge="l2sp", lam=lam, **network)
            for lam in (0.01, 0.1, 1.0)
        ),
        FineTunedClassifier(source, **network),
        FineTunedClassifier(source, reinitialize=True, **network),
    ]
    return GridSearchCV(
        Pipeline([("model", candidates[0])]),
        {"model": candidates},
        cv=cv,
        refit=True,
        n_jobs=1,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-per-class", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} (1 thread); load average "
        f"{'{:.2f} {:.2f} {:.2f}'.format(*os.getloadavg())}"
    )
    task = load_mnist1d_transfer(
        n_source=4000, n_target_per_class=args.n_per_class, random_state=0
    )
    pretrained = pretrain_source_network(
        task.X_source, task.y_source, hidden_layer_sizes=(256, 128), max_epochs=60
    )
    X, y = task.X_target, task.y_target
    counter = CountingLayer()
    source = nn.Sequential(counter, *pretrained).eval()
    n_splits = min(5, args.n_per_class)
    cv = RepeatedStratifiedKFold(
        n_splits=n_splits, n_repeats=int(np.ceil(10 / n_splits)), random_state=0
    )
    print(f"{task.description}\n{len(y)} labelled target signals; {cv}\n")

    contenders = {
        "one fine-tune": lambda: FineTunedClassifier(source, random_state=0),
        "AutoTransferClassifier": lambda: AutoTransferClassifier(
            source, cv=cv, random_state=0
        ),
        "GridSearchCV over the portfolio": lambda: grid_search(source, cv, 0),
    }
    times = {name: [] for name in contenders}
    fitted, passes = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", NegativeTransferWarning)
        for _ in range(args.repeats):
            for name, make in contenders.items():
                estimator = make()
                counter.rows = 0
                start = time.perf_counter()
                estimator.fit(X, y)
                times[name].append(time.perf_counter() - start)
                fitted[name] = estimator
                passes[name] = counter.rows / len(y)

    unit = min(times["one fine-tune"])
    print(
        f"{'contender':<34}{'min time (s)':>14}{'× one fine-tune':>17}"
        f"{'source rows / n':>17}"
    )
    for name, values in times.items():
        print(
            f"{name:<34}{min(values):>14.2f}{min(values) / unit:>17.1f}"
            f"{passes[name]:>17.1f}"
        )
    auto, search = (
        fitted["AutoTransferClassifier"],
        fitted["GridSearchCV over the portfolio"],
    )
    ratio = min(times["AutoTransferClassifier"]) / min(
        times["GridSearchCV over the portfolio"]
    )
    print(
        f"\nAutoTransferClassifier / GridSearchCV: {ratio:.2f}; Auto chose "
        f"{auto.best_strategy_} ({auto.best_score_:.3f}), the grid search's best "
        f"mean score is {search.best_score_:.3f} (it takes the best mean, "
        "Auto the safest candidate within one standard error)."
    )
    print(
        "source rows / n: rows run through the source network without "
        "gradients (frozen passes and predictions), in multiples of the "
        "training set."
    )


if __name__ == "__main__":
    main()

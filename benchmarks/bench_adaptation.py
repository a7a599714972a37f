"""Domain adaptation with unlabelled target rows: sktransfer beside skada.

Run it from the repository root, with sktransfer installed
(``pip install -e ".[examples]"``; the MNIST-1D task needs ``pip install
mnist1d``). The reference library is optional; install it without letting
pip touch torch::

    pip install --no-deps skada pot                # skada 0.6 and POT, its one need
    python benchmarks/bench_adaptation.py          # k = 0/3/10, 5 seeds (below)
    python benchmarks/bench_adaptation.py --quick  # 1 seed, 3 epochs: under 2 min
    python benchmarks/bench_adaptation.py --tasks "mnist1d*" --seeds 3
    python benchmarks/bench_adaptation.py --contenders "*AutoTransfer*" \
        "untouched source" "fine-tune*"
    python benchmarks/bench_adaptation.py --report benchmarks/results/FILE.json

The evidence for the issue "Cross-domain transfer with unlabelled target
data": does fitting ``DomainAdaptationClassifier`` / ``Regressor`` with
``unlabeled_data=UnlabeledData(X_target)`` beat what the same labelled rows
give without the unlabelled ones, and how does it compare, in accuracy and
fit time, with skada's deep methods on the same network, starting weights,
data, epochs, learning rate and batch size?

Tasks, each with a source network pretrained on its source domain (cached
under ``benchmarks/results/cache``, shared with ``bench_accuracy.py``):

- ``mnist1d-shift``: the accuracy suite's 1-D CNN on 4,000 MNIST-1D signals;
  target 3,000 signals from a generator under shift 1.0;
- ``digits-images-shift``: the suite's CNN on half of the 8x8 digits; target
  the other half, rotated (±10°), moved (±½ px) and noisy;
- ``friedman-covariate-shift``: an MLP 10-64-64-1 on 5,000 samples of
  Friedman #1 with inputs drawn from Beta(2, 3); target the same function
  on inputs from Beta(3, 2): covariate shift only.

Protocol. For each task and seed, the seed draws the labelled source rows
(1,000; 600 for digits) and, disjoint from them, source validation rows, and
splits the target rows into a test set (never seen by any fit) and an
adaptation pool. The pool's inputs are the unlabelled data; k labelled rows
per class (regression: k rows) drawn from the pool join the labelled source
rows (k = 0: unsupervised adaptation; k = 3, 10: semi-supervised; regression
30, 100). Scores: accuracy, R² for regression, on the test rows.

Contenders, all from the same pretrained weights and ``random_state=seed``:

- [S] the untouched source (``SourceModel*``);
- [F] supervised: ``FineTuned*`` on the same labelled rows, and for k > 0 on
  the k target rows alone, with the package's defaults (``max_epochs="auto"``);
- [A] sktransfer: ``DomainAdaptation*`` with each method at ``lam=1``, and with
  ``lam`` in {0.1, 1, 10} chosen without target labels by importance-weighted
  validation (IWV: accuracy / R² on the source validation rows, weighted by
  ``sktransfer.adaptation.importance_weights`` toward the pool);
- [D] sktransfer's safe default: ``AutoTransfer*`` given the same labelled
  rows and ``unlabeled_data``, its portfolio cut to the untouched source,
  fine-tuning and its default adaptation candidates (entropy minimisation /
  CORAL at λ 0.1 and 1, trained as many steps as the fine-tune), chosen by
  its default cross-validation: for k > 0 the k target rows are X and the
  source rows ``source_data`` (they train in every split, only the target
  rows are scored, and the best mean wins: no preference for the untouched
  source within noise); at k = 0, importance-weighted over the source rows
  (the source's own training rows: its in-sample score does not rank it).
  No hindsight, unlike "the best [A] row";
- [K] skada 0.6 (``skada.deep``): DeepCoral, DAN, DANN and MCC at ``reg=1``,
  on the same network (features: the layer under the head, as sktransfer's
  body), source rows with ``sample_domain`` 1 and the pool with -2
  (``skada.utils.source_target_merge``). skada's deep methods train the
  classification loss on the source domains only: for k > 0 the labelled
  target rows are passed as a second labelled domain (``sample_domain`` 2),
  so both libraries see the same labelled and unlabelled rows. skada's
  default DANN discriminator ends in a softmax over one output, whose value
  is always 1: it learns nothing; it is run as shipped and with a sigmoid
  discriminator of sktransfer's shape (100 hidden units).

[A] and [K] train ``--epochs`` passes (one pass: as many steps as the larger
of the labelled and unlabelled sets has batches of 32 rows, each step one
labelled and one unlabelled batch, in both libraries), Adam, lr 1e-3. Every
fit runs on one torch / BLAS thread, one after the other, seeded by its seed
and cell: a task, k or contender run alone gives the same records as in the
full run. 5 seeds by default: over 3, the verdict of cells within a few
thousandths of the bar changed sides between runs of 3 and 5 seeds (3 seeds,
every task, took 2,515 s on an idle 2-core machine, 2026-12-06).

Printed: one table per task and k (contenders × test score mean ± std over
the seeds, mean fit seconds; a "λ by IWV" row's seconds are its three fits
and their scoring, its note the λ chosen per seed), then the summary per
task and k: sktransfer's best adaptation beside skada's best (paired
difference ± its standard error over the seeds) and their mean fit seconds
(sktransfer's λ=1 rows against all of skada's), each method against its
skada counterpart at λ = reg = 1, and the best adaptation against the best
supervised contender ([S] or [F]) of the same k, naming every adaptation row
below that by more than one standard error, and the same for [D]; last, per
task, the mean over k of each k's best sktransfer and best skada row. Every fit
(score, seconds, warnings, error) goes to ``benchmarks/results/adaptation-<date>.json``.
"""

import argparse
import copy
import json
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from _harness import _one_thread, _paired, _warm_up, machine_description
from _tasks import TaskUnavailable, _friedman, _mlp, _pretrain, build_task
from bench_accuracy import add_selection_arguments, git_commit, matches, select
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from torch import nn

from sktransfer import (
    AutoTransferClassifier,
    AutoTransferRegressor,
    DomainAdaptationClassifier,
    DomainAdaptationRegressor,
    FineTunedClassifier,
    FineTunedRegressor,
    SourceData,
    SourceModelClassifier,
    SourceModelRegressor,
    UnlabeledData,
)
from sktransfer.adaptation import importance_weights

RESULTS = Path(__file__).parent / "results"
CLASSIFICATION_METHODS = ("coral", "mmd", "dann", "mcc", "entropy")
REGRESSION_METHODS = ("coral", "mmd", "dann")
LAMS = (0.1, 1.0, 10.0)
ROLES = {
    "S": "untouched source",
    "F": "supervised fine-tuning, no unlabelled rows",
    "A": "sktransfer adaptation",
    "D": "sktransfer's safe default, chosen without the test labels",
    "K": "skada",
}
# The [D] row: AutoTransfer* with the unlabelled rows, its portfolio cut to
# the candidates this benchmark is about (the full one adds L2-SP, WiSE-FT,
# features, linear and from-scratch models: several times the fit time).
AUTO_STRATEGIES = ["source", "fine_tune", "adaptation"]
# Head to head: skada's counterpart of each sktransfer method.
MATCHED = {
    "coral": "skada DeepCoral",
    "mmd": "skada DAN",
    "dann": "skada DANN (sigmoid discriminator)",
    "mcc": "skada MCC",
}
SECOND_LABELLED_DOMAIN, TARGET_DOMAIN = 2, -2


@dataclass(eq=False)
class AdaptationTask:
    """A source network, its source domain's rows and the target domain's.

    ``n_labelled_source`` source rows train (drawn per seed), the rest of at
    most as many validate the scorer; ``n_test`` target rows test, the rest
    form the unlabelled pool.
    """

    name: str
    kind: str
    description: str
    X_source: np.ndarray = field(repr=False)
    y_source: np.ndarray = field(repr=False)
    X_target: np.ndarray = field(repr=False)
    y_target: np.ndarray = field(repr=False)
    source: nn.Module = field(repr=False)
    source_classes: np.ndarray | None
    sizes: tuple
    n_labelled_source: int
    n_test: int


# --- tasks -------------------------------------------------------------------


def mnist1d_task(cache_dir):
    """The accuracy suite's MNIST-1D task, with its source-domain signals."""
    suite_task = build_task("mnist1d-shift", cache_dir=cache_dir)
    from sktransfer.datasets import load_mnist1d_transfer

    # The suite's own call: the same signals its source network learned.
    data = load_mnist1d_transfer(
        n_source=4000, n_target_per_class=300, shift=1.0, random_state=0
    )
    assert np.array_equal(data.X_target[:, None, :], suite_task.X)
    return AdaptationTask(
        name="mnist1d-shift",
        kind="classification",
        description=(
            "1-D CNN pretrained on 4,000 MNIST-1D signals; target 3,000 signals "
            "generated under shift 1.0"
        ),
        X_source=data.X_source[:, None, :],
        y_source=data.y_source,
        X_target=suite_task.X,
        y_target=suite_task.y,
        source=suite_task.source,
        source_classes=np.arange(10),
        sizes=(0, 3, 10),
        n_labelled_source=1000,
        n_test=1000,
    )


def digits_task(cache_dir):
    """The accuracy suite's distorted-digits task, with its source half."""
    suite_task = build_task("digits-images-shift", cache_dir=cache_dir)
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    # The suite's split: its source network learned these source images.
    source_images, _, y_source, y_target = train_test_split(
        images, digits.target, test_size=0.5, stratify=digits.target, random_state=0
    )
    assert np.array_equal(y_target, suite_task.y)
    return AdaptationTask(
        name="digits-images-shift",
        kind="classification",
        description=(
            "CNN pretrained on 898 8x8 digits; target the other 899, rotated, "
            "moved and noisy"
        ),
        X_source=source_images[:, None],
        y_source=y_source,
        X_target=suite_task.X,
        y_target=suite_task.y,
        source=suite_task.source,
        source_classes=np.arange(10),
        sizes=(0, 3, 10),
        n_labelled_source=600,
        n_test=400,
    )


def friedman_task(cache_dir):
    """Friedman #1, the same function on inputs that moved (covariate shift)."""
    rng = np.random.default_rng(0)
    X_source = rng.beta(2, 3, size=(5000, 10))
    X_target = rng.beta(3, 2, size=(3000, 10))
    y_source = _friedman(X_source, (10, 20, 10, 5), 0.5)
    y_target = _friedman(X_target, (10, 20, 10, 5), 0.5)
    y_source += rng.normal(scale=1.0, size=y_source.shape)
    y_target += rng.normal(scale=1.0, size=y_target.shape)
    mean, std = y_source.mean(), y_source.std()
    X_source, X_target = X_source.astype(np.float32), X_target.astype(np.float32)
    y_source = ((y_source - mean) / std).astype(np.float32)
    y_target = ((y_target - mean) / std).astype(np.float32)
    recipe = {"max_epochs": 100, "lr": 1e-3, "batch_size": 64, "seed": 0}
    source = _pretrain(
        _mlp([10, 64, 64, 1]),
        X_source,
        y_source,
        name="friedman-covariate-shift",
        recipe={**recipe, "arch": "mlp-10-64-64-1", "inputs": "beta(2,3)"},
        cache_dir=cache_dir,
        regression=True,
    )
    return AdaptationTask(
        name="friedman-covariate-shift",
        kind="regression",
        description=(
            "MLP pretrained on 5,000 samples of Friedman #1, inputs ~ Beta(2, 3); "
            "target inputs ~ Beta(3, 2), same function"
        ),
        X_source=X_source,
        y_source=y_source,
        X_target=X_target,
        y_target=y_target,
        source=source,
        source_classes=None,
        sizes=(0, 30, 100),
        n_labelled_source=1000,
        n_test=1000,
    )


TASKS = {
    "mnist1d-shift": mnist1d_task,
    "digits-images-shift": digits_task,
    "friedman-covariate-shift": friedman_task,
}


# --- draws -------------------------------------------------------------------


@dataclass
class Draw:
    """The rows of one seed: indices into the task's source and target rows."""

    source_train: np.ndarray
    source_validation: np.ndarray
    test: np.ndarray
    pool: np.ndarray
    labelled_target: dict  # k -> indices into the target rows, nested in k


def draw_rows(task, seed):
    rng = np.random.default_rng(seed)
    order = rng.permutation(task.y_source.shape[0])
    n_train = task.n_labelled_source
    source_train, source_validation = order[:n_train], order[n_train : 2 * n_train]
    classification = task.kind == "classification"
    test, pool = train_test_split(
        np.arange(task.y_target.shape[0]),
        train_size=task.n_test,
        stratify=task.y_target if classification else None,
        random_state=seed,
    )
    shuffled = rng.permutation(pool)
    labelled = {}
    for k in task.sizes:
        if classification:
            labels = task.y_target[shuffled]
            chosen = [shuffled[labels == label][:k] for label in np.unique(labels)]
            labelled[k] = np.sort(np.concatenate(chosen))
        else:
            labelled[k] = np.sort(shuffled[:k])
    return Draw(
        np.sort(source_train),
        np.sort(source_validation),
        np.sort(test),
        np.sort(pool),
        labelled,
    )


def _flat(X):
    return X.reshape(X.shape[0], -1)


def _score(kind, y_true, y_pred, sample_weight=None):
    if kind == "classification":
        return float(accuracy_score(y_true, y_pred, sample_weight=sample_weight))
    return float(r2_score(y_true, y_pred, sample_weight=sample_weight))


# --- contenders --------------------------------------------------------------


def _sktransfer_kwargs(task, seed):
    kwargs = {"random_state": seed}
    if task.source_classes is not None:
        kwargs["source_classes"] = task.source_classes
    return kwargs


def _timed_fit(estimator, *args, **kwargs):
    start = time.perf_counter()
    estimator.fit(*args, **kwargs)
    return estimator, time.perf_counter() - start


class _SkadaModule(nn.Module):
    """The task's network as skada calls it: ``forward(X, sample_weight=None)``.

    skada's ``DomainAwareModule`` passes ``sample_weight`` to the network when
    predicting, which ``nn.Sequential`` does not accept. A regressor's single
    output is squeezed, as skada's labels are one-dimensional.
    """

    def __init__(self, network, squeeze):
        super().__init__()
        self.network = network
        self.squeeze = squeeze

    def forward(self, X, sample_weight=None):
        outputs = self.network(X)
        return outputs.squeeze(-1) if self.squeeze else outputs


class _SigmoidDiscriminator(nn.Module):
    """DANN's discriminator with one sigmoid output (sktransfer's shape)."""

    def __init__(self, n_features):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_features, 100), nn.ReLU(), nn.Linear(100, 1), nn.Sigmoid()
        )

    def forward(self, features, sample_weight=None):
        from skada.deep.modules import GradientReversalLayer

        return self.layers(GradientReversalLayer.apply(features, 1.0)).squeeze(1)


def _skada_methods(task):
    """{name: factory(module, layer_name, n_features, criterion) -> net}."""
    from skada.deep import DAN, DANN, MCC, DeepCoral

    methods = {
        "skada DeepCoral": lambda m, layer, n, c: DeepCoral(
            m, layer_name=layer, base_criterion=c
        ),
        "skada DAN": lambda m, layer, n, c: DAN(m, layer_name=layer, base_criterion=c),
        "skada DANN (as shipped)": lambda m, layer, n, c: DANN(
            m, layer_name=layer, num_features=n, base_criterion=c
        ),
        "skada DANN (sigmoid discriminator)": lambda m, layer, n, c: DANN(
            m,
            layer_name=layer,
            domain_classifier=_SigmoidDiscriminator(n),
            base_criterion=c,
        ),
    }
    if task.kind == "classification":
        methods["skada MCC"] = lambda m, layer, n, c: MCC(
            m, layer_name=layer, base_criterion=c
        )
    return methods


def _skada_fit_predict(make, task, seed, data, epochs):
    """Fit one skada net on the draw's rows; its test predictions and seconds."""
    from skada.utils import source_target_merge

    X_labelled, y_labelled, n_source, X_pool, X_test = data
    regression = task.kind == "regression"
    with warnings.catch_warnings():
        # "sample_domain is None or empty, it will be inferred".
        warnings.filterwarnings("ignore", "sample_domain", UserWarning)
        X, y, sample_domain = source_target_merge(X_labelled, X_pool, y_labelled, None)
    # skada's multi-source convention (positive: labelled domains): the k
    # labelled target rows are a second labelled domain.
    sample_domain = sample_domain.astype(np.int64)
    sample_domain[n_source : y_labelled.shape[0]] = SECOND_LABELLED_DOMAIN
    if regression:
        y = y.astype(np.float32)
    network = copy.deepcopy(task.source)
    layer_name = f"network.{len(network) - 2}"
    with torch.no_grad():
        probe = nn.Sequential(*list(network)[:-1])(torch.as_tensor(X_pool[:2]))
    criterion = nn.MSELoss() if regression else nn.CrossEntropyLoss()
    torch.manual_seed(seed)
    net = make(
        _SkadaModule(network, squeeze=regression),
        layer_name,
        probe.flatten(start_dim=1).shape[1],
        criterion,
    )
    net.set_params(
        max_epochs=epochs,
        lr=1e-3,
        batch_size=32,
        optimizer=torch.optim.Adam,
        train_split=None,
        verbose=0,
    )
    _, seconds = _timed_fit(net, {"X": X, "sample_domain": sample_domain}, y)
    test = {"X": X_test, "sample_domain": np.full(X_test.shape[0], TARGET_DOMAIN)}
    if regression:
        return net.predict_proba(test).reshape(-1), seconds
    # The network's outputs are the source's classes, in source_classes order.
    return task.source_classes[net.predict(test)], seconds


# --- running -----------------------------------------------------------------


def _record(task, k, seed, name, role, run):
    """Run ``run() -> (score, seconds, note)`` and record it; errors too."""
    record = {"task": task.name, "k": int(k), "seed": int(seed)}
    record.update(contender=name, role=role, note=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            score, seconds, note = run()
            record.update(score=score, fit_seconds=seconds, note=note, error=None)
        except Exception as exc:  # a failed fit is a result, not a crash
            record.update(
                score=None, fit_seconds=None, error=f"{type(exc).__name__}: {exc}"
            )
    record["warnings"] = sorted(
        {f"{w.category.__name__}: {str(w.message)[:160]}" for w in caught}
    )
    return record


def run_cell(task, draw, k, seed, *, epochs, weights, skada_missing, contenders):
    """Every contender on one task, k and seed: a list of records."""
    classification = task.kind == "classification"
    target_rows = draw.labelled_target[k]
    X_labelled = np.concatenate(
        [task.X_source[draw.source_train], task.X_target[target_rows]]
    )
    y_labelled = np.concatenate(
        [task.y_source[draw.source_train], task.y_target[target_rows]]
    )
    X_pool = task.X_target[draw.pool]
    X_test, y_test = task.X_target[draw.test], task.y_target[draw.test]
    X_validation = task.X_source[draw.source_validation]
    y_validation = task.y_source[draw.source_validation]
    kwargs = _sktransfer_kwargs(task, seed)
    unlabeled = UnlabeledData(X_pool)
    records = []

    def add(name, role, run):
        if matches(name, contenders):
            records.append(_record(task, k, seed, name, role, run))

    def test_score(estimator):
        return _score(task.kind, y_test, estimator.predict(X_test))

    def supervised(X, y):
        fine_tuned = FineTunedClassifier if classification else FineTunedRegressor
        estimator, seconds = _timed_fit(fine_tuned(task.source, **kwargs), X, y)
        return test_score(estimator), seconds, None

    def untouched():
        model = SourceModelClassifier if classification else SourceModelRegressor
        source_kwargs = {key: v for key, v in kwargs.items() if key != "random_state"}
        estimator, seconds = _timed_fit(
            model(task.source, **source_kwargs), X_labelled, y_labelled
        )
        return test_score(estimator), seconds, None

    add("untouched source", "S", untouched)
    add("fine-tune: labelled rows", "F", lambda: supervised(X_labelled, y_labelled))
    if k > 0:
        add(
            "fine-tune: k target rows only",
            "F",
            lambda: supervised(task.X_target[target_rows], task.y_target[target_rows]),
        )

    if classification:
        adaptation = DomainAdaptationClassifier
    else:
        adaptation = DomainAdaptationRegressor
    methods = CLASSIFICATION_METHODS if classification else REGRESSION_METHODS
    for method in methods:
        fits = {}

        def fit(lam, method=method, fits=fits):
            estimator = adaptation(
                task.source, method=method, lam=lam, max_epochs=epochs, **kwargs
            )
            fits[lam] = _timed_fit(
                estimator, X_labelled, y_labelled, unlabeled_data=unlabeled
            )
            return fits[lam]

        def default_lam(fit=fit):
            estimator, seconds = fit(1.0)
            return test_score(estimator), seconds, None

        def chosen_lam(fit=fit, fits=fits):
            seconds, estimates = 0.0, {}
            for lam in LAMS:
                estimator, fit_seconds = fits[lam] if lam in fits else fit(lam)
                start = time.perf_counter()
                estimates[lam] = _score(
                    task.kind, y_validation, estimator.predict(X_validation), weights
                )
                seconds += fit_seconds + time.perf_counter() - start
            best = max(estimates, key=estimates.get)
            return test_score(fits[best][0]), seconds, f"λ={best:g}"

        add(f"sktransfer {method} (λ=1)", "A", default_lam)
        add(f"sktransfer {method} (λ by IWV)", "A", chosen_lam)

    def safe_default():
        auto = AutoTransferClassifier if classification else AutoTransferRegressor
        estimator = auto(task.source, strategies=AUTO_STRATEGIES, **kwargs)
        if k == 0:
            # No target label: the source rows are all there is to score on.
            estimator, seconds = _timed_fit(
                estimator, X_labelled, y_labelled, unlabeled_data=unlabeled
            )
        else:
            # The user knows which labelled rows are the target's: only those
            # are scored, the source rows train in every split.
            estimator, seconds = _timed_fit(
                estimator,
                task.X_target[target_rows],
                task.y_target[target_rows],
                source_data=SourceData(
                    task.X_source[draw.source_train], task.y_source[draw.source_train]
                ),
                unlabeled_data=unlabeled,
            )
        return test_score(estimator), seconds, estimator.best_strategy_

    add("sktransfer AutoTransfer, unlabelled rows", "D", safe_default)

    if skada_missing is None:
        data = (X_labelled, y_labelled, len(draw.source_train), X_pool, X_test)
        for name, make in _skada_methods(task).items():

            def skada_run(make=make):
                predicted, seconds = _skada_fit_predict(make, task, seed, data, epochs)
                return _score(task.kind, y_test, predicted), seconds, None

            add(name, "K", skada_run)
    return records


def run(tasks, seeds, *, epochs, skada_missing, progress, contenders=("*",)):
    records = []
    start = time.perf_counter()
    for task in tasks:
        for seed in seeds:
            draw = draw_rows(task, seed)
            # IWV's weights: the source validation rows toward the pool, on
            # flattened inputs (importance_weighted_scorer itself takes 2-D X
            # only, and would re-estimate the same weights for every model).
            weights = importance_weights(
                _flat(task.X_source[draw.source_validation]),
                _flat(task.X_target[draw.pool]),
                random_state=seed,
            )
            for k in task.sizes:
                with _one_thread():
                    records += run_cell(
                        task,
                        draw,
                        k,
                        seed,
                        epochs=epochs,
                        weights=weights,
                        skada_missing=skada_missing,
                        contenders=contenders,
                    )
                elapsed = time.perf_counter() - start
                progress(f"  {task.name}, seed {seed}, k={k} done ({elapsed:.0f} s)")
    return records


# --- report ------------------------------------------------------------------


def _by_seed(records, task, k):
    """{contender: {seed: score or nan}}, in the records' order."""
    table = {}
    for record in records:
        if record["task"] == task and record["k"] == k:
            score = record["score"]
            table.setdefault(record["contender"], {})[record["seed"]] = (
                np.nan if score is None else score
            )
    return table


def _mean(by_seed):
    values = np.array(list(by_seed.values()), dtype=float)
    return np.nan if np.isnan(values).any() else values.mean()


def _best(scores, names):
    means = {name: _mean(scores[name]) for name in names}
    means = {name: mean for name, mean in means.items() if not np.isnan(mean)}
    return max(means, key=means.get) if means else None


def _cell_records(records, task, k):
    return [r for r in records if r["task"] == task and r["k"] == k]


def format_table(result, task, k):
    info = result["tasks"][task]
    metric = "accuracy" if info["kind"] == "classification" else "R²"
    unit = " per class" if info["kind"] == "classification" else ""
    cell = _cell_records(result["records"], task, k)
    scores = _by_seed(cell, task, k)
    roles = {r["contender"]: r["role"] for r in cell}
    best = _best(scores, list(scores))
    n_seeds = len({r["seed"] for r in cell})
    skada_note = (
        "; skada gets the k target rows as a second labelled domain" if k else ""
    )
    lines = [
        f"{task}, k = {k} labelled target rows{unit if k else ''}: "
        f"{info['description']}",
        f"  {info['n_labelled_source']} labelled source rows"
        f"{' + k target rows' if k else ''}, {info['n_pool']} unlabelled target "
        f"rows, {info['n_test']} test rows{skada_note}",
        f"  test {metric}, mean ± std over {n_seeds} seed(s); "
        + ", ".join(f"[{tag}] {text}" for tag, text in ROLES.items())
        + "; * best mean",
    ]
    width = max(len(name) for name in scores) + 4
    lines.append(f"{'':<{width}}{metric:>20}   fit s   notes")
    for name, by_seed in scores.items():
        values = np.array(list(by_seed.values()), dtype=float)
        if np.isnan(values).all():
            text = "failed"
        else:
            text = f"{np.nanmean(values):.3f} ± {np.nanstd(values):.3f}"
            failed = int(np.isnan(values).sum())
            text += f" ({failed} failed)" if failed else ""
        mark = "*" if name == best else " "
        seconds = [
            r["fit_seconds"]
            for r in cell
            if r["contender"] == name and r["fit_seconds"] is not None
        ]
        fit = f"{np.mean(seconds):7.1f}" if seconds else f"{'-':>7}"
        notes = [r["note"] for r in cell if r["contender"] == name and r["note"]]
        errors = {r["error"] for r in cell if r["contender"] == name and r["error"]}
        remark = " ".join([*notes, *sorted(errors)])[:120]
        lines.append(
            f"[{roles[name]}] {name:<{width - 4}}{text + mark:>20} {fit}   {remark}"
        )
    return "\n".join(lines)


def _mean_seconds(cell, names):
    seconds = [
        r["fit_seconds"]
        for r in cell
        if r["contender"] in names and r["fit_seconds"] is not None
    ]
    return np.mean(seconds) if seconds else np.nan


def _below(scores, names, reference):
    """The names whose mean is below ``reference``'s by > 1 paired SE."""
    below = []
    for name in names:
        gap, error = _paired(scores[name], scores[reference])
        if np.isnan(gap) or gap < -(0 if np.isnan(error) else error):
            below.append(name.removeprefix("sktransfer "))
    return below


def summarize(result):
    """Three lines per task and k (see the module docstring)."""
    lines = []
    for task, info in result["tasks"].items():
        # Per seed: each k's best sktransfer and best skada row, for the
        # task's line (the mean over k).
        per_k = []
        for k in info["sizes"]:
            cell = _cell_records(result["records"], task, k)
            if not cell:
                continue
            scores = _by_seed(cell, task, k)
            roles = {r["contender"]: r["role"] for r in cell}
            named = {tag: [n for n in scores if roles[n] == tag] for tag in "SFADK"}
            supervised = _best(scores, named["S"] + named["F"])
            adapted = _best(scores, named["A"])
            skada = _best(scores, named["K"])
            lines.append(f"{task}, k = {k}")
            if adapted is not None and skada is not None:
                per_k.append((k, scores[adapted], scores[skada]))
                difference, error = _paired(scores[adapted], scores[skada])
                default = [n for n in named["A"] if n.endswith("(λ=1)")]
                ours, theirs = (_mean_seconds(cell, n) for n in (default, named["K"]))
                lines.append(
                    f"  vs skada: {_mean(scores[adapted]):.3f} {adapted} "
                    f"{'≥' if difference >= 0 else '<'} {_mean(scores[skada]):.3f} "
                    f"{skada}: {difference:+.3f} ± {_se(error)}; fit s "
                    f"{ours:.1f} (λ=1 rows) vs {theirs:.1f} (×{ours / theirs:.2f})"
                )
                matched = []
                for method, rival in MATCHED.items():
                    ours = f"sktransfer {method} (λ=1)"
                    if ours in scores and rival in scores:
                        gap, error = _paired(scores[ours], scores[rival])
                        matched.append(f"{method} {gap:+.3f} ± {_se(error)}")
                lines.append(
                    "    same method, λ = reg = 1, sktransfer − skada: "
                    + ", ".join(matched)
                )
            elif adapted is not None:
                lines.append(
                    f"  vs skada: {_mean(scores[adapted]):.3f} {adapted}; no skada "
                    "result"
                )
            if adapted is not None and supervised is not None:
                difference, error = _paired(scores[adapted], scores[supervised])
                below = _below(scores, named["A"], supervised)
                lines.append(
                    f"  vs supervised ({_mean(scores[supervised]):.3f} {supervised}):"
                    f" best adaptation {difference:+.3f} ± {_se(error)}; "
                    f"{len(below)} of {len(named['A'])} adaptation rows below by "
                    "> 1 SE" + (f": {', '.join(below)}" if below else "")
                )
            for default in named["D"]:
                if supervised is None:
                    continue
                difference, error = _paired(scores[default], scores[supervised])
                verdict = (
                    "below by > 1 SE"
                    if _below(scores, [default], supervised)
                    else "not below by > 1 SE"
                )
                line = (
                    f"  safe default ({_mean(scores[default]):.3f} AutoTransfer) vs "
                    f"supervised: {difference:+.3f} ± {_se(error)}, {verdict}"
                )
                if skada is not None:
                    gap, gap_error = _paired(scores[default], scores[skada])
                    line += f"; vs skada best {gap:+.3f} ± {_se(gap_error)}"
                lines.append(line)
        if len(per_k) > 1:
            lines.append(_task_line(task, per_k))
    return "\n".join(lines)


def _task_line(task, per_k):
    """The task over its k: the mean of each k's best row, per library."""
    seeds = sorted(set.intersection(*(set(a) & set(b) for _, a, b in per_k)))
    ours = {seed: np.mean([a[seed] for _, a, _ in per_k]) for seed in seeds}
    theirs = {seed: np.mean([b[seed] for _, _, b in per_k]) for seed in seeds}
    difference, error = _paired(ours, theirs)
    sizes = ", ".join(str(k) for k, _, _ in per_k)
    return (
        f"{task}, mean over k = {sizes} of each k's best row: sktransfer "
        f"{_mean(ours):.3f} {'≥' if difference >= 0 else '<'} skada "
        f"{_mean(theirs):.3f}: {difference:+.3f} ± {_se(error)}"
    )


def _se(error):
    return "n/a" if np.isnan(error) else f"{error:.3f}"


def print_report(result):
    for task, info in result["tasks"].items():
        for k in info["sizes"]:
            if _cell_records(result["records"], task, k):
                print(format_table(result, task, k), end="\n\n")
    print(
        "== summary: best adaptation (sktransfer, skada) and the best supervised "
        "contender of the same k; ± is the standard error of the paired "
        "difference over the seeds =="
    )
    if len(result["meta"]["seeds"]) < 2:
        print("(one seed: no standard error, any shortfall counts as below)")
    print(summarize(result))
    meta = result["meta"]
    if meta.get("skada_missing"):
        print(f"skada not run: {meta['skada_missing']}")


# --- main ------------------------------------------------------------------


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_selection_arguments(parser)
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="default 5 (quick 1): with 3, cells near the bar change sides",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="passes of the adaptation fits, both libraries (default 10, quick 3)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 seed, 3 epochs"
    )
    parser.add_argument(
        "--no-skada", action="store_true", help="run sktransfer's side only"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=RESULTS / "cache",
        help="pretrained sources between runs",
    )
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--output", type=Path, default=None, help="JSON file")
    parser.add_argument(
        "--report", type=Path, default=None, help="print the tables of a stored run"
    )
    return parser.parse_args(argv)


def skada_status(disabled):
    """None when skada.deep imports, else why it is not run."""
    if disabled:
        return "--no-skada"
    try:
        import skada.deep  # noqa: F401
    except Exception as exc:  # not installed, or an import that breaks
        return (
            f"{type(exc).__name__}: {exc} (pip install --no-deps skada pot, so that "
            "pip leaves torch alone)"
        )
    return None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_arguments(argv)
    if args.report is not None:
        with open(args.report, encoding="utf-8") as file:
            print_report(json.load(file))
        return
    seeds = list(range(args.seeds or (1 if args.quick else 5)))
    epochs = args.epochs or (3 if args.quick else 10)
    cache_dir = None if args.no_cache else args.cache_dir
    torch.set_num_threads(1)

    print(machine_description())
    skada_missing = skada_status(args.no_skada)
    if skada_missing is None:
        import skada

        print(f"skada {skada.__version__}")
    else:
        print(f"NOTE: skada not run: {skada_missing}")
    started = time.perf_counter()
    tasks, skipped = [], {}
    for name in select(list(TASKS), args.tasks, "task"):
        build_start = time.perf_counter()
        try:
            tasks.append(TASKS[name](cache_dir))
        except (TaskUnavailable, ImportError) as exc:
            skipped[name] = str(exc)
            print(f"NOTE: task {name} skipped: {exc}.")
            continue
        print(f"built {name} in {time.perf_counter() - build_start:.1f} s", flush=True)
    print(f"seeds {seeds}, {epochs} epochs for the adaptation fits", flush=True)
    _warm_up()
    records = run(
        tasks,
        seeds,
        epochs=epochs,
        skada_missing=skada_missing,
        progress=lambda line: print(line, flush=True),
        contenders=args.contenders,
    )
    result = {
        "records": records,
        "tasks": {
            task.name: {
                "kind": task.kind,
                "description": task.description,
                "sizes": [int(k) for k in task.sizes],
                "n_labelled_source": task.n_labelled_source,
                "n_test": task.n_test,
                "n_pool": int(task.y_target.shape[0] - task.n_test),
            }
            for task in tasks
        },
        "meta": {
            "date": datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(["python", "benchmarks/bench_adaptation.py", *argv]),
            "machine": machine_description(),
            "commit": git_commit(),
            "seeds": seeds,
            "epochs": epochs,
            "lams": list(LAMS),
            "skada_missing": skada_missing,
            "skipped": skipped,
            "total_seconds": time.perf_counter() - started,
        },
    }
    print()
    print_report(result)
    output = args.output or RESULTS / f"adaptation-{datetime.now():%Y%m%d-%H%M%S}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", encoding="utf-8") as file:
        json.dump(result, file, indent=1, ensure_ascii=False)
    print(
        f"\ntotal {result['meta']['total_seconds']:.0f} s; {machine_description()}\n"
        f"every fit written to {output}"
    )


if __name__ == "__main__":
    main()

"""Reproducibility: a fixed random_state gives bit-identical results.

Across two fits, two Python processes, and joblib's n_jobs settings (on the
CPU, with the same torch version and thread count; docs/reliability.rst lists
the limits). Estimators come from ``sktransfer.__all__`` (tests/_factories.py).
"""

import hashlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import sklearn
import torch
from _factories import (
    data,
    estimator_params,
    fit,
    fit_params,
    kind,
    make,
    network_estimators,
    outputs,
)
from sklearn.model_selection import GridSearchCV, KFold, cross_val_predict

from sktransfer import FineTunedClassifier, KnowledgeRegularizedClassifier

NETWORK_ESTIMATORS = estimator_params(network_estimators())


@pytest.mark.parametrize("estimator_class", NETWORK_ESTIMATORS)
def test_same_random_state_gives_bit_identical_outputs(estimator_class):
    first = make(estimator_class, random_state=7)
    X, y = data(first)
    # Draws in between must not matter: each fit seeds its own generators.
    torch.rand(5)
    np.random.rand(5)  # noqa: NPY002 - the legacy global stream must not matter
    second = make(estimator_class, random_state=7)
    np.testing.assert_array_equal(
        outputs(fit(first, X, y), X), outputs(fit(second, X, y), X)
    )


# AutoTransfer* may rightly choose a model without randomness (a linear model,
# the untouched source): another seed then gives the same model.
@pytest.mark.parametrize(
    "estimator_class",
    estimator_params(
        [c for c in network_estimators() if not c.__name__.startswith("AutoTransfer")]
    ),
)
def test_another_random_state_gives_another_model(estimator_class):
    # Otherwise the test above could not fail.
    X, y = data(make(estimator_class))
    a = outputs(fit(make(estimator_class, random_state=1), X, y), X)
    b = outputs(fit(make(estimator_class, random_state=2), X, y), X)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("estimator_class", NETWORK_ESTIMATORS)
def test_cross_val_predict_is_identical_for_one_and_two_jobs(estimator_class):
    estimator = make(estimator_class, random_state=0)
    X, y = data(estimator)
    method = "predict_proba" if kind(estimator) == "classifier" else "predict"
    cv = KFold(3, shuffle=True, random_state=0)
    # Extra fit parameters (joint training's source data) are routed to every
    # fold's fit, as a user inside cross-validation passes them.
    params = fit_params(estimator, X, y)
    with sklearn.config_context(enable_metadata_routing=bool(params)):
        sequential, parallel = [
            cross_val_predict(
                estimator, X, y, cv=cv, method=method, n_jobs=n_jobs, params=params
            )
            for n_jobs in (1, 2)
        ]
    np.testing.assert_array_equal(parallel, sequential)


def _threads_in_worker(estimator, X, y):
    return float(torch.get_num_threads())


def test_grid_search_is_identical_for_one_and_two_jobs():
    estimator = make(KnowledgeRegularizedClassifier, random_state=0)
    X, y = data(estimator, n_samples=45)
    grid = {"lam": [0.0, 0.1, 10.0]}
    scoring = {"accuracy": "accuracy", "neg_log_loss": "neg_log_loss"}
    searches = [
        GridSearchCV(
            estimator, grid, cv=3, scoring=scoring, refit="neg_log_loss", n_jobs=n
        ).fit(X, y)
        for n in (1, 2)
    ]
    sequential, parallel = searches
    assert parallel.best_params_ == sequential.best_params_
    for key in ("mean_test_accuracy", "mean_test_neg_log_loss"):
        np.testing.assert_array_equal(
            parallel.cv_results_[key], sequential.cv_results_[key]
        )
    np.testing.assert_array_equal(
        parallel.predict_proba(X), sequential.predict_proba(X)
    )


def test_joblib_workers_do_not_oversubscribe_torch_threads():
    # joblib's process workers start with OMP_NUM_THREADS = cores // n_jobs,
    # which torch reads at import: each worker's torch uses its share only.
    estimator = make(KnowledgeRegularizedClassifier, random_state=0, max_epochs=1)
    X, y = data(estimator)
    search = GridSearchCV(
        estimator, {"lam": [0.0, 0.1]}, cv=2, scoring=_threads_in_worker, n_jobs=2
    ).fit(X, y)
    threads = search.cv_results_["mean_test_score"]
    assert (threads <= max(1, (os.cpu_count() or 1) // 2)).all(), threads


_FIT_IN_A_FRESH_PROCESS = textwrap.dedent(
    """
    import hashlib, sys
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, "tests")
    from _factories import data, fit, make
    from sktransfer import FineTunedClassifier
    estimator = make(FineTunedClassifier, random_state=3)
    X, y = data(estimator)
    proba = fit(estimator, X, y).predict_proba(X)
    print(hashlib.sha256(proba.tobytes()).hexdigest())
    """
)


@pytest.mark.slow
def test_a_fresh_python_process_gives_bit_identical_predictions():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    digest = subprocess.run(
        [sys.executable, "-c", _FIT_IN_A_FRESH_PROCESS],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    estimator = make(FineTunedClassifier, random_state=3)
    X, y = data(estimator)
    here = hashlib.sha256(fit(estimator, X, y).predict_proba(X).tobytes())
    assert digest == here.hexdigest()

"""Scale-out: grid search runs unchanged on a dask.distributed cluster.

Skipped where dask.distributed is not installed (``pip install
sktransfer[dask]``). Starting a cluster takes seconds, hence ``slow``.
"""

import numpy as np
import pytest
import torch
from _factories import data, make
from sklearn.model_selection import GridSearchCV

from sktransfer import KnowledgeRegularizedClassifier

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.slow


def test_grid_search_over_lam_on_a_dask_cluster_matches_the_local_run():
    from joblib import parallel_backend

    estimator = make(KnowledgeRegularizedClassifier, random_state=0)
    X, y = data(estimator, n_samples=45)
    grid = {"lam": [0.0, 0.1, 1.0, 10.0]}
    local = GridSearchCV(estimator, grid, cv=3).fit(X, y)

    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        with parallel_backend("dask"):
            on_dask = GridSearchCV(estimator, grid, cv=3, n_jobs=-1).fit(X, y)
        # The nanny starts workers with OMP_NUM_THREADS=1, which torch reads
        # at import: one worker thread, one torch thread.
        torch_threads = client.run(torch.get_num_threads)

    assert on_dask.best_params_ == local.best_params_
    np.testing.assert_array_equal(
        on_dask.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )
    np.testing.assert_array_equal(on_dask.predict_proba(X), local.predict_proba(X))
    assert set(torch_threads.values()) == {1}

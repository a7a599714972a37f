import pytest
import torch
from threadpoolctl import threadpool_limits

# The test networks and data are tiny: one thread is faster than two that
# spin against each other (and against joblib workers) on the 2-core CI
# machine. Once torch is loaded, OpenBLAS with 2 threads makes even
# LogisticRegression on iris ~70x slower.
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield

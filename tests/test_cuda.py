"""device="cuda": every estimator trains / computes on the GPU.

Skipped without a CUDA GPU (select them with ``-m cuda``). Results come back
as numpy arrays on the host, inputs may be numpy arrays or CPU tensors, and
the user's source network stays on the CPU, unchanged.
"""

import numpy as np
import pytest
import torch
from _factories import (
    data,
    estimator_params,
    fit,
    load,
    make,
    mlp_source,
    network_estimators,
    outputs,
    unchanged,
)

from sktransfer import save_fitted

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

ESTIMATORS = estimator_params()


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_cuda_estimator_computes_what_the_cpu_one_does(estimator_class):
    source = mlp_source()
    on_gpu = make(estimator_class, source, device="cuda")
    X, y = data(on_gpu)
    with unchanged(X=X, y=y, source=source):
        fit(on_gpu, X, y)
        result = outputs(on_gpu, X)

    assert isinstance(result, np.ndarray)
    assert all(p.device.type == "cuda" for p in on_gpu.module_.parameters())
    assert all(p.device.type == "cpu" for p in source.parameters())
    on_cpu = fit(make(estimator_class, mlp_source(), device="cpu"), X, y)
    # Same seed, other kernels: equal up to float32 rounding, not bit-identical.
    np.testing.assert_allclose(result, outputs(on_cpu, X), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_cuda_estimator_accepts_cpu_tensors(estimator_class):
    estimator = make(estimator_class, device="cuda")
    X, y = data(estimator)
    fit(estimator, X, y)
    np.testing.assert_array_equal(
        outputs(estimator, torch.from_numpy(X)), outputs(estimator, X)
    )


@pytest.mark.parametrize("estimator_class", estimator_params(network_estimators()))
def test_same_random_state_on_cuda_gives_identical_outputs(estimator_class):
    # torch's default CUDA kernels for these layers are deterministic; see
    # docs/reliability.rst for those that are not.
    X, y = data(make(estimator_class))
    runs = [
        outputs(fit(make(estimator_class, device="cuda", random_state=4), X, y), X)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(*runs)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_model_fitted_on_cuda_loads_on_the_cpu(estimator_class, tmp_path):
    estimator = make(estimator_class, device="cuda")
    X, y = data(estimator)
    fit(estimator, X, y)
    save_fitted(estimator, tmp_path)
    loaded = load(estimator_class, tmp_path, device="cpu")
    assert all(p.device.type == "cpu" for p in loaded.module_.parameters())
    np.testing.assert_allclose(
        outputs(loaded, X), outputs(estimator, X), rtol=1e-4, atol=1e-5
    )

"""interpolation: WiSE-FT between the starting and the fine-tuned weights."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from torch import nn

from sktransfer import FineTunedClassifier, KnowledgeRegularizedClassifier

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_IRIS = ((X_IRIS - X_IRIS.mean(0)) / X_IRIS.std(0)).astype(np.float32)
SETTINGS = {"max_epochs": 10, "lr": 0.02, "batch_size": 16, "random_state": 0}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


def _source():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 5)
    ).eval()


def _state(estimator):
    return {
        name: tensor.clone()
        for name, tensor in estimator.module_.state_dict().items()
        if tensor.is_floating_point()
    }


@pytest.mark.parametrize(
    "estimator_class", [FineTunedClassifier, KnowledgeRegularizedClassifier]
)
def test_weights_are_the_interpolation_of_start_and_fine_tuned(estimator_class):
    source = _source()
    start = _state(
        estimator_class(source, interpolation=0.0, **SETTINGS).fit(X_IRIS, Y_IRIS)
    )
    tuned = _state(
        estimator_class(source, interpolation=1.0, **SETTINGS).fit(X_IRIS, Y_IRIS)
    )
    halfway = _state(
        estimator_class(source, interpolation=0.3, **SETTINGS).fit(X_IRIS, Y_IRIS)
    )

    assert start.keys() == tuned.keys() == halfway.keys()
    # Batch-norm statistics are among them, and interpolated like weights.
    assert "body.1.running_mean" in halfway
    for name in start:
        torch.testing.assert_close(
            halfway[name], 0.7 * start[name] + 0.3 * tuned[name], rtol=1e-5, atol=1e-6
        )
    assert any(not torch.equal(start[name], tuned[name]) for name in start)


def test_interpolation_zero_gives_back_the_source_body_with_the_probed_head():
    source = _source()

    estimator = FineTunedClassifier(source, interpolation=0.0, **SETTINGS).fit(
        X_IRIS, Y_IRIS
    )

    for name, tensor in source[:-1].state_dict().items():
        if tensor.is_floating_point():
            assert torch.equal(estimator.module_.body.state_dict()[name], tensor), name
    assert estimator.head_choice_ == "new"
    assert estimator.score(X_IRIS, Y_IRIS) > 0.8


def test_training_from_scratch_is_not_interpolated():
    source = _source()
    settings = {**SETTINGS, "reinitialize": True}

    plain = FineTunedClassifier(source, **settings).fit(X_IRIS, Y_IRIS)
    asked = FineTunedClassifier(source, interpolation=0.2, **settings).fit(
        X_IRIS, Y_IRIS
    )

    np.testing.assert_array_equal(
        asked.predict_proba(X_IRIS), plain.predict_proba(X_IRIS)
    )


def test_interpolation_outside_zero_to_one_is_refused():
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="interpolation"):
        FineTunedClassifier(_source(), interpolation=1.5).fit(X_IRIS, Y_IRIS)

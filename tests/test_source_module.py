"""The source-model layer: what the user passes becomes a private network.

Whatever form the source takes (module, fitted skorch net, factory, weights
file), the estimator works on its own copy: the user's module is never
modified, weights files load without executing anything, and a network splits
into body and head by name.
"""

import copy
import pickle

import joblib
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from skorch import NeuralNet, NeuralNetClassifier, NeuralNetRegressor
from torch import nn

from sktransfer import PretrainedFeatureTransformer
from sktransfer._source import find_head_name, get_layer, split_body_head

X_IRIS, Y_IRIS = load_iris(return_X_y=True)


def _mlp(seed=0, n_hidden=8):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, n_hidden), nn.ReLU(), nn.Linear(n_hidden, 3))


def _penultimate(sequential, X):
    """Input of the final layer of ``sequential``, computed by hand."""
    with torch.no_grad():
        return sequential[:-1](torch.as_tensor(X, dtype=torch.float32)).numpy()


def _train_mode_source():
    """A source whose state would show any eval() / requires_grad_ / forward leak."""
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Linear(4, 8),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(8, 3),
    )
    return module.train().requires_grad_(True)


def _snapshot(module):
    return {
        "state": {key: value.clone() for key, value in module.state_dict().items()},
        "training": [submodule.training for submodule in module.modules()],
        "requires_grad": [param.requires_grad for param in module.parameters()],
    }


def _assert_unchanged(module, snapshot):
    state = module.state_dict()
    assert state.keys() == snapshot["state"].keys()
    for key, before in snapshot["state"].items():
        assert state[key].dtype == before.dtype, key
        assert torch.equal(state[key], before), key
    assert [submodule.training for submodule in module.modules()] == snapshot[
        "training"
    ]
    assert [param.requires_grad for param in module.parameters()] == snapshot[
        "requires_grad"
    ]


class TinyNet(nn.Module):
    def __init__(self, n_hidden=5):
        super().__init__()
        self.hidden = nn.Linear(4, n_hidden)
        self.head = nn.Linear(n_hidden, 3)

    def forward(self, x):
        return self.head(torch.relu(self.hidden(x)))


class NestedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU()
        )
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(self.body(x))


# --- the forms a source can take ---------------------------------------------


def test_module_instance_is_copied_and_gives_its_penultimate_features():
    source = _mlp()

    transformer = PretrainedFeatureTransformer(source).fit(X_IRIS)

    assert transformer.module_ is not source
    np.testing.assert_allclose(
        transformer.transform(X_IRIS), _penultimate(source, X_IRIS), rtol=1e-6
    )


@pytest.mark.parametrize("net_class", [NeuralNetRegressor, NeuralNet])
def test_fitted_skorch_net_gives_the_features_of_its_module(net_class):
    net = net_class(
        _mlp(),
        criterion=nn.MSELoss,
        max_epochs=2,
        lr=0.05,
        train_split=None,
        verbose=0,
    )
    X = X_IRIS.astype(np.float32)
    net.fit(X, np.eye(3, dtype=np.float32)[Y_IRIS])
    before = _snapshot(net.module_)

    features = PretrainedFeatureTransformer(net).fit_transform(X)

    np.testing.assert_allclose(
        features, _penultimate(net.module_, X), rtol=1e-6, atol=1e-6
    )
    _assert_unchanged(net.module_, before)


def test_unfitted_skorch_net_is_refused():
    net = NeuralNetRegressor(_mlp(), max_epochs=1)

    with pytest.raises(ValueError, match="skorch net that has not been initialized"):
        PretrainedFeatureTransformer(net).fit(X_IRIS)


def test_module_class_is_called_as_a_factory():
    transformer = PretrainedFeatureTransformer(TinyNet).fit(X_IRIS)

    assert type(transformer.module_) is TinyNet
    assert transformer.feature_layer_ == "head"
    assert transformer.transform(X_IRIS).shape == (150, 5)


def test_factory_returning_an_existing_module_leaves_that_module_untouched():
    source = _train_mode_source()
    before = _snapshot(source)

    transformer = PretrainedFeatureTransformer(lambda: source).fit(X_IRIS)
    transformer.transform(X_IRIS)

    assert transformer.module_ is not source
    _assert_unchanged(source, before)


@pytest.mark.parametrize("not_a_source", [42, np.zeros((4, 3))])
def test_an_object_that_is_no_module_is_refused(not_a_source):
    with pytest.raises(TypeError, match=r"source_module must be a torch\.nn\.Module"):
        PretrainedFeatureTransformer(not_a_source).fit(X_IRIS)


def test_a_factory_that_returns_no_module_is_refused():
    with pytest.raises(TypeError, match=r"returned str; expected a torch\.nn\.Module"):
        PretrainedFeatureTransformer(lambda: "resnet").fit(X_IRIS)


# --- source_weights ----------------------------------------------------------


def _save_torch(state_dict, path):
    torch.save(state_dict, path)


def _save_safetensors(state_dict, path):
    save_file(state_dict, path)


@pytest.mark.parametrize(
    ("file_name", "save"),
    [("weights.pt", _save_torch), ("weights.safetensors", _save_safetensors)],
)
def test_weights_file_is_loaded_into_the_copy(tmp_path, file_name, save):
    source, pretrained = _mlp(seed=0), _mlp(seed=1)
    path = tmp_path / file_name
    save(pretrained.state_dict(), path)
    before = _snapshot(source)

    features = PretrainedFeatureTransformer(source, source_weights=path).fit_transform(
        X_IRIS
    )

    np.testing.assert_allclose(
        features, _penultimate(pretrained, X_IRIS), rtol=1e-6, atol=1e-6
    )
    assert not np.allclose(features, _penultimate(source, X_IRIS))
    _assert_unchanged(source, before)


@pytest.mark.parametrize(
    "other_network",
    [
        nn.Sequential(nn.Linear(4, 8)),  # keys "2.weight", "2.bias" missing
        nn.Sequential(nn.Linear(4, 7), nn.ReLU(), nn.Linear(7, 3)),  # shapes
    ],
)
def test_weights_that_do_not_fit_the_source_are_refused(tmp_path, other_network):
    path = tmp_path / "other.pt"
    torch.save(other_network.state_dict(), path)

    with pytest.raises(ValueError, match="do not fit source_module"):
        PretrainedFeatureTransformer(_mlp(), source_weights=path).fit(X_IRIS)


def test_missing_weights_file_is_reported(tmp_path):
    path = tmp_path / "nowhere.safetensors"

    with pytest.raises(
        FileNotFoundError, match=r"nowhere\.safetensors.*does not exist"
    ):
        PretrainedFeatureTransformer(_mlp(), source_weights=path).fit(X_IRIS)


class _CreatesMarkerFileWhenUnpickled:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        code = f"import pathlib; pathlib.Path({self.marker!r}).touch()"
        return (exec, (code,))


def _torch_save(obj, path):
    torch.save(obj, path)


def _torch_load_unsafely(path):
    torch.load(path, weights_only=False)


def _pickle_dump(obj, path):
    with open(path, "wb") as file:
        pickle.dump(obj, file)


def _pickle_load(path):
    with open(path, "rb") as file:
        pickle.load(file)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize(
    ("dump", "load_unsafely"),
    [(_torch_save, _torch_load_unsafely), (_pickle_dump, _pickle_load)],
    ids=["torch.save", "pickle.dump"],
)
def test_malicious_checkpoint_is_refused_without_running_its_payload(
    tmp_path, dump, load_unsafely
):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "checkpoint.pt"
    dump({"0.weight": _CreatesMarkerFileWhenUnpickled(marker)}, path)

    with pytest.raises(ValueError, match="Refused to load"):
        PretrainedFeatureTransformer(_mlp(), source_weights=path).fit(X_IRIS)

    assert not marker.exists()
    # The payload is live: an unsafe load runs it. So its absence above means
    # the transformer never executed it.
    load_unsafely(path)
    assert marker.exists()


# --- body and head -----------------------------------------------------------


def test_trailing_softmax_moves_into_the_head():
    torch.manual_seed(0)
    network = nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), nn.Softmax(dim=1)
    )
    original = copy.deepcopy(network)
    x = torch.as_tensor(X_IRIS[:10], dtype=torch.float32)

    body, head, head_name = split_body_head(network)

    assert head_name == "2"
    assert body is network
    assert isinstance(body[2], nn.Identity)
    assert isinstance(body[3], nn.Identity)
    assert isinstance(head, nn.Sequential)
    assert isinstance(head[0], nn.Linear)
    assert isinstance(head[1], nn.Softmax)
    with torch.no_grad():
        torch.testing.assert_close(body(x), original[:2](x))
        torch.testing.assert_close(head(body(x)), original(x))


def test_parameter_free_layers_before_the_head_stay_in_the_body():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(), nn.Linear(8, 3))

    body, head, head_name = split_body_head(network)

    assert head_name == "3"
    assert isinstance(head, nn.Linear)
    assert [type(layer) for layer in body] == [
        nn.Linear,
        nn.ReLU,
        nn.Dropout,
        nn.Identity,
    ]


def test_head_of_a_nested_module_is_its_final_layer_with_parameters():
    torch.manual_seed(0)
    network = NestedNet()
    original = copy.deepcopy(network)
    x = torch.as_tensor(X_IRIS[:10], dtype=torch.float32)

    assert find_head_name(network) == "head"
    body, head, head_name = split_body_head(network)

    assert head_name == "head"
    assert isinstance(body.head, nn.Identity)
    assert isinstance(head, nn.Linear)
    with torch.no_grad():
        torch.testing.assert_close(body(x), original.body(x))
        torch.testing.assert_close(head(body(x)), original(x))


def test_get_layer_finds_nested_layers_by_dotted_name():
    network = NestedNet()

    assert get_layer(network, "body.2") is network.body[2]
    assert get_layer(network, "head") is network.head


def test_unknown_layer_name_lists_the_available_names():
    network = NestedNet()

    with pytest.raises(ValueError, match="no layer named 'encoder'") as exc_info:
        get_layer(network, "encoder")
    for name in ("body", "body.0", "body.3", "head"):
        assert repr(name) in str(exc_info.value)

    with pytest.raises(ValueError, match=r"no layer named 'encoder'.*'body\.0'"):
        PretrainedFeatureTransformer(NestedNet(), feature_layer="encoder").fit(X_IRIS)


def test_network_without_parameters_has_no_head():
    with pytest.raises(ValueError, match="no sub-module with parameters"):
        find_head_name(nn.Sequential(nn.ReLU(), nn.Tanh()))


# --- the user's module is never modified -------------------------------------


def test_user_module_is_bit_identical_after_fit_transform_cv_and_grid_search():
    source = _train_mode_source()
    before = _snapshot(source)
    transformer = PretrainedFeatureTransformer(source)

    transformer.fit(X_IRIS)
    _assert_unchanged(source, before)

    transformer.transform(X_IRIS)
    _assert_unchanged(source, before)

    pipeline = make_pipeline(
        PretrainedFeatureTransformer(source), LogisticRegression(max_iter=500)
    )
    cross_val_score(pipeline, X_IRIS, Y_IRIS, cv=3)
    _assert_unchanged(source, before)

    search = GridSearchCV(
        pipeline, {"logisticregression__C": [0.1, 1]}, cv=3, n_jobs=2
    ).fit(X_IRIS, Y_IRIS)
    _assert_unchanged(source, before)
    assert search.best_estimator_[0].module_ is not source


def test_parallel_grid_search_leaves_the_users_pipeline_as_it_was():
    # With n_jobs > 1 the search object itself, holding the user's pipeline,
    # is pickled to the workers: pickling must not rewrite its parameters.
    source = _mlp()
    pipeline = make_pipeline(
        PretrainedFeatureTransformer(source), LogisticRegression(max_iter=500)
    )

    GridSearchCV(pipeline, {"logisticregression__C": [0.1, 1]}, cv=3, n_jobs=2).fit(
        X_IRIS, Y_IRIS
    )

    assert pipeline[0].source_module is source
    assert pipeline.fit(X_IRIS, Y_IRIS).score(X_IRIS, Y_IRIS) > 0.8


# --- pickling ----------------------------------------------------------------


def test_pickle_round_trip_of_a_fitted_transformer_gives_identical_features():
    source = _mlp()
    transformer = PretrainedFeatureTransformer(source).fit(X_IRIS)
    expected = transformer.transform(X_IRIS)

    restored = pickle.loads(pickle.dumps(transformer))

    np.testing.assert_array_equal(restored.transform(X_IRIS), expected)
    restored_source = restored.get_params()["source_module"]
    assert isinstance(restored_source, nn.Module)
    _assert_unchanged(restored_source, _snapshot(source))


def test_pickling_leaves_the_transformer_as_it_was():
    source = _mlp()
    transformer = PretrainedFeatureTransformer(source)

    pickle.dumps(transformer)

    assert transformer.get_params()["source_module"] is source
    features = clone(transformer).fit_transform(X_IRIS)
    np.testing.assert_allclose(
        features, _penultimate(source, X_IRIS), rtol=1e-6, atol=1e-6
    )


def test_clones_of_an_unfitted_transformer_hash_alike():
    # Pipeline(memory=...) finds a cached step by joblib.hash of a clone; each
    # clone holds its own deep copy of the source module.
    transformer = PretrainedFeatureTransformer(_mlp(), feature_layer="0")

    assert joblib.hash(clone(transformer)) == joblib.hash(clone(transformer))


def test_fitted_skorch_source_survives_cloning_in_cross_validation():
    X_iris, y_iris = load_iris(return_X_y=True)
    X_iris = X_iris.astype(np.float32)
    torch.manual_seed(0)
    net = NeuralNetClassifier(
        torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
        ),
        max_epochs=2,
        train_split=None,
        verbose=0,
    ).fit(X_iris, y_iris)
    transformer = clone(PretrainedFeatureTransformer(net))
    np.testing.assert_array_equal(
        transformer.fit_transform(X_iris),
        PretrainedFeatureTransformer(net.module_).fit_transform(X_iris),
    )
    scores = cross_val_score(
        make_pipeline(PretrainedFeatureTransformer(net), LogisticRegression()),
        X_iris,
        y_iris,
        cv=3,
    )
    assert scores.mean() > 0.5

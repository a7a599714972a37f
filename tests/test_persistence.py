"""Persistence: pickle / joblib round trips, and the pickle-free safe path.

``save_fitted`` writes JSON + safetensors; ``load_fitted`` rebuilds the
estimator from them and the user's source network without unpickling
anything. Estimators come from ``sktransfer.__all__`` (tests/_factories.py).
"""

import json
import pickle

import joblib
import numpy as np
import pytest
import torch
from _factories import (
    data,
    estimator_params,
    fit,
    make,
    mlp_source,
    network_estimators,
    outputs,
)
from sklearn.exceptions import NotFittedError

import sktransfer
from sktransfer import (
    FineTunedClassifier,
    KnowledgeRegularizedClassifier,
    PretrainedFeatureTransformer,
    load_fitted,
    save_fitted,
)

ESTIMATORS = estimator_params()


def _fitted(estimator_class, source=None):
    estimator = make(estimator_class, source)
    X, y = data(estimator)
    return fit(estimator, X, y), X


# --- pickle and joblib ---------------------------------------------------------------


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_pickle_round_trip_computes_identical_outputs(estimator_class):
    estimator, X = _fitted(estimator_class)
    restored = pickle.loads(pickle.dumps(estimator))
    np.testing.assert_array_equal(outputs(restored, X), outputs(estimator, X))


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_joblib_round_trip_computes_identical_outputs(estimator_class, tmp_path):
    estimator, X = _fitted(estimator_class)
    joblib.dump(estimator, tmp_path / "model.joblib")
    restored = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(outputs(restored, X), outputs(estimator, X))


# --- save_fitted / load_fitted ----------------------------------------------------


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_saved_estimator_loads_and_computes_bit_identical_outputs(
    estimator_class, tmp_path
):
    estimator, X = _fitted(estimator_class)
    save_fitted(estimator, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "params.json",
        "weights.safetensors",
    ]

    loaded = load_fitted(tmp_path, source_module=mlp_source())

    assert type(loaded) is estimator_class
    np.testing.assert_array_equal(outputs(loaded, X), outputs(estimator, X))
    expected = estimator.get_params(deep=False)
    actual = loaded.get_params(deep=False)
    del expected["source_module"], actual["source_module"]
    assert actual == expected
    assert loaded.n_features_in_ == estimator.n_features_in_
    if hasattr(estimator, "classes_"):
        np.testing.assert_array_equal(loaded.classes_, estimator.classes_)
        np.testing.assert_array_equal(loaded.predict(X), estimator.predict(X))
    if hasattr(estimator, "history_"):
        assert loaded.history_[:, "train_loss"] == estimator.history_[:, "train_loss"]


@pytest.mark.parametrize("estimator_class", estimator_params(network_estimators()))
def test_loaded_estimator_refits_like_a_fresh_one(estimator_class, tmp_path):
    estimator, X = _fitted(estimator_class)
    save_fitted(estimator, tmp_path)
    loaded = load_fitted(tmp_path, source_module=mlp_source())
    _, y = data(estimator)
    refit = fit(loaded, X, y)
    np.testing.assert_array_equal(outputs(refit, X), outputs(estimator, X))


def test_string_labels_and_feature_names_survive_the_round_trip(tmp_path):
    pd = pytest.importorskip("pandas")
    estimator = make(FineTunedClassifier)
    X, codes = data(estimator)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    y = np.array(["cat", "dog", "emu"])[codes]
    fit(estimator, frame, y)
    save_fitted(estimator, tmp_path)
    loaded = load_fitted(tmp_path, source_module=mlp_source())
    assert loaded.classes_.dtype == estimator.classes_.dtype
    np.testing.assert_array_equal(loaded.feature_names_in_, ["a", "b", "c", "d"])
    np.testing.assert_array_equal(loaded.predict(frame), estimator.predict(frame))


@pytest.mark.parametrize(
    "estimator_class", [FineTunedClassifier, PretrainedFeatureTransformer]
)
def test_lazy_source_networks_round_trip(estimator_class, tmp_path):
    def lazy_source():
        return torch.nn.Sequential(
            torch.nn.LazyLinear(8), torch.nn.ReLU(), torch.nn.LazyLinear(3)
        )

    estimator, X = _fitted(estimator_class, lazy_source())
    save_fitted(estimator, tmp_path)
    loaded = load_fitted(tmp_path, source_module=lazy_source())
    np.testing.assert_array_equal(outputs(loaded, X), outputs(estimator, X))


def test_loading_unpickles_nothing(tmp_path, monkeypatch):
    estimator, X = _fitted(FineTunedClassifier)
    save_fitted(estimator, tmp_path)
    expected = estimator.predict_proba(X)

    def refuse(*args, **kwargs):
        raise AssertionError("load_fitted must not unpickle anything")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(joblib, "load", refuse)
    loaded = load_fitted(tmp_path, source_module=mlp_source())

    np.testing.assert_array_equal(loaded.predict_proba(X), expected)


def test_loading_leaves_the_source_and_torchs_random_state_unchanged(tmp_path):
    estimator, _ = _fitted(FineTunedClassifier)
    save_fitted(estimator, tmp_path)
    source = mlp_source()
    state = {name: t.clone() for name, t in source.state_dict().items()}
    torch.manual_seed(123)
    load_fitted(tmp_path, source_module=source)
    after_load = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after_load, torch.rand(3))
    assert all(torch.equal(state[k], v) for k, v in source.state_dict().items())


def test_unfitted_estimator_cannot_be_saved(tmp_path):
    with pytest.raises(NotFittedError):
        save_fitted(make(FineTunedClassifier), tmp_path)


def test_parameters_json_cannot_hold_must_be_passed_again(tmp_path):
    def penalty(module, inputs, features, outputs, index):
        return sum(p.square().sum() for p in module.parameters())

    estimator = KnowledgeRegularizedClassifier(
        mlp_source(),
        knowledge=penalty,
        random_state=np.random.RandomState(0),
        max_epochs=2,
    )
    X, y = data(estimator)
    estimator.fit(X, y)
    save_fitted(estimator, tmp_path)
    document = json.loads((tmp_path / "params.json").read_text())
    assert document["params_to_pass_again"] == {
        "knowledge": "function",
        "random_state": "RandomState",
    }

    with pytest.raises(ValueError, match=r"pass them to load_fitted again: knowledge"):
        load_fitted(tmp_path, source_module=mlp_source())
    loaded = load_fitted(
        tmp_path, source_module=mlp_source(), knowledge=penalty, random_state=0
    )
    np.testing.assert_array_equal(loaded.predict_proba(X), estimator.predict_proba(X))


# --- refused files ------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    estimator, _ = _fitted(FineTunedClassifier)
    save_fitted(estimator, tmp_path)
    return tmp_path


def test_modified_weights_are_refused_by_their_checksum(saved):
    weights = saved / "weights.safetensors"
    content = bytearray(weights.read_bytes())
    content[-1] ^= 0xFF
    weights.write_bytes(bytes(content))
    with pytest.raises(ValueError, match=r"SHA-256 differs .*modified"):
        load_fitted(saved, source_module=mlp_source())


def test_another_architecture_is_refused(saved):
    torch.manual_seed(0)
    wider = torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)
    )
    with pytest.raises(ValueError, match=r"do not fit the network built from source"):
        load_fitted(saved, source_module=wider)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(estimator="os.system"), "not one of sktransfer's"),
        (lambda d: d.update(estimator="datasets"), "no estimator"),
        (lambda d: d.update(format="pickle"), "not written by sktransfer"),
        (lambda d: d.update(format_version=99), "format version 99"),
        (lambda d: d["params"].update(lr=-1.0), "'lr' parameter"),
        (lambda d: d["params"].update(not_a_parameter=1), "does not take"),
        (
            lambda d: d["params"].update(optimizer={"__torch_optimizer__": "load"}),
            "unknown torch object",
        ),
        (lambda d: d["fitted_attributes"].update({"__class__": 1}), "invalid attr"),
        (lambda d: d.pop("weights_sha256"), "lacks a valid 'weights_sha256'"),
    ],
    ids=[
        "foreign class",
        "not a class",
        "format",
        "version",
        "invalid value",
        "unknown parameter",
        "optimizer name",
        "dunder attribute",
        "no checksum",
    ],
)
def test_modified_params_json_is_refused(saved, change, message):
    path = saved / "params.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=message):
        load_fitted(saved, source_module=mlp_source())


def test_missing_or_garbled_files_are_reported(saved):
    (saved / "params.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_fitted(saved, source_module=mlp_source())
    (saved / "params.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"params\.json.*save_fitted writes"):
        load_fitted(saved, source_module=mlp_source())


def test_save_and_load_are_public():
    assert {"save_fitted", "load_fitted"} <= set(sktransfer.__all__)

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
    load,
    make,
    mlp_source,
    network_estimators,
    outputs,
    saveable_estimators,
)
from sklearn.exceptions import NotFittedError

import sktransfer
from sktransfer import (
    DistilledClassifier,
    FineTunedClassifier,
    FusionClassifier,
    JointTrainingClassifier,
    KnowledgeRegularizedClassifier,
    PretrainedFeatureTransformer,
    load_fitted,
    save_fitted,
)

ESTIMATORS = estimator_params()
SAVEABLE = estimator_params(saveable_estimators())
SAVEABLE_NETWORKS = estimator_params(
    [cls for cls in network_estimators() if cls in saveable_estimators()]
)


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


@pytest.mark.parametrize(
    "estimator_class",
    estimator_params(
        [sktransfer.AutoTransferClassifier, sktransfer.AutoTransferRegressor]
    ),
)
def test_auto_transfer_is_not_saved_and_names_what_to_save(estimator_class, tmp_path):
    estimator, _ = _fitted(estimator_class)

    with pytest.raises(TypeError, match="best_estimator_"):
        save_fitted(estimator, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("estimator_class", SAVEABLE)
def test_saved_estimator_loads_and_computes_bit_identical_outputs(
    estimator_class, tmp_path
):
    estimator, X = _fitted(estimator_class)
    save_fitted(estimator, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "params.json",
        "weights.safetensors",
    ]

    loaded = load(estimator_class, tmp_path)

    assert type(loaded) is estimator_class
    np.testing.assert_array_equal(outputs(loaded, X), outputs(estimator, X))
    # Networks are passed to load_fitted again, not saved: compare the rest.
    passed_again = {"source_module"} | set(
        json.loads((tmp_path / "params.json").read_text())["params_to_pass_again"]
    )
    expected = estimator.get_params(deep=False)
    actual = loaded.get_params(deep=False)
    for name in passed_again:
        del expected[name], actual[name]
    assert actual == expected
    assert loaded.n_features_in_ == estimator.n_features_in_
    if hasattr(estimator, "classes_"):
        np.testing.assert_array_equal(loaded.classes_, estimator.classes_)
        np.testing.assert_array_equal(loaded.predict(X), estimator.predict(X))
    if getattr(estimator, "n_iter_", 0):
        assert loaded.history_[:, "train_loss"] == estimator.history_[:, "train_loss"]


@pytest.mark.parametrize("estimator_class", SAVEABLE_NETWORKS)
def test_loaded_estimator_refits_like_a_fresh_one(estimator_class, tmp_path):
    estimator, X = _fitted(estimator_class)
    save_fitted(estimator, tmp_path)
    loaded = load(estimator_class, tmp_path)
    _, y = data(estimator)
    refit = fit(loaded, X, y)
    np.testing.assert_array_equal(outputs(refit, X), outputs(estimator, X))


@pytest.mark.parametrize("estimator_class", SAVEABLE)
def test_loaded_outputs_come_from_the_saved_weights_not_the_networks_passed(
    estimator_class, tmp_path
):
    # Only the architecture of the networks passed to load_fitted is used.
    estimator, X = _fitted(estimator_class)
    save_fitted(estimator, tmp_path)
    other_weights = mlp_source()
    with torch.no_grad():
        for parameter in other_weights.parameters():
            parameter.add_(1.0)

    loaded = load(estimator_class, tmp_path, other_weights)

    np.testing.assert_array_equal(outputs(loaded, X), outputs(estimator, X))


@pytest.mark.parametrize("estimator_class", SAVEABLE)
def test_a_loaded_estimator_saves_the_same_files_again(estimator_class, tmp_path):
    # Nothing that load_fitted sets up beyond the saved state (e.g. what
    # rebuilding the network needs) leaks into the fitted attributes.
    estimator, _ = _fitted(estimator_class)
    save_fitted(estimator, tmp_path / "first")
    save_fitted(load(estimator_class, tmp_path / "first"), tmp_path / "second")
    for name in ("params.json", "weights.safetensors"):
        assert (tmp_path / "second" / name).read_bytes() == (
            tmp_path / "first" / name
        ).read_bytes(), name


def _fast(**params):
    return {"max_epochs": 3, "lr": 0.01, "batch_size": 16, "random_state": 0, **params}


# (estimator, what load_fitted needs again, expected fitted attributes): the
# multi-network estimators in configurations the factories do not cover.
_CONFIGURATIONS = {
    "distilled through the auxiliary head": (
        lambda: DistilledClassifier(mlp_source(n_outputs=5), mlp_source(), **_fast()),
        lambda: {
            "source_module": mlp_source(n_outputs=5),
            "student_module": mlp_source(),
        },
        {"distilled_into_": "auxiliary", "head_choice_": "reuse"},
    ),
    "distilled with source_classes": (
        lambda: DistilledClassifier(
            mlp_source(n_outputs=4),
            mlp_source(),
            source_classes=[3, 2, 1, 0],
            **_fast(),
        ),
        lambda: {
            "source_module": mlp_source(n_outputs=4),
            "student_module": mlp_source(),
        },
        {"distilled_into_": "head", "head_choice_": "reuse"},
    ),
    "fusion by sum, own target network": (
        lambda: FusionClassifier(
            mlp_source(), torch.nn.Linear(4, 3), head="reuse", **_fast()
        ),
        lambda: {"source_module": mlp_source(), "target_module": torch.nn.Linear(4, 3)},
        {"head_choice_": "reuse"},
    ),
    "fusion by sum, new source head": (
        lambda: FusionClassifier(mlp_source(n_outputs=5), **_fast()),
        lambda: {"source_module": mlp_source(n_outputs=5)},
        {"head_choice_": "new"},
    ),
    "joint training without source data": (
        lambda: JointTrainingClassifier(mlp_source(), **_fast(source_weight=0.0)),
        lambda: {"source_module": mlp_source()},
        {"head_choice_": "new", "n_source_samples_": 0},
    ),
}


@pytest.mark.parametrize(
    ("make_estimator", "load_params", "attributes"),
    list(_CONFIGURATIONS.values()),
    ids=list(_CONFIGURATIONS),
)
def test_multi_network_estimators_round_trip_in_every_configuration(
    make_estimator, load_params, attributes, tmp_path
):
    estimator = make_estimator()
    X, y = data(estimator)
    estimator.fit(X, y)
    save_fitted(estimator, tmp_path)

    loaded = load_fitted(tmp_path, **load_params())

    np.testing.assert_array_equal(loaded.predict_proba(X), estimator.predict_proba(X))
    for name, value in attributes.items():
        assert getattr(estimator, name) == value, name
        assert getattr(loaded, name) == value, name
    assert loaded.module_.state_dict().keys() == estimator.module_.state_dict().keys()


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

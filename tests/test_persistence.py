"""Persistence: pickle / joblib round trips, and the pickle-free safe path.

``save_fitted`` writes JSON + safetensors; ``load_fitted`` rebuilds the
estimator from them and the user's source network without unpickling
anything. Estimators come from ``sktransfer.__all__`` (tests/_factories.py).
"""

import hashlib
import hmac
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
    public_estimators,
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
    ("estimator_class", "what_to_save"),
    [
        (sktransfer.AutoTransferClassifier, "best_estimator_"),
        (sktransfer.AutoTransferRegressor, "best_estimator_"),
        (sktransfer.PseudoLabelingClassifier, "save estimator_ instead"),
    ],
)
def test_wrappers_are_not_saved_and_name_what_to_save(
    estimator_class, what_to_save, tmp_path
):
    estimator, _ = _fitted(estimator_class)

    with pytest.raises(TypeError, match=what_to_save):
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


def test_a_file_can_name_only_estimator_classes():
    # The loader builds what params.json names from this table: a helper
    # function listed in an estimator module's __all__ must not be in it.
    from sktransfer._persistence import _ESTIMATORS

    assert all(isinstance(value, type) for value in _ESTIMATORS.values())
    assert "FineTunedClassifier" in _ESTIMATORS
    assert "check_source_data" not in _ESTIMATORS
    assert "SourceData" not in _ESTIMATORS


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


# --- refused files: what the digest, the declarations and the constraints catch ---


@pytest.fixture
def saved(tmp_path):
    estimator, _ = _fitted(FineTunedClassifier)
    save_fitted(estimator, tmp_path)
    return tmp_path


def _edit(directory, change, *, recompute_checksum=False):
    """Change params.json; optionally recompute its SHA-256, as anyone can.

    The SHA-256 covers the document without its ``digest`` entry, serialized
    with sorted keys and no spaces (the Reliability page says so): whoever
    can write the directory can recompute it. Only a key stops them.
    """
    path = directory / "params.json"
    document = json.loads(path.read_text())
    change(document)
    if recompute_checksum:
        content = {name: value for name, value in document.items() if name != "digest"}
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        document["digest"] = {"sha256": hashlib.sha256(canonical.encode()).hexdigest()}
    path.write_text(json.dumps(document))


def _set_attribute(name, value):
    return lambda document: document["fitted_attributes"].update({name: value})


def _flip_a_weight_byte(directory, *, recompute_checksums=False):
    weights = directory / "weights.safetensors"
    content = bytearray(weights.read_bytes())
    content[-1] ^= 0xFF
    weights.write_bytes(bytes(content))
    if recompute_checksums:
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        _edit(
            directory,
            lambda document: document.update(weights_sha256=digest),
            recompute_checksum=True,
        )


# Edits of params.json, each refused for its own reason even when the editor
# recomputes the SHA-256 (the checksum alone refuses every one of them).
_INVALID_EDITS = {
    "foreign class": (lambda d: d.update(estimator="os.system"), "not one of sktr"),
    "not a class": (lambda d: d.update(estimator="datasets"), "not one of sktr"),
    "format": (lambda d: d.update(format="pickle"), "not written by sktransfer"),
    "version": (lambda d: d.update(format_version=99), "format version 99"),
    "invalid value": (lambda d: d["params"].update(lr=-1.0), "'lr' parameter"),
    "batch_size=0": (lambda d: d["params"].update(batch_size=0), "'batch_size'"),
    "unknown parameter": (
        lambda d: d["params"].update(not_a_parameter=1),
        "does not take",
    ),
    "optimizer name": (
        lambda d: d["params"].update(optimizer={"__torch_optimizer__": "load"}),
        "unknown torch object",
    ),
    "a method replaced": (
        _set_attribute("predict_proba", "tampered"),
        r"fitted attribute 'predict_proba', which FineTunedClassifier does not have",
    ),
    "dunder attribute": (
        _set_attribute("__class__", 1),
        r"fitted attribute '__class__', which FineTunedClassifier does not have",
    ),
    "a parameter as attribute": (
        _set_attribute("lr", 1.0),
        r"fitted attribute 'lr', which FineTunedClassifier does not have",
    ),
    "classes_ of another kind": (
        _set_attribute("classes_", [[0, 1], [2, 3]]),
        r"'classes_' = \[\[0, 1\], \[2, 3\]\], but it must be a non-empty 1-d array",
    ),
    "n_features_in_ as text": (
        _set_attribute("n_features_in_", "4"),
        r"'n_features_in_' = '4', but it must be an int >= 1",
    ),
    "negative sample shape": (
        _set_attribute("_sample_shape", {"__tuple__": [-1]}),
        r"'_sample_shape' = \(-1,\), but it must be a tuple of positive ints",
    ),
    "head choice": (
        _set_attribute("head_choice_", "both"),
        r"'head_choice_' = 'both', but it must be one of \['reuse', 'new'\]",
    ),
    "classes_ removed": (
        lambda d: d["fitted_attributes"].pop("classes_"),
        r"lacks the fitted attributes \['classes_'\]",
    ),
    "history of another kind": (
        lambda d: d.update(history={"epochs": 3}),
        "lacks a valid 'history'",
    ),
    "a network to pass again": (
        lambda d: d["params_to_pass_again"].update(__init__="function"),
        r"lists '__init__' among the parameters to pass again",
    ),
    "no weights checksum": (
        lambda d: d.pop("weights_sha256"),
        "lacks a valid 'weights_sha256'",
    ),
    "undecodable array": (
        _set_attribute("classes_", {"__ndarray__": [1, [2]], "dtype": "<i8"}),
        "cannot be decoded",
    ),
}


@pytest.mark.parametrize("edit", list(_INVALID_EDITS))
def test_an_edited_params_json_is_refused_by_its_checksum(matrix, saved, edit):
    change, _ = _INVALID_EDITS[edit]
    _edit(saved, change)
    source = mlp_source()
    with (
        matrix.case("saved files", files=saved, source=source),
        pytest.raises(
            ValueError,
            # Edits of the file's frame (format, version, a missing entry) are
            # refused before the checksum is read.
            match=r"does not match its recorded SHA-256: the file was modified|"
            r"not written by sktransfer|format version 99|lacks a valid",
        ),
    ):
        load_fitted(saved, source_module=source)


@pytest.mark.parametrize(
    ("change", "message"), list(_INVALID_EDITS.values()), ids=list(_INVALID_EDITS)
)
def test_an_invalid_edit_is_refused_even_with_a_recomputed_checksum(
    matrix, saved, change, message
):
    _edit(saved, change, recompute_checksum=True)
    source = mlp_source()
    with (
        matrix.case("saved files", files=saved, source=source),
        pytest.raises(ValueError, match=message),
    ):
        load_fitted(saved, source_module=source)


@pytest.mark.parametrize("estimator_class", SAVEABLE)
def test_every_estimator_refuses_a_saved_parameter_its_constraints_refuse(
    matrix, estimator_class, tmp_path
):
    estimator, _ = _fitted(estimator_class)
    save_fitted(estimator, tmp_path)
    _edit(
        tmp_path,
        lambda document: document["params"].update(batch_size=0),
        recompute_checksum=True,
    )
    with (
        matrix.case("saved files", files=tmp_path),
        pytest.raises(ValueError, match=r"'batch_size' parameter of \w+ must be"),
    ):
        load(estimator_class, tmp_path)


def test_every_parameter_of_every_estimator_has_a_constraint():
    # load_fitted checks the saved parameters with _parameter_constraints:
    # a parameter without one would load unchecked.
    for estimator_class in public_estimators():
        params = set(make(estimator_class).get_params(deep=False))
        assert params == set(estimator_class._parameter_constraints), estimator_class


def test_modified_weights_are_refused_by_their_checksum(matrix, saved):
    _flip_a_weight_byte(saved)
    with (
        matrix.case("saved files", files=saved),
        pytest.raises(ValueError, match=r"SHA-256 differs .*modified"),
    ):
        load_fitted(saved, source_module=mlp_source())


def test_without_a_key_recomputed_checksums_go_unnoticed_as_documented(saved, tmp_path):
    # The documented limit of a checksum kept beside the files: whoever can
    # write them can recompute it. (With a key, see below, this is refused.)
    estimator, X = _fitted(FineTunedClassifier)
    _flip_a_weight_byte(saved, recompute_checksums=True)
    loaded = load_fitted(saved, source_module=mlp_source())
    assert not np.array_equal(loaded.predict_proba(X), estimator.predict_proba(X))


@pytest.fixture
def saved_with_key(tmp_path):
    estimator, _ = _fitted(FineTunedClassifier)
    save_fitted(estimator, tmp_path, key=_KEY)
    return tmp_path


_KEY = b"a secret only the owner of the model has"


@pytest.mark.parametrize("key", [_KEY, _KEY.decode()], ids=["bytes", "str"])
def test_a_model_saved_with_a_key_loads_with_it(saved_with_key, key):
    estimator, X = _fitted(FineTunedClassifier)
    loaded = load_fitted(saved_with_key, source_module=mlp_source(), key=key)
    np.testing.assert_array_equal(loaded.predict_proba(X), estimator.predict_proba(X))


_TAMPERINGS = {
    "classes_ edited, checksums recomputed": lambda directory: _edit(
        directory,
        _set_attribute("classes_", {"__ndarray__": [2, 1, 0], "dtype": "<i8"}),
        recompute_checksum=True,
    ),
    "weights flipped, checksums recomputed": lambda directory: _flip_a_weight_byte(
        directory, recompute_checksums=True
    ),
    "HMAC replaced by a SHA-256": lambda directory: _edit(
        directory, lambda document: None, recompute_checksum=True
    ),
    "HMAC removed": lambda directory: _edit(
        directory, lambda document: document.pop("digest")
    ),
}
_TAMPERING_MESSAGES = {
    "classes_ edited, checksums recomputed": "is not authenticated with a key",
    "weights flipped, checksums recomputed": "is not authenticated with a key",
    "HMAC replaced by a SHA-256": "is not authenticated with a key",
    "HMAC removed": "lacks a valid 'digest'",
}


@pytest.mark.parametrize("tampering", list(_TAMPERINGS))
def test_with_a_key_every_tampering_is_refused(matrix, saved_with_key, tampering):
    _TAMPERINGS[tampering](saved_with_key)
    with (
        matrix.case("saved files", files=saved_with_key),
        pytest.raises(ValueError, match=_TAMPERING_MESSAGES[tampering]),
    ):
        load_fitted(saved_with_key, source_module=mlp_source(), key=_KEY)


def test_a_forged_hmac_without_the_key_is_refused(matrix, saved_with_key):
    # An attacker without the key can only guess: any HMAC they write fails.
    forged_key = b"a guess"
    content_change = _set_attribute(
        "classes_", {"__ndarray__": [2, 1, 0], "dtype": "<i8"}
    )

    def forge(document):
        content_change(document)
        content = {name: value for name, value in document.items() if name != "digest"}
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        forged = hmac.new(forged_key, canonical.encode(), hashlib.sha256).hexdigest()
        document["digest"] = {"hmac_sha256": forged}

    _edit(saved_with_key, forge)
    with (
        matrix.case("saved files", files=saved_with_key),
        pytest.raises(
            ValueError,
            match=r"does not match its recorded HMAC: the files were changed after "
            r"saving, or the key differs",
        ),
    ):
        load_fitted(saved_with_key, source_module=mlp_source(), key=_KEY)


def test_a_wrong_key_is_refused(matrix, saved_with_key):
    with (
        matrix.case("saved files", files=saved_with_key),
        pytest.raises(ValueError, match=r"does not match its recorded HMAC"),
    ):
        load_fitted(saved_with_key, source_module=mlp_source(), key=b"other key")


def test_a_model_saved_with_a_key_is_not_loaded_without_it(matrix, saved_with_key):
    with (
        matrix.case("saved files", files=saved_with_key),
        pytest.raises(ValueError, match=r"was saved with a key: pass the same key"),
    ):
        load_fitted(saved_with_key, source_module=mlp_source())


@pytest.mark.parametrize(
    "key", [b"", "", 1234], ids=["empty bytes", "empty str", "int"]
)
def test_a_key_must_be_a_non_empty_secret(saved, key):
    estimator, _ = _fitted(FineTunedClassifier)
    with pytest.raises(TypeError, match=r"key must be a non-empty bytes or str"):
        save_fitted(estimator, saved, key=key)
    with pytest.raises(TypeError, match=r"key must be a non-empty bytes or str"):
        load_fitted(saved, source_module=mlp_source(), key=key)


def test_an_undeclared_fitted_attribute_cannot_be_saved(tmp_path):
    # Every fitted attribute is declared with its kind; one that is not would
    # otherwise be dropped silently, or loaded unchecked.
    estimator, _ = _fitted(FineTunedClassifier)
    estimator.threshold_ = 0.5
    with pytest.raises(
        TypeError, match=r"fitted attribute 'threshold_' is not declared"
    ):
        save_fitted(estimator, tmp_path)
    assert not (tmp_path / "params.json").exists()


def test_another_architecture_is_refused(matrix, saved):
    torch.manual_seed(0)
    wider = torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)
    )
    with (
        matrix.case("saved files", files=saved, source=wider),
        pytest.raises(ValueError, match=r"do not fit the network built from source"),
    ):
        load_fitted(saved, source_module=wider)


def test_missing_or_garbled_files_are_reported(matrix, saved):
    (saved / "params.json").write_text("{not json")
    with (
        matrix.case("saved files", files=saved),
        pytest.raises(ValueError, match="not valid JSON"),
    ):
        load_fitted(saved, source_module=mlp_source())
    (saved / "params.json").unlink()
    with (
        matrix.case("saved files", files=saved),
        pytest.raises(FileNotFoundError, match=r"params\.json.*save_fitted writes"),
    ):
        load_fitted(saved, source_module=mlp_source())


def test_a_device_torch_cannot_use_is_refused_at_load(matrix, saved):
    with (
        matrix.case("saved files", files=saved),
        pytest.raises(ValueError, match=r"device='gpu' is not a torch device"),
    ):
        load_fitted(saved, source_module=mlp_source(), device="gpu")


def test_save_and_load_are_public():
    assert {"save_fitted", "load_fitted"} <= set(sktransfer.__all__)

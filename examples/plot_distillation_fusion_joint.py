"""
Distillation, fusion and joint training against training from scratch
=====================================================================

Three more ways to use a pretrained network on a small task. *Distillation*
trains a smaller student network on the labels and on what the source
network predicts; *fusion* keeps the source network frozen and trains a
second network beside it; *joint training* goes on training the source
network on its own task, with its own data, while it learns the target task.
We compare them, on the same cross-validation folds, with the same
architecture trained from scratch and with plain fine-tuning, and read the
result with the corrected paired t-test of
:func:`~sktransfer.model_selection.compare_strategies`.
"""

# %%
# A source network and a small target task
# ----------------------------------------
# The shipped digits task: the source network is pretrained on the digits 0-4
# (about 900 images), the target task is the digits 5-9 with 10 images per
# class. The source's five outputs mean the digits 0-4, not 5-9.

import warnings

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits
from torch import nn

from sktransfer import (
    DistilledClassifier,
    FineTunedClassifier,
    FusionClassifier,
    JointTrainingClassifier,
    SourceData,
)
from sktransfer.datasets import load_digits_transfer, pretrain_source_network
from sktransfer.model_selection import NegativeTransferWarning, compare_strategies

# The networks are tiny: one thread is as fast as several on a shared CPU.
torch.set_num_threads(1)
threadpool_limits(1)

task = load_digits_transfer(n_target_per_class=10, random_state=0)
print(task.description)
source = pretrain_source_network(
    task.X_source, task.y_source, hidden_layer_sizes=(128, 64), max_epochs=30
)
print(source)

# %%
# The strategies
# --------------
# Every strategy trains for 40 epochs with the same learning rate and seed.
#
# - **Baseline**: the source architecture with fresh weights, trained on the
#   target images alone (``reinitialize=True``).
# - **Fine-tuning**: start from the source weights, with a new head.
# - **Distillation**: a student with a quarter of the hidden units. The source
#   knows the digits 0-4 only, which we say with ``source_classes``: its
#   outputs cannot be matched to the target classes 5-9, so an auxiliary
#   head on the student learns the source's distribution over 0-4 on every
#   target image (``distilled_into_ == "auxiliary"``), which shapes the
#   student's features, while its own head learns 5-9 from the labels.
#   Without ``source_classes``, five source outputs for five target classes
#   would be matched by position — digit 0 taken for 5, and so on.
# - **Fusion, sum**: the frozen source plus a freshly initialised copy of it.
#   The source head scores the wrong digits, so we ask for a new head on the
#   frozen source features (``head="new"``; ``"auto"`` would reuse a head of
#   the right *width* with the wrong *meaning*).
# - **Fusion, concat**: one new head reads the frozen source features and the
#   trainable copy's features.
# - **Joint training**: the source body with two heads, trained on a batch
#   of target images and a batch of source images at every step. Its source
#   data are passed with ``strategy_params``: the other strategies do not
#   take them.

settings = {"max_epochs": 40, "lr": 1e-2, "batch_size": 32, "random_state": 0}


def make_student():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 5)
    )


baseline = FineTunedClassifier(source, reinitialize=True, **settings)
strategies = {
    "fine-tuning": FineTunedClassifier(source, head="new", **settings),
    "distillation": DistilledClassifier(
        source,
        make_student(),
        source_classes=np.unique(task.y_source),
        alpha=0.5,
        temperature=2.0,
        **settings,
    ),
    "fusion (sum)": FusionClassifier(source, fusion="sum", head="new", **settings),
    "fusion (concat)": FusionClassifier(source, fusion="concat", **settings),
    "joint training": JointTrainingClassifier(source, source_weight=0.5, **settings),
}
source_data = SourceData(task.X_source, task.y_source)

# %%
# Cross-validated comparison
# --------------------------
# Five stratified folds of the 50 target images, the same for every
# strategy. ``Δ accuracy`` is the mean per-fold difference with the baseline;
# ``p`` the corrected resampled t-test's p-value (folds share training data,
# so the plain paired t-test would be far too confident).

cv = StratifiedKFold(5, shuffle=True, random_state=0)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", NegativeTransferWarning)
    comparison = compare_strategies(
        strategies,
        task.X_target,
        task.y_target,
        baseline=baseline,
        cv=cv,
        scoring=["accuracy", "neg_log_loss"],
        strategy_params={"joint training": {"source_data": source_data}},
    )
print(comparison)
for warning in caught:
    print(f"warning: {warning.message}")

# %%
# What the numbers say
# --------------------
# Read the table row by row rather than trusting a single number: with 50
# target images, each fold tests 10 of them, so one image is 0.1 accuracy,
# and only differences with a small ``p`` are more than fold-to-fold noise.
# On this task none of the strategies differs significantly from the
# baseline in accuracy: 8×8 digits are easy to learn from scratch, and a
# source that has seen only the digits 0-4 knows little that the 40 training
# images of each fold do not show. The differences worth a look are in the
# log-loss, which rewards confident correct probabilities:
#
# - **Fusion** keeps the source's features fixed, so the small target set
#   cannot overwrite them; the frozen features add a second view of each
#   image, which tends to make the probabilities better calibrated rather
#   than the decisions more accurate.
# - **Distillation** is a *compression* tool: its student has a fraction of
#   the parameters, and the question is whether it keeps the score of the
#   larger network. A teacher that scores the target classes themselves
#   passes on more than this one, whose knowledge arrives only through the
#   auxiliary head.
# - **Joint training** regularises the shared body with 900 source images.
#   It runs as many steps per epoch as the source data need, hence its
#   longer fit time; ``source_weight`` sets how much the source task counts
#   and is worth tuning with ``GridSearchCV`` (pass
#   ``source_data=source_data`` to ``fit``, with metadata routing enabled).
#
# When a strategy is significantly worse than the baseline,
# ``compare_strategies`` warns of negative transfer (printed above, if any):
# the source's knowledge then hurts on this task as configured.

# %%
# Accuracy per fold, strategy by strategy (needs the optional matplotlib).

try:
    import matplotlib.pyplot as plt
except ImportError:
    plt = None

if plt is not None:
    names = list(comparison.scores)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for position, name in enumerate(names):
        folds = comparison.scores[name]["accuracy"]
        ax.scatter(np.full(folds.shape, position), folds, alpha=0.5, color="gray")
        ax.errorbar(position, folds.mean(), yerr=folds.std(), fmt="o", capsize=4)
    ax.set_xticks(range(len(names)), labels=names, rotation=20, ha="right")
    ax.set_ylabel("accuracy per fold")
    ax.set_title("Digits 5-9 from 50 images, source pretrained on 0-4")
    fig.tight_layout()
    plt.show()

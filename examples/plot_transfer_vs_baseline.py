"""
Does transfer beat training from scratch? Cross-validate it
===========================================================

A pretrained network is worth reusing only if it beats a model trained on the
target data alone. This example makes that comparison the way sktransfer
intends it to be made: every transfer strategy and the from-scratch baseline
are scored on the *same* cross-validation folds, their fold-by-fold
differences are tested, and a learning curve shows how the gap changes with
the amount of target data.

The task is MNIST-1D (Greydanus, 2020): ten digit templates turned into 1-D
signals of 40 samples by random padding, scaling, translation, noise and
shear. The source network learns from 4,000 signals made with the default
generator; the target task has the same ten digits, but its signals come from
a differently set generator (stronger scaling, noise and shear), and we have
only 30 labelled signals per digit. The data are generated locally by the
optional ``mnist1d`` package; nothing is downloaded.
"""

# %%
# The source network and the target data
# --------------------------------------
# :func:`~sktransfer.datasets.load_mnist1d_transfer` returns both tasks;
# :func:`~sktransfer.datasets.pretrain_source_network` stands in for the
# network you would bring: an MLP with two hidden layers trained on the source
# signals. The last lines check what the source network is worth *as is* on
# the target signals: the classes are the same, but the domain has shifted.

import tempfile
from pathlib import Path

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sktransfer import (
    AutoTransferClassifier,
    FineTunedClassifier,
    KnowledgeRegularizedClassifier,
    PretrainedFeatureTransformer,
    SourceModelClassifier,
)
from sktransfer.datasets import load_mnist1d_transfer, pretrain_source_network
from sktransfer.model_selection import compare_strategies, transfer_learning_curve

# The networks are small: one thread per process is as fast as several, and
# the two cross-validation workers below then use one core each.
torch.set_num_threads(1)
threadpool_limits(1)

task = load_mnist1d_transfer(n_source=4000, n_target_per_class=30, random_state=0)
print(task.description)
source = pretrain_source_network(
    task.X_source, task.y_source, hidden_layer_sizes=(256, 128), max_epochs=60
)
with torch.inference_mode():
    predicted = source(torch.as_tensor(task.X_target)).argmax(dim=1).numpy()
accuracy_as_is = (predicted == task.y_target).mean()
print(f"source network on the target signals, as is: {accuracy_as_is:.3f}")

# %%
# The contenders
# --------------
# The estimators' defaults encode a careful practitioner's choices (the
# source head is reused only when its predictions on the training data show
# that output *i* means digit *i*; a new head is first fitted on the frozen
# features; epochs are sized to the data), so the contenders are written
# with them:
#
# * **untouched source** — the source network as it is, no training
#   (:class:`~sktransfer.SourceModelClassifier`; its ten outputs are the
#   digits 0-9). What the user has for free when the label spaces match.
# * **from scratch** — ``reinitialize=True``: the source *architecture* with
#   fresh weights. The non-transfer baseline: everything the transfer
#   strategies have except the pretrained weights.
# * **fine-tune** — start from the source weights, train every layer.
# * **frozen body** — keep the source body as it is, train only a new head.
# * **L2-SP** — fine-tune while penalising the distance of the weights to
#   the source's, ``λ/2·‖θ − θ_source‖²`` (λ = 0.1 here; see the λ-tuning
#   example for choosing it by grid search).
# * **features + logistic regression** — the frozen body as a feature
#   extractor for a linear model.
# * **Auto** — :class:`~sktransfer.AutoTransferClassifier`, which
#   cross-validates a portfolio of these (and WiSE-FT) on each training fold
#   and keeps the best, or the untouched source when it is as good within
#   noise.

settings = {"random_state": 0}
strategies = {
    "untouched source": SourceModelClassifier(source, source_classes=range(10)),
    "fine-tune": FineTunedClassifier(source, **settings),
    "frozen body": FineTunedClassifier(source, head="new", freeze="body", **settings),
    "L2-SP": KnowledgeRegularizedClassifier(
        source, knowledge="l2sp", lam=0.1, **settings
    ),
    "features + logistic regression": make_pipeline(
        PretrainedFeatureTransformer(source),
        StandardScaler(),
        LogisticRegression(max_iter=1000),
    ),
    "Auto": AutoTransferClassifier(source, **settings),
    "from scratch": FineTunedClassifier(source, reinitialize=True, **settings),
}

# %%
# Transfer vs baseline on the same folds
# --------------------------------------
# :func:`~sktransfer.model_selection.compare_strategies` runs
# :func:`sklearn.model_selection.cross_validate` for every contender on the
# same five folds. ``Δ accuracy`` is the mean fold-by-fold difference to the
# baseline and ``p`` the p-value of Nadeau and Bengio's corrected paired
# t-test (the folds share training data, so a plain t-test would be
# overconfident). A strategy significantly *worse* than the baseline would
# raise a :class:`~sktransfer.model_selection.NegativeTransferWarning`.

cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
comparison = compare_strategies(
    strategies,
    task.X_target,
    task.y_target,
    baseline="from scratch",
    cv=cv,
    scoring=["accuracy", "balanced_accuracy"],
    n_jobs=2,
)
print(comparison)

# %%
# Every transfer strategy beats the baseline, by 16 to 24 points of
# accuracy, and the paired test says none of the gaps is chance. The
# untouched source is a contender too: the domain shift costs it most of its
# accuracy (0.39), and fine-tuning with the defaults (which reuse its head:
# its predictions on the training signals agree with the labels far above
# chance) and L2-SP win back 6 to 7 points over it. Freezing the body, or a
# linear model on its features, gains less here. Auto, which chooses among
# them inside each training fold without seeing the test fold, scores above
# every one of them (0.460 against 0.457 for L2-SP): where its inner
# cross-validation cannot tell the best candidates apart, it averages them
# (calibrated first) when the average scores higher than the best alone.
# The price is a cross-validation per fit (its fit time).

# %%
# How the gap depends on the amount of target data
# ------------------------------------------------
# :func:`~sktransfer.model_selection.transfer_learning_curve` trains every
# contender on growing subsets of each training fold (the same subsets for
# all), and scores it on the fold's test part.

# Auto cross-validates its portfolio inside every fit; the curve keeps to the
# strategies it chooses from.
curve = transfer_learning_curve(
    {name: model for name, model in strategies.items() if name != "Auto"},
    task.X_target,
    task.y_target,
    baseline="from scratch",
    train_sizes=[20, 60, 120, 240],
    cv=cv,
    scoring="accuracy",
    n_jobs=2,
)
print(curve)

# %%
# With 60 signals or more, the fine-tuned strategies lead. With 20 signals
# (two per digit) nothing trained beats the untouched source: fine-tuning
# 20 signals for 100 epochs moves the network away from what the source
# knew faster than it learns the target domain. This is why the untouched
# source belongs in every comparison when the label spaces agree, and why
# :class:`~sktransfer.AutoTransferClassifier` has it in its portfolio.
#
# Save the plot (it needs the optional matplotlib) in the temporary
# directory, so that running the example leaves nothing in your working copy.

try:
    import matplotlib.pyplot as plt
except ImportError:
    plt = None

if plt is not None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    curve.plot(ax=ax)
    ax.set_title("MNIST-1D under domain shift: transfer vs from scratch")
    fig.tight_layout()
    figure_path = Path(tempfile.gettempdir()) / "sktransfer_transfer_vs_baseline.png"
    fig.savefig(figure_path, dpi=100)
    print(f"learning curves saved to {figure_path}")

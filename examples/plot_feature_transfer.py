"""
Feature transfer: reuse a pretrained network on a small task
============================================================

A network trained on a large *source* task computes features in its hidden
layers. Feature transfer freezes that network and feeds its features to a
simple scikit-learn model trained on a small *target* task. Here the source
task is recognising the handwritten digits 0-4 (about 900 images), the target
task is recognising the digits 5-9 from only 100 images, and the downstream
model is a logistic regression. We cross-validate the transfer pipeline
against the same logistic regression on the raw pixels, and report what
happens — including when transfer does not help.
"""

# %%
# Source and target tasks
# -----------------------
# scikit-learn ships the 8×8 digits, so the example runs offline. Pixel values
# go from 0 to 16; dividing by 16 puts them in [0, 1]. This is a fixed
# scaling, not one fitted to either task, so the target images reach the
# network exactly as the source images did during pretraining — a network only
# gives meaningful features for inputs scaled the way it was trained on.

import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from skorch import NeuralNetClassifier
from threadpoolctl import threadpool_limits
from torch import nn

from sktransfer import PretrainedFeatureTransformer

# Every model here is tiny, so one thread is as fast as several, and it stays
# fast when other programs share the CPU (there, threads that wait for each
# other can slow small computations down many times over).
threadpool_limits(limits=1)  # numpy's BLAS and OpenMP
torch.set_num_threads(1)

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)

is_source = y < 5
X_source, y_source = X[is_source], y[is_source]
X_target_all, y_target_all = X[~is_source], y[~is_source]

# A small-data regime for the target: 100 images, 20 per digit.
X_target, _, y_target, _ = train_test_split(
    X_target_all, y_target_all, train_size=100, stratify=y_target_all, random_state=0
)
print(f"source task: digits 0-4, {len(y_source)} images")
print(f"target task: digits 5-9, {len(y_target)} images")

# %%
# Pretrain the source network
# ---------------------------
# In practice the pretrained network comes from elsewhere: a colleague, a
# model zoo, an earlier project. Here we train it ourselves with skorch. The
# network has a *body* (two hidden layers) and a *head* (the final linear
# layer that scores the five source digits). ``train_split=None`` trains on
# all the source images; we do not need skorch's internal validation split.


class SourceNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU()
        )
        self.head = nn.Linear(64, 5)

    def forward(self, x):
        return self.head(self.body(x))


torch.manual_seed(0)
source_net = NeuralNetClassifier(
    SourceNetwork,
    criterion=nn.CrossEntropyLoss,
    optimizer=torch.optim.Adam,
    lr=1e-3,
    max_epochs=30,
    batch_size=64,
    iterator_train__shuffle=True,
    train_split=None,
    verbose=0,
)
source_net.fit(X_source, y_source)
print(f"source training accuracy: {source_net.score(X_source, y_source):.3f}")

# %%
# Feature transfer as a scikit-learn pipeline
# -------------------------------------------
# :class:`~sktransfer.PretrainedFeatureTransformer` accepts a torch module, a
# fitted skorch net, or a module factory; here we give it the trained module
# inside the skorch net, ``source_net.module_``. It works on its own frozen
# copy, so nothing we do below changes the source network. By default it
# returns the input of the head — the 64 values of the last hidden layer.
# ``feature_layer`` reads any other named layer instead; ``"body.1"`` is the
# output of the first hidden layer (after its ReLU), 256 values that are less
# specialised to the source digits.
#
# Every candidate is scored with the same five stratified folds of the 100
# target images.

cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
source_module = source_net.module_


def make_candidates():
    return {
        "raw pixels + logistic regression": LogisticRegression(max_iter=1000),
        "transfer, last hidden layer (default)": make_pipeline(
            PretrainedFeatureTransformer(source_module),
            LogisticRegression(max_iter=1000),
        ),
        "transfer, first hidden layer": make_pipeline(
            PretrainedFeatureTransformer(source_module, feature_layer="body.1"),
            LogisticRegression(max_iter=1000),
        ),
    }


scores = {
    name: cross_val_score(model, X_target, y_target, cv=cv)
    for name, model in make_candidates().items()
}

print(f"{'model':<40} accuracy (mean ± std over 5 folds)")
for name, fold_scores in scores.items():
    print(f"{name:<40} {fold_scores.mean():.3f} ± {fold_scores.std():.3f}")

# The folds are the same for every model, so we can compare fold by fold.
baseline = scores["raw pixels + logistic regression"]
print("\ndifference to raw pixels, fold by fold (mean ± std):")
for name, fold_scores in list(scores.items())[1:]:
    difference = fold_scores - baseline
    if difference.mean() > difference.std():
        verdict = "better"
    elif difference.mean() < -difference.std():
        verdict = "worse"
    else:
        verdict = "on par: within the fold-to-fold spread"
    print(f"{name:<40} {difference.mean():+.3f} ± {difference.std():.3f}  ({verdict})")

# %%
# What the numbers say
# --------------------
# On this task, feature transfer does **not** beat the raw pixels. The last
# hidden layer is clearly worse: a network trained only to tell 0-4 apart
# keeps what separates those five digits and discards much of the rest, so
# the digits it never saw (5-9) become harder to separate. The first hidden
# layer is more generic and is on par with the raw pixels: the two differ by
# about one image of the 100, well within the spread between folds.
#
# The baseline is also strong: 64 pixels are few, and a linear model on them
# already separates five digit classes well from 100 images. Feature transfer
# pays off when the source features encode something that the raw input does
# not make linear — a network pretrained on many natural images, texts or
# sounds, with a source task close to the target one. The lesson carries over:
# always cross-validate the transfer pipeline against a baseline on the raw
# features, and try an earlier ``feature_layer`` when the source and target
# classes differ.
#
# Does this change with the size of the target set? We repeat the comparison
# on 25 to 400 target images. One draw of 100 images is a noisy sample, so
# each point averages five different draws, each cross-validated with the
# same folds for every model.

target_sizes = [25, 50, 100, 200, 400]
n_draws = 5
curves = {name: [] for name in scores}
for n_target in target_sizes:
    draw_scores = {name: [] for name in scores}
    for draw in range(n_draws):
        X_small, _, y_small, _ = train_test_split(
            X_target_all,
            y_target_all,
            train_size=n_target,
            stratify=y_target_all,
            random_state=draw,
        )
        for name, model in make_candidates().items():
            draw_scores[name].append(
                cross_val_score(model, X_small, y_small, cv=cv).mean()
            )
    for name in scores:
        curves[name].append(np.mean(draw_scores[name]))

print(f"{'target images':<40}" + "".join(f"{n:>7}" for n in target_sizes))
for name, accuracies in curves.items():
    print(f"{name:<40}" + "".join(f"{acc:>7.3f}" for acc in accuracies))

# %%
# With 25 or 50 target images — the regime where transfer is meant to help
# most — the raw pixels win, clearly so at 25. From 100 images on, the first
# hidden layer ties with them, and the last hidden layer closes part of its
# gap as the logistic regression gets more images to make do with less suitable
# features. Nowhere does transfer beat the baseline on this task.

# %%
# Plot the learning curves, when the optional matplotlib is installed
# (``pip install -e ".[plot]"`` in a clone of sktransfer). The figure is saved
# in the temporary directory, so running the example leaves nothing behind in
# your working copy.

try:
    import matplotlib.pyplot as plt
except ImportError:
    plt = None

if plt is not None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, accuracies in curves.items():
        ax.plot(target_sizes, accuracies, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xticks(target_sizes, labels=[str(n) for n in target_sizes])
    ax.minorticks_off()
    ax.set_xlabel("target images (digits 5-9)")
    ax.set_ylabel("5-fold cross-validated accuracy")
    ax.set_title("Features of a network pretrained on digits 0-4")
    ax.legend()
    fig.tight_layout()
    figure_path = Path(tempfile.gettempdir()) / "sktransfer_feature_transfer.png"
    fig.savefig(figure_path, dpi=100)
    print(f"learning curves saved to {figure_path}")

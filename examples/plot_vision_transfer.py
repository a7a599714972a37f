"""
Images: transfer a torchvision ResNet-18 to a new task
======================================================

A real image architecture, end to end, offline: torchvision's ResNet-18 is
first trained on a *source* task (recognising the handwritten digits 0-4),
then reused on a *target* task (the digits 5-9) from only 50 labelled images.
We compare fine-tuning the pretrained network and feature transfer (its
frozen features fed to a logistic regression) against the honest baseline:
the same ResNet-18 trained from scratch on the same 50 images, on the same
splits.

The weights are pretrained here, by the example, so that it runs without a
network connection; with one, a single line swaps in torchvision's ImageNet
weights (see the end). The images are scikit-learn's 8×8 digits, upscaled and
normalised by the preprocessing that comes with ResNet-18's weights. It needs
torchvision (``pip install "sktransfer[torchvision]"``, with a torch that
matches it: see :ref:`pretrained_sources`); without it, the example says so
and stops.
"""

# %%
# Images the network's way
# ------------------------
# Each pretrained torchvision model comes with the preprocessing its weights
# expect: ``ResNet18_Weights.DEFAULT.transforms()`` resizes, crops and
# normalises with the ImageNet mean and standard deviation. ImageNet's
# 224×224 pixels would make this example take many minutes on a CPU, so the
# digits are upscaled to 32×32 only (a ResNet accepts small images too: it
# ends with global average pooling). The gray images are repeated over
# the three colour channels the network takes.

import sys
import tempfile
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit
from sklearn.pipeline import make_pipeline

from sktransfer import FineTunedClassifier, PretrainedFeatureTransformer
from sktransfer.model_selection import compare_strategies

try:
    from torchvision.models import ResNet18_Weights
except Exception as exc:  # not installed, or built for another torch
    print(
        f"Skipping this example: it needs torchvision ({exc}). Install it with "
        'a matching torch: pip install "sktransfer[torchvision]" (see '
        "'Installing the extras' in the documentation)."
    )
    sys.exit(0)

from sktransfer.sources import torchvision_model

# One thread: on a CPU shared with other programs, threads that wait for each
# other slow torch down several times over. On a machine of your own, leave
# this line out and let torch use every core.
torch.set_num_threads(1)

preprocess = ResNet18_Weights.DEFAULT.transforms(resize_size=32, crop_size=32)

digits = load_digits()
gray = torch.from_numpy(digits.images / 16.0).float().unsqueeze(1)  # (n, 1, 8, 8)
images = preprocess(gray.expand(-1, 3, -1, -1)).numpy()  # (n, 3, 32, 32)
labels = digits.target

is_source = labels < 5
X_source, y_source = images[is_source], labels[is_source]
X_target, y_target = images[~is_source], labels[~is_source]
print(f"source task: digits 0-4, {len(y_source)} images of shape {images.shape[1:]}")
print(f"target task: digits 5-9, {len(y_target)} images")

# %%
# Pretrain ResNet-18 on the source task
# -------------------------------------
# ``torchvision_model`` names the architecture; ``weights=None`` builds it with
# random weights and five outputs, one per source digit. Training it is
# fine-tuning from scratch (``reinitialize=True``) with the source head kept:
# ``verbose=1`` prints the epoch table. The fitted network's body is the
# ResNet itself, whose ``fc`` layer was split off as the head; putting it back
# gives the pretrained torchvision model — the source of everything below.

pretraining = FineTunedClassifier(
    torchvision_model("resnet18", weights=None, model_kwargs={"num_classes": 5}),
    head="reuse",
    reinitialize=True,
    max_epochs=2,
    batch_size=64,
    random_state=0,
    verbose=1,
).fit(X_source, y_source)
pretrained = pretraining.module_.body
pretrained.fc = pretraining.module_.head
pretrained.eval()

# %%
# Three ways to learn the target task from 50 images
# --------------------------------------------------
# * **from scratch**: the same architecture with fresh weights, trained for as
#   many epochs on the same images — the baseline;
# * **fine-tuned**: a new head for the digits 5-9 is trained on the frozen
#   body first, then the whole network, the pretrained body at a tenth of the
#   learning rate;
# * **features + logistic regression**: the frozen network's 512 features (the
#   input of ``fc``), and a logistic regression on them.
#
# ``source = pretrained`` is the one line to change for torchvision's ImageNet
# weights (see the end).

source = pretrained

strategies = {
    "from scratch": FineTunedClassifier(
        source, reinitialize=True, max_epochs=10, batch_size=25, random_state=0
    ),
    "fine-tuned": FineTunedClassifier(
        source,
        head="new",
        freeze="body",
        unfreeze_at=4,
        body_lr_ratio=0.1,
        max_epochs=10,
        batch_size=25,
        random_state=0,
    ),
    "features + logistic regression": make_pipeline(
        PretrainedFeatureTransformer(source),
        LogisticRegression(max_iter=1000),
    ),
}

# %%
# Compare them on the same splits
# -------------------------------
# Three random splits of the target images, each training on 50 (10 per
# digit) and testing on 200 others; every strategy sees the same ones.
# ``verbose=1`` reports each strategy as it finishes.

splits = StratifiedShuffleSplit(
    n_splits=3, train_size=50, test_size=200, random_state=0
)
comparison = compare_strategies(
    strategies,
    X_target,
    y_target,
    baseline="from scratch",
    cv=splits,
    scoring="accuracy",
    verbose=1,
)
print(comparison)

# %%
# Plot the comparison, when the optional matplotlib is installed: the mean
# accuracy of each strategy, ±1 standard deviation over the splits, the
# accuracy of each split as a tick, and the baseline's mean as a dashed line.
# The figure is saved in the temporary directory, so running the example
# leaves nothing behind in your working copy.

try:
    import matplotlib.pyplot as plt
except ImportError:
    plt = None

if plt is not None:
    ax = comparison.plot()
    ax.set_title("ResNet-18 pretrained on digits 0-4, on digits 5-9")
    ax.figure.tight_layout()
    figure_path = Path(tempfile.gettempdir()) / "sktransfer_vision_transfer.png"
    ax.figure.savefig(figure_path, dpi=100)
    print(f"comparison plot saved to {figure_path}")

# %%
# What it shows
# --------------
# Trained from scratch on 50 images, ResNet-18's 11 million weights have far
# too little to learn from: it gets about two digits in three right.
# Pretrained on the source digits, the same network already separates the new
# ones: a short fine-tuning and a logistic regression on its frozen features
# both score about ten points higher on average (the exact figures move by a
# few points with the number of threads torch uses). Three splits are few,
# though: the corrected paired t-test (``p`` above) cannot rule out chance for
# gains of this size, and more splits (``n_splits``) would settle it at the
# cost of more fits. The source here is small and close to the target; with
# ImageNet weights it is large and far from digits, and whether it helps is
# exactly what this comparison finds out.
#
# With a network connection, torchvision's ImageNet weights are one line
# away. Replace the source, and give the network ImageNet's own image size:
#
# .. code-block:: python
#
#    source = torchvision_model("resnet18", weights="DEFAULT")
#    preprocess = ResNet18_Weights.DEFAULT.transforms()  # 224×224 pixels
#
# The weights are downloaded on the first ``fit`` into torch.hub's cache and
# read from there afterwards; sktransfer refuses a checkpoint that would need
# to unpickle Python objects.

"""
Tuning λ of knowledge regularization with GridSearchCV
======================================================

:class:`~sktransfer.KnowledgeRegularizedClassifier` fine-tunes a pretrained
network while minimising ``mean L(y, f_θ(x)) + λ·K(θ)``, where ``K`` ties the
network to its source. λ = 0 is plain fine-tuning; a large λ keeps the network
at the source. Which λ is best depends on how related the tasks are, so it is
tuned like any other hyper-parameter, by cross-validation on the target
training set only. This example tunes λ for L2-SP and plots the validation
score against λ.
"""

# %%
# A source network and a small target task
# ----------------------------------------
# The shipped digits task: the source network is pretrained on the digits 0-4,
# the target task is the digits 5-9 with 20 images per class.

import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from threadpoolctl import threadpool_limits

from sktransfer import KnowledgeRegularizedClassifier
from sktransfer.datasets import load_digits_transfer, pretrain_source_network

# The networks are tiny: one thread is as fast as several on a shared CPU.
torch.set_num_threads(1)
threadpool_limits(1)

task = load_digits_transfer(n_target_per_class=20, random_state=0)
print(task.description)
source = pretrain_source_network(task.X_source, task.y_source, max_epochs=30)
X_train, X_test, y_train, y_test = train_test_split(
    task.X_target,
    task.y_target,
    test_size=0.5,
    stratify=task.y_target,
    random_state=0,
)

# %%
# Grid search over λ
# ------------------
# The target classes differ from the source's, so the head is new (``head="new"``);
# L2-SP pulls every body weight towards its pretrained value.

search = GridSearchCV(
    KnowledgeRegularizedClassifier(
        source, knowledge="l2sp", head="new", max_epochs=40, random_state=0
    ),
    {"lam": [0.0, 0.001, 0.01, 0.1, 1.0, 10.0]},
    cv=StratifiedKFold(5, shuffle=True, random_state=0),
)
search.fit(X_train, y_train)
lams = np.array(search.cv_results_["param_lam"], dtype=float)
means = search.cv_results_["mean_test_score"]
stds = search.cv_results_["std_test_score"]
for lam, mean, std in zip(lams, means, stds, strict=True):
    print(f"lam={lam:<6g} validation accuracy {mean:.3f} ± {std:.3f}")
print(f"best lam: {search.best_params_['lam']}")
print(f"test accuracy of the refitted best model: {search.score(X_test, y_test):.3f}")

# %%
# Validation score against λ
# --------------------------
# λ = 0 sits at the left edge of a log axis, so it is drawn as a dashed line.

try:
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is not installed (pip install sktransfer[plot]): no plot.")
else:
    fig, ax = plt.subplots(figsize=(6, 4))
    positive = lams > 0
    ax.errorbar(lams[positive], means[positive], yerr=stds[positive], marker="o")
    ax.axhline(means[~positive][0], linestyle="--", color="gray", label="λ = 0")
    ax.set_xscale("log")
    ax.set_xlabel("λ (L2-SP weight)")
    ax.set_ylabel("validation accuracy (5-fold CV)")
    ax.legend()
    fig.tight_layout()
    # In the temporary directory: running the example leaves nothing behind.
    figure_path = Path(tempfile.gettempdir()) / "sktransfer_tune_lambda.png"
    fig.savefig(figure_path, dpi=100)
    print(f"saved {figure_path}")

# %%
# What to read from it
# --------------------
# On this task the validation score is flat for small λ and falls for large
# λ: the digits 5-9 need features the network did not learn from 0-4, and
# holding the weights at their source values costs accuracy. The search
# therefore picks a small λ (often 0, plain fine-tuning). On a task closer to
# the source the curve rises before it falls; either way the grid search,
# run on the target training data only, finds out instead of assuming.

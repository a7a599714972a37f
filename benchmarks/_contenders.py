"""The contenders of the accuracy suite: named factories of unfitted estimators.

A :class:`Contender` has a name, a role (what the summary compares it as) and
a factory ``make(task, seed)`` that returns an unfitted estimator for that
task, or None where the contender does not apply to the task.
New contenders are one line each::

    Contender("fine-tune, lr 1e-4", TRANSFER, network(*FINE_TUNED, lr=1e-4))

and :func:`expand_grid` turns a dict of parameter lists into one contender
per combination, for sweeps of default settings.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import ParameterGrid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sktransfer import (
    AutoTransferClassifier,
    AutoTransferRegressor,
    FineTunedClassifier,
    FineTunedRegressor,
    KnowledgeRegularizedClassifier,
    KnowledgeRegularizedRegressor,
    PretrainedFeatureTransformer,
    SourceModelClassifier,
    SourceModelRegressor,
)

__all__ = [
    "BASELINE",
    "DEFAULT_CONTENDERS",
    "FINE_TUNED",
    "KNOWLEDGE_REGULARIZED",
    "SOURCE",
    "TRANSFER",
    "Contender",
    "expand_grid",
    "features_then_linear",
    "linear_on_raw_inputs",
    "network",
    "untouched_source",
]

# Roles: what the summary compares a contender as.
TRANSFER = "transfer"
BASELINE = "baseline"  # non-transfer: what a user would do without the source
SOURCE = "source"  # the untouched source network


FINE_TUNED = (FineTunedClassifier, FineTunedRegressor)
KNOWLEDGE_REGULARIZED = (KnowledgeRegularizedClassifier, KnowledgeRegularizedRegressor)


@dataclass(frozen=True)
class Contender:
    """One row of the suite's tables.

    Attributes
    ----------
    name : str
        Unique; a contender named as the runner's ``--auto`` (default
        ``"Auto"``) fills the summary's automatic-choice column.
    role : {"transfer", "baseline", "source"}
    make : callable
        ``make(task, seed)`` -> unfitted estimator, or None (not applicable
        to this task).
    is_default : bool
        The package's default settings: flagged when below the untouched
        source where label spaces match.
    """

    name: str
    role: str
    make: Callable
    is_default: bool = False


def network(classifier, regressor, *, when=None, with_source_classes=False, **params):
    """Factory of a network estimator built on the task's source.

    Parameters
    ----------
    classifier, regressor : estimator class or None
        Used for classification and regression tasks; None: not applicable.
    when : callable or None
        ``when(task)`` -> bool: the contender applies to the task.
    with_source_classes : bool
        Also pass ``source_classes=task.source_classes`` (classification
        tasks whose source outputs are labelled), as a user who knows them
        would.
    **params
        Constructor parameters; ``random_state`` is the seed.
    """

    def make(task, seed):
        estimator_class = classifier if task.kind == "classification" else regressor
        if estimator_class is None or (when is not None and not when(task)):
            return None
        task_params = {}
        if with_source_classes and task.kind == "classification":
            task_params["source_classes"] = task.source_classes
        return estimator_class(task.source, random_state=seed, **task_params, **params)

    return make


def untouched_source(task, seed):
    """The source network as it is, where its outputs mean the target's labels."""
    if not task.same_label_space:
        return None
    if task.kind == "classification":
        return SourceModelClassifier(task.source, source_classes=task.source_classes)
    return SourceModelRegressor(task.source)


def flatten_samples(X):
    """(n, ...) -> (n, features): what a plain scikit-learn model reads."""
    return np.asarray(X).reshape(len(X), -1)


def _linear_model(task, seed):
    if task.kind == "classification":
        return LogisticRegression(max_iter=1000, random_state=seed)
    return RidgeCV(alphas=np.logspace(-3, 3, 13))


def linear_on_raw_inputs(task, seed):
    """Standardised raw inputs into a logistic regression / ridge (tabular tasks)."""
    if not task.tabular:
        return None
    return make_pipeline(
        FunctionTransformer(flatten_samples),
        StandardScaler(),
        _linear_model(task, seed),
    )


def features_then_linear(task, seed):
    """The frozen source's penultimate features into a logistic regression / ridge."""
    return make_pipeline(
        PretrainedFeatureTransformer(task.source),
        StandardScaler(),
        _linear_model(task, seed),
    )


def head_widths_match(task):
    """The source head has one output per target class (or output)."""
    with torch.inference_mode():
        width = task.source(torch.as_tensor(task.X[:1])).shape[1]
    n_outputs = 1 if task.kind == "regression" else np.unique(task.y).shape[0]
    return width == n_outputs


def expand_grid(name, role, estimators, param_grid, **fixed):
    """One contender per combination of ``param_grid``.

    Parameters
    ----------
    name : str
        Prefix of the contenders' names; each appends its settings, e.g.
        ``"fine-tune lr=0.0001 max_epochs=60"``.
    role : {"transfer", "baseline", "source"}
    estimators : (classifier, regressor)
        As in :func:`network`, e.g. :data:`FINE_TUNED`.
    param_grid : dict of list or list of such dicts
        As in :class:`sklearn.model_selection.ParameterGrid`.
    **fixed
        Parameters shared by every contender (``when=`` included).

    Returns
    -------
    contenders : list of Contender
    """
    return [
        Contender(
            f"{name} " + " ".join(f"{key}={value!r}" for key, value in params.items()),
            role,
            network(*estimators, **fixed, **params),
        )
        for params in ParameterGrid(param_grid)
    ]


# Today's strategies with the package's defaults, and the two floors every
# default must clear: the untouched source and the non-transfer baselines.
DEFAULT_CONTENDERS = [
    Contender("untouched source", SOURCE, untouched_source),
    Contender("linear on raw inputs", BASELINE, linear_on_raw_inputs),
    Contender("scratch", BASELINE, network(*FINE_TUNED, reinitialize=True)),
    Contender(
        "scratch, 100 epochs",
        BASELINE,
        network(*FINE_TUNED, reinitialize=True, max_epochs=100),
    ),
    Contender("fine-tune (defaults)", TRANSFER, network(*FINE_TUNED), is_default=True),
    Contender("fine-tune, new head", TRANSFER, network(*FINE_TUNED, head="new")),
    Contender(
        "fine-tune, head reused",
        TRANSFER,
        network(*FINE_TUNED, head="reuse", when=head_widths_match),
    ),
    Contender(
        "L2-SP λ=0.01",
        TRANSFER,
        network(*KNOWLEDGE_REGULARIZED, knowledge="l2sp", lam=0.01),
    ),
    Contender(
        "L2-SP λ=1",
        TRANSFER,
        network(*KNOWLEDGE_REGULARIZED, knowledge="l2sp", lam=1.0),
    ),
    Contender("features + linear", TRANSFER, features_then_linear),
    Contender(
        "Auto",
        TRANSFER,
        network(
            AutoTransferClassifier, AutoTransferRegressor, with_source_classes=True
        ),
    ),
]

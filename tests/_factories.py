"""One instance factory per public estimator, shared by the reliability tests.

The estimators are discovered from ``sktransfer.__all__``, so that the bad
input, persistence, reproducibility and CUDA matrices cover every public
estimator: a new one joins them all with one entry in ``FACTORIES`` (and, if
its ``fit`` needs more than ``X, y``, one in ``FIT_PARAMS``; if its factory
sets parameters that JSON cannot hold, one in ``LOAD_PARAMS``), and
``test_every_public_estimator_has_a_factory`` fails until it has one.
"""

import contextlib
import copy
import inspect
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import BaseEstimator, is_classifier, is_regressor

import sktransfer
from sktransfer import (
    AutoTransferClassifier,
    AutoTransferRegressor,
    DistilledClassifier,
    DistilledRegressor,
    DomainAdaptationClassifier,
    DomainAdaptationRegressor,
    FineTunedClassifier,
    FineTunedRegressor,
    FusionClassifier,
    FusionRegressor,
    JointTrainingClassifier,
    JointTrainingRegressor,
    KnowledgeRegularizedClassifier,
    KnowledgeRegularizedRegressor,
    PretrainedFeatureTransformer,
    PseudoLabelingClassifier,
    SourceData,
    SourceModelClassifier,
    SourceModelRegressor,
    UnlabeledData,
    load_fitted,
)

N_FEATURES = 4

# Tiny nets, few epochs, full batches: hundreds of fits must stay fast.
_FAST = {"max_epochs": 3, "lr": 0.01, "batch_size": 16, "random_state": 0}
# A small portfolio on two splits: every candidate family that reads the
# frozen source, one that trains it, and a baseline.
_AUTO = {
    "strategies": ["source", "linear", "features", "fine_tune"],
    "cv": 2,
    **_FAST,
}

# factory(source) -> an unfitted estimator that trains in well under a second.
FACTORIES = {
    PretrainedFeatureTransformer: lambda source: PretrainedFeatureTransformer(
        source, batch_size=16
    ),
    FineTunedClassifier: lambda source: FineTunedClassifier(source, **_FAST),
    FineTunedRegressor: lambda source: FineTunedRegressor(source, **_FAST),
    KnowledgeRegularizedClassifier: lambda source: KnowledgeRegularizedClassifier(
        source, knowledge="l2sp", lam=0.1, **_FAST
    ),
    KnowledgeRegularizedRegressor: lambda source: KnowledgeRegularizedRegressor(
        source, knowledge="features", lam=0.1, **_FAST
    ),
    # The student has the source's architecture (its own copy); a new head
    # fits any number of target classes.
    DistilledClassifier: lambda source: DistilledClassifier(
        source, source, head="new", **_FAST
    ),
    DistilledRegressor: lambda source: DistilledRegressor(
        source, source, head="new", **_FAST
    ),
    FusionClassifier: lambda source: FusionClassifier(source, fusion="concat", **_FAST),
    FusionRegressor: lambda source: FusionRegressor(source, fusion="concat", **_FAST),
    JointTrainingClassifier: lambda source: JointTrainingClassifier(
        source, source_weight=0.5, **_FAST
    ),
    # The test sources have a 3-way classifier head: the source task is theirs.
    JointTrainingRegressor: lambda source: JointTrainingRegressor(
        source, source_weight=0.5, source_task="classification", **_FAST
    ),
    SourceModelClassifier: lambda source: SourceModelClassifier(source, batch_size=16),
    # Its y has one column per source output: see TARGETS.
    SourceModelRegressor: lambda source: SourceModelRegressor(source, batch_size=16),
    AutoTransferClassifier: lambda source: AutoTransferClassifier(source, **_AUTO),
    AutoTransferRegressor: lambda source: AutoTransferRegressor(source, **_AUTO),
    DomainAdaptationClassifier: lambda source: DomainAdaptationClassifier(
        source, method="dann", **_FAST
    ),
    DomainAdaptationRegressor: lambda source: DomainAdaptationRegressor(
        source, method="coral", **_FAST
    ),
    # One round: its input checks are the fine-tuned classifier's.
    PseudoLabelingClassifier: lambda source: PseudoLabelingClassifier(
        FineTunedClassifier(source, **_FAST), max_rounds=1, threshold=0.5
    ),
}


def _joint_source_data(X, y):
    """The target inputs again, as source data labelled for the 3-way source head.

    Bad input in X reaches the source data too, which is what a user who
    builds both from one messy table would see.
    """
    n_rows = np.shape(X)[0] if np.ndim(X) else 0
    return {"source_data": SourceData(X, np.arange(n_rows) % 3)}


def _unlabeled_data(X, y):
    """The target inputs again, as unlabelled data (bad input reaches them too)."""
    return {"unlabeled_data": UnlabeledData(X)}


# fit_params(X, y) -> extra keyword arguments of fit, for estimators that need
# more than the target data (e.g. source data).
FIT_PARAMS = {
    JointTrainingClassifier: _joint_source_data,
    JointTrainingRegressor: _joint_source_data,
    PseudoLabelingClassifier: _unlabeled_data,
    DomainAdaptationClassifier: _unlabeled_data,
    DomainAdaptationRegressor: _unlabeled_data,
}

# load_params(source) -> keyword arguments of load_fitted besides source_module:
# the factory's parameters that save_fitted cannot store as JSON (networks
# other than the source), passed again as a user would.
LOAD_PARAMS = {
    DistilledClassifier: lambda source: {"student_module": source},
    DistilledRegressor: lambda source: {"student_module": source},
}


def public_estimators():
    return sorted(
        (
            obj
            for name in sktransfer.__all__
            if inspect.isclass(obj := getattr(sktransfer, name))
            and issubclass(obj, BaseEstimator)
        ),
        key=lambda cls: cls.__name__,
    )


def estimator_params(classes=None):
    """pytest params over the public estimators, one id per class name."""
    return [
        pytest.param(cls, id=cls.__name__)
        for cls in (classes if classes is not None else public_estimators())
    ]


def network_estimators():
    """Public estimators that train a network (those with ``module_``)."""
    return [cls for cls in public_estimators() if "random_state" in _params(cls)]


# save_fitted writes sktransfer's own networks; AutoTransfer*'s choice can be
# any scikit-learn model (a linear pipeline), which it cannot write without
# pickling: it refuses them, naming what to save instead (test_persistence.py).
SAVE_FITTED_UNSUPPORTED = {
    AutoTransferClassifier,
    AutoTransferRegressor,
    PseudoLabelingClassifier,
}


def saveable_estimators():
    """Public estimators that save_fitted writes."""
    return [cls for cls in public_estimators() if cls not in SAVE_FITTED_UNSUPPORTED]


def _params(cls):
    return inspect.signature(cls.__init__).parameters


def make(cls, source=None, **settings):
    """An instance of ``cls`` from its factory, with ``settings`` it accepts."""
    if cls not in FACTORIES:
        pytest.fail(f"Add a factory for {cls.__name__} to tests/_factories.py.")
    estimator = FACTORIES[cls](mlp_source() if source is None else source)
    accepted = estimator.get_params(deep=False)
    if "estimator" in accepted:
        # A wrapper (PseudoLabelingClassifier): the settings are its
        # estimator's, set as a user would, through set_params.
        inner = estimator.estimator.get_params(deep=False)
        return estimator.set_params(
            **{f"estimator__{name}": v for name, v in settings.items() if name in inner}
        )
    return estimator.set_params(
        **{name: value for name, value in settings.items() if name in accepted}
    )


def kind(estimator):
    if is_classifier(estimator):
        return "classifier"
    if is_regressor(estimator):
        return "regressor"
    return "transformer"


def mlp_source(n_features=N_FEATURES, n_outputs=3):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(n_features, 8),
        torch.nn.ReLU(),
        torch.nn.Linear(8, n_outputs),
    )


def conv_source():
    """Reads (n, 1, 8, 8) images; its linear head fixes the image size."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, kernel_size=3),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(2 * 6 * 6, 3),
    )


class EmbeddingSource(torch.nn.Module):
    """Reads integer ids from 0 to 9."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embedding = torch.nn.Embedding(10, 4)
        self.head = torch.nn.Linear(4, 3)

    def forward(self, ids):
        return self.head(self.embedding(ids).mean(dim=1))


def _three_columns(y):
    """One target per output of the 3-output test sources."""
    y = np.asarray(y)
    return (
        np.stack([y, -0.5 * y, 0.1 * y], axis=1)
        if y.dtype.kind in "iuf"
        else (np.stack([y, y, y], axis=1))
    )


# shape(y) -> the y an estimator fits: the untouched source predicts exactly
# one column per output of the source, three for the test sources.
TARGETS = {SourceModelRegressor: _three_columns}


def targets(estimator, y):
    """``y`` shaped for ``estimator`` (unchanged for almost every estimator)."""
    return TARGETS.get(type(estimator), lambda y: y)(y)


def data(estimator, n_samples=30, n_features=N_FEATURES, seed=0):
    """Float32 X and a y that suits the estimator (3 classes, or values)."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_samples, n_features)).astype(np.float32)
    labels = np.arange(n_samples) % 3
    if kind(estimator) == "regressor":
        return X, targets(estimator, X[:, 0] - 0.5 * X[:, 1] + 0.1 * labels)
    return X, labels


def fit_params(estimator, X, y):
    """The extra fit parameters ``estimator`` needs for (X, y) (often none)."""
    return FIT_PARAMS.get(type(estimator), lambda X, y: {})(X, y)


def fit(estimator, X, y, **kwargs):
    return estimator.fit(X, y, **fit_params(estimator, X, y), **kwargs)


def load(estimator_class, directory, source=None, **params):
    """``load_fitted`` of what ``make(estimator_class, source)`` saved."""
    source = mlp_source() if source is None else source
    again = LOAD_PARAMS.get(estimator_class, lambda source: {})(source)
    return load_fitted(directory, source_module=source, **again, **params)


def outputs(estimator, X):
    """What the fitted estimator computes: features, probabilities or values."""
    if hasattr(estimator, "transform"):
        return estimator.transform(X)
    if hasattr(estimator, "predict_proba"):
        return estimator.predict_proba(X)
    return estimator.predict(X)


def predict_or_transform(estimator, X):
    if hasattr(estimator, "transform"):
        return estimator.transform(X)
    return estimator.predict(X)


def _snapshot(obj):
    if isinstance(obj, torch.nn.Module):
        return {name: t.detach().clone() for name, t in obj.state_dict().items()}
    if isinstance(obj, Path):
        return _file_contents(obj)
    return copy.deepcopy(obj)


def _file_contents(path):
    """A file's bytes, or a directory's files and their bytes."""
    if path.is_dir():
        return {
            p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()
        }
    return path.read_bytes() if path.exists() else None


def _same(before, after):
    if isinstance(after, Path):
        return _file_contents(after) == before
    if isinstance(after, torch.nn.Module):
        state = after.state_dict()
        return state.keys() == before.keys() and all(
            torch.equal(before[name], state[name]) for name in before
        )
    if isinstance(after, (pd.DataFrame, pd.Series)):
        return after.equals(before)
    if isinstance(after, np.ndarray):
        return (
            after.dtype == before.dtype
            and after.shape == before.shape
            and np.array_equal(after, before, equal_nan=after.dtype.kind == "f")
        )
    if hasattr(after, "toarray"):  # scipy sparse
        return (after != before).nnz == 0
    return after == before


@contextlib.contextmanager
def unchanged(**objects):
    """Assert that nothing the user passed was modified, error or not.

    Arrays, frames, networks (their tensors), files and directories (their
    bytes, given as a ``pathlib.Path``) are compared with what they held.
    """
    before = {name: _snapshot(obj) for name, obj in objects.items()}
    try:
        yield
    finally:
        for name, obj in objects.items():
            assert _same(before[name], obj), f"{name} was modified"


class TrainingRowsSpy(FineTunedClassifier):
    """Records how many rows each fit trains on, in ``fits`` (shared)."""

    fits = []

    def _fit_guarded(self, X, y, sample_weight, **fit_options):
        self.fits.append(len(X))
        return super()._fit_guarded(X, y, sample_weight, **fit_options)

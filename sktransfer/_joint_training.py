"""Joint (multi-task) training on target and source data with a shared body."""

from numbers import Real

import numpy as np
import torch
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from torch import nn

from ._core import TRAINING_CONSTRAINTS, NetworkEstimator
from ._data import InMemoryDataset, endless_batches, steps_covering, weighted_mean
from ._docstrings import TRAINING, Substitution
from ._heads import forward_probe, logits_head, new_head, output_width
from ._linear_probe import fit_linear_probe
from ._modules import BodyHeadModule
from ._plan import TrainingPlan
from ._saved_attributes import count
from ._source import split_network
from ._source_classes import check_source_classes
from ._targets import ClassifierTargetsMixin, RegressorTargetsMixin
from ._training_checks import check_batch_norm_batches
from ._unlabeled import extra_inputs
from ._validation import (
    check_sample_weight,
    network_dtype,
)

# check_source_data is imported by name: the loader of saved estimators
# reads __all__ as the list of estimator classes a file may name.
__all__ = ["JointTrainingClassifier", "JointTrainingRegressor", "SourceData"]


class SourceData:
    """Labelled source rows, kept whole through cross-validation.

    Read by :class:`JointTrainingClassifier` / ``Regressor`` (the source
    task trained alongside the target's),
    :class:`~sktransfer.adaptation.TrAdaBoostClassifier` / ``Regressor`` and
    :class:`AutoTransferClassifier` / ``Regressor`` (source rows that train
    every candidate and are never scored).

    A plain container, deliberately *not* array-like (no ``len``, ``shape``
    or ``__array__``): scikit-learn's cross-validation and grid search cut
    every array-like fit parameter as long as ``X`` into the fold's rows, and
    source data that happened to have as many rows as the target data would
    be cut along with it. Wrapped, it reaches every fit whole.

    Parameters
    ----------
    X : array-like of shape (n_source_samples, ...)
        Source inputs, shaped and scaled like the target's ``X``.
    y : array-like of shape (n_source_samples,) or (n_source_samples, n_outputs)
        For joint training: source labels, each one of the source network's
        classes (see ``source_classes`` of :class:`JointTrainingClassifier`),
        or source values for a regression source task
        (``source_task="regression"``). For TrAdaBoost and AutoTransfer:
        labels in the target's label space (each one of the target ``y``'s
        classes), or values of the target's outputs.
    sample_weight : array-like of shape (n_source_samples,), default=None
        Weights of the source rows in the source loss; None weighs them
        equally. Down-weighting source rows unlike the target's is a form of
        instance (data) transfer.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import SourceData
    >>> SourceData(np.zeros((100, 4)), np.zeros(100))
    SourceData(X: (100, 4), y: (100,), sample_weight: None)
    """

    def __init__(self, X, y, sample_weight=None):
        self.X = X
        self.y = y
        self.sample_weight = sample_weight

    def __repr__(self):
        def shape(value):
            return None if value is None else np.shape(value)

        return (
            f"SourceData(X: {shape(self.X)}, y: {shape(self.y)}, "
            f"sample_weight: {shape(self.sample_weight)})"
        )


def check_source_data(source_data):
    """Refuse ``source_data`` that is not a :class:`SourceData`."""
    if not isinstance(source_data, SourceData):
        raise TypeError(
            "source_data must be a SourceData(X_source, y_source, "
            f"sample_weight=None); got {type(source_data).__name__}. The "
            "wrapper keeps the source rows whole inside cross-validation, "
            "which cuts array-like fit parameters into folds."
        )


class _JointModule(BodyHeadModule):
    """``head(body(x))`` for the target; ``source_head(body(x))`` for the source."""

    def __init__(self, body, head, source_head):
        super().__init__(body, head)
        self.source_head = source_head


class _SourceTask:
    """The source task's loss on one source batch per training step.

    A knowledge term (see :mod:`sktransfer.knowledge`) whose knowledge is the
    source data: source batches come from an endless stream, reshuffled every
    pass, so a source smaller than the target data is cycled and a larger
    one is seen once per epoch (the plan runs as many steps as the larger
    needs). The loss is weighted by the source rows' weights.
    """

    weight_name = "source_weight"

    def __init__(self, dataset, batch_size, generator, loss):
        self._stream = endless_batches(dataset, batch_size, generator)
        self._loss = loss

    def __call__(self, module, inputs, features, outputs, index):
        source_inputs, targets = next(self._stream)
        predicted = module.source_head(module.body(source_inputs))
        per_sample = self._loss(predicted, targets.y)
        if per_sample.ndim > 1:
            per_sample = per_sample.flatten(start_dim=1).mean(dim=1)
        return weighted_mean(per_sample, targets.sample_weight)

    def release(self):
        self._stream = None


class _JointTraining(NetworkEstimator):
    """One body, the source head on the source data, a new head on the target."""

    _saved_attributes = {"n_source_samples_": count(0)}

    _parameter_constraints = {
        **TRAINING_CONSTRAINTS,
        "source_weight": [Interval(Real, 0, None, closed="left")],
        "source_classes": ["array-like", None],
        "source_task": [StrOptions({"classification", "regression"})],
    }

    # No other estimator consumes it: requested by default under routing.
    __metadata_request__fit = {"source_data": True}

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, source_data=None):
        """Train on the target data (X, y) and the source data together.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, ...)
            Target inputs the source network accepts.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target labels (classifier) or values (regressor).
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the target rows.
        source_data : SourceData, default=None
            The source task's inputs, labels and optional weights. Needed
            unless ``source_weight=0``.

        Returns
        -------
        self : object
        """
        if source_data is not None:
            check_source_data(source_data)
        if source_data is None and self.source_weight > 0:
            raise ValueError(
                f"{type(self).__name__} trains on source data too: pass "
                "fit(X, y, source_data=SourceData(X_source, y_source)), or set "
                "source_weight=0 to train on the target data alone. Inside "
                "Pipeline, cross_val_score or GridSearchCV, enable metadata "
                "routing (sklearn.set_config(enable_metadata_routing=True)) "
                "and pass source_data like any fit parameter."
            )
        return self._fit_guarded(X, y, sample_weight, source_data=source_data)

    def _plan(self, source_network, probe, rows, source_data=None):
        body, source_head, source_head_name = split_network(source_network)
        features = forward_probe(body, probe)
        n_source_outputs, source_shape = output_width(source_head, features)
        if n_source_outputs is None and self.source_weight > 0:
            raise ValueError(
                f"Joint training fits the source head {source_head_name!r} to "
                "one source label per sample, so it needs one logit per source "
                "class (outputs of shape (n_source_outputs,)), but on samples "
                f"of shape {tuple(probe.shape[1:])} it gives outputs of shape "
                f"{source_shape} per sample. Layers that act on the last axis "
                "(e.g. Linear) give one row of logits per position of n-D "
                "input: pass X of the sample shape the source network "
                "classifies, or source_weight=0 to train the target head alone."
            )
        source_logits = logits_head(source_head)
        # The source head serves the source task; the target's is always new,
        # and starts as a linear probe on the source features (LP-FT).
        head = new_head(features, self._n_outputs(), network_dtype(body))
        if rows is not None:
            frozen = rows.frozen_outputs(body, source_logits)
            fit_linear_probe(
                head, frozen.features, rows.y, rows.sample_weight, self._task
            )
        module = _JointModule(body, head, source_logits)
        module.train()
        plan = TrainingPlan(
            module,
            self._criterion(),
            fitted={
                "head_choice_": "new",
                "head_choice_reason_": (
                    "joint training keeps the source head for the source task"
                ),
                "n_source_samples_": 0,
            },
        )
        if self.source_weight == 0 or rows is None:
            return plan
        dataset = self._source_dataset(
            source_data, probe, n_source_outputs, source_head_name, source_network
        )
        check_batch_norm_batches(
            module,
            dataset.X[:1],
            len(dataset),
            self.batch_size,
            data="the source data",
        )
        # Drawn from the seeded global generator: the source order is fixed
        # by random_state, and independent of the target batches' generator.
        seed = int(torch.randint(np.iinfo(np.int32).max, (1,)).item())
        loss = (
            nn.CrossEntropyLoss(reduction="none")
            if self.source_task == "classification"
            else nn.MSELoss(reduction="none")
        )
        plan.terms = [
            (
                self.source_weight,
                _SourceTask(
                    dataset, self.batch_size, torch.Generator().manual_seed(seed), loss
                ),
            )
        ]
        plan.steps_per_epoch = steps_covering(self.batch_size, rows.data, dataset)
        plan.fitted["n_source_samples_"] = len(dataset)
        return plan

    def _source_dataset(
        self, source_data, probe, n_source_outputs, head_name, source_network
    ):
        """The validated source data, as tensors on the training device."""
        X_source = extra_inputs(source_data.X, probe, "SourceData's X", source_network)
        y_source = np.asarray(source_data.y)
        if y_source.shape[0] != X_source.shape[0]:
            raise ValueError(
                f"The source data's X has {X_source.shape[0]} rows but its y has "
                f"{y_source.shape[0]}."
            )
        weight = check_sample_weight(
            source_data.sample_weight, X_source, name="SourceData's sample_weight"
        )
        codes = self._encode_source_targets(y_source, n_source_outputs, head_name)
        return InMemoryDataset(
            torch.tensor(X_source, dtype=probe.dtype, device=self.device),
            torch.tensor(codes, device=self.device),
            torch.tensor(weight, device=self.device),
        )

    def _encode_source_targets(self, y_source, n_outputs, head_name):
        where = f"the source head {head_name!r}"
        if self.source_task == "regression":
            values = np.asarray(y_source, dtype=np.float32).reshape(
                y_source.shape[0], -1
            )
            if values.shape[1] != n_outputs:
                raise ValueError(
                    f"The source data's y has {values.shape[1]} columns, but "
                    f"{where} has {n_outputs} outputs: one per column is needed."
                )
            return values
        if y_source.ndim != 1:
            raise ValueError(
                "The source data's y must be one label per row for "
                f"source_task='classification'; got shape {y_source.shape}."
            )
        check_classification_targets(y_source)
        labels, inverse = np.unique(y_source, return_inverse=True)
        if self.source_classes is None:
            if labels.shape[0] != n_outputs:
                raise ValueError(
                    f"The source data hold {labels.shape[0]} distinct labels "
                    f"but {where} has {n_outputs} outputs; pass source_classes, "
                    "the label of each output in order."
                )
            return inverse.astype(np.int64)
        source_classes = check_source_classes(self.source_classes, n_outputs, where)
        lookup = {label: i for i, label in enumerate(source_classes)}
        unknown = [label for label in labels.tolist() if label not in lookup]
        if unknown:
            raise ValueError(
                f"The source labels {unknown} are not among source_classes "
                f"{source_classes}."
            )
        codes = np.array([lookup[label] for label in labels.tolist()], np.int64)
        return codes[inverse]


@Substitution(training=TRAINING)
class JointTrainingClassifier(ClassifierTargetsMixin, ClassifierMixin, _JointTraining):
    r"""Train the source network on the target task and its own task at once.

    Joint (multi-task) training with source data: the source network's body
    is shared by two heads, the source's own head (reused, so it starts from
    what it knows) and a new head for the target classes. Each training step
    takes one batch of target data :math:`B_t` and one batch of source data
    :math:`B_s` and minimises

    .. math::

        \frac{{\sum_{{i\in B_t}} w_i\,\mathrm{{CE}}(y_i, h_t(\phi(x_i)))}}
             {{\sum_{{i\in B_t}} w_i}}
        + \text{{source\_weight}}\cdot
        \frac{{\sum_{{j\in B_s}} v_j\,\mathrm{{CE}}(y^s_j, h_s(\phi(x^s_j)))}}
             {{\sum_{{j\in B_s}} v_j}}

    so the body keeps serving the source task while it adapts to the target
    one, which counters overfitting a small target set. An epoch runs as
    many steps as the larger of the two data sets has batches; the smaller
    one is cycled, reshuffled at every pass. Only the target head predicts.

    Source data are passed to ``fit`` as ``source_data=SourceData(X_source,
    y_source, sample_weight=None)``. The :class:`SourceData` wrapper keeps
    them whole inside ``cross_val_score``, ``GridSearchCV`` and the like,
    which cut every array-like fit parameter as long as ``X`` into folds.
    With metadata routing enabled
    (``sklearn.set_config(enable_metadata_routing=True)``), ``source_data``
    is requested by default, so ``Pipeline(...).fit(X, y,
    source_data=...)``, ``cross_val_score(..., params={{"source_data": ...}})``
    and ``GridSearchCV(...).fit(X, y, source_data=...)`` work unchanged. In a
    ``Pipeline``, the steps before this estimator do **not** transform the
    source data: pass it already preprocessed.

    Parameters
    ----------
    source_module : torch.nn.Module, fitted skorch net, or callable
        The pretrained network; its final layer with parameters is the source
        head. A private copy is trained; the object you pass is never
        modified.
    source_weight : float, default=1.0
        Weight of the source loss. 0 trains on the target data alone (plain
        fine-tuning with a new head; source data are then ignored and may
        be omitted).
    source_classes : array-like of shape (n_source_outputs,) or None, default=None
        The label of each of the source head's outputs, in output order.
        None: the sorted distinct labels of the source data's ``y``, which
        must then be as many as the source head's outputs.
    source_weights : str or os.PathLike, default=None
        A ``.safetensors`` or torch state-dict file loaded into the copy of
        the source network.
    source_task : {{"classification", "regression"}}, default="classification"
        What the source head and the source data's ``y`` are: class labels
        (cross-entropy) or values (squared error).
    {training}

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Target class labels, in the order of the target head's outputs.
    n_source_samples_ : int
        Source rows trained on (0 when ``source_weight=0``).
    head_choice_ : "new"
        The target head is always a new linear layer with one output per
        class, started as a linear probe on the source features (the source
        head keeps serving the source task); named like the head policy of
        the other estimators.
    head_choice_reason_ : str
    module_ : torch.nn.Module
        The fitted network: ``body``, ``head`` (target) and ``source_head``.
    net_ : skorch.NeuralNet
        The skorch net that trained ``module_``.
    history_ : skorch.History
        Losses per epoch; ``train_loss`` includes the source loss.
    n_iter_ : int
        Number of epochs trained.
    n_features_in_ : int
        Number of features (2-D input) or channels (n-D input) seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names of a DataFrame passed to ``fit``.

    See Also
    --------
    JointTrainingRegressor : the same for a regression target.
    SourceData : the container of the source data.
    KnowledgeRegularizedClassifier : keep the source's knowledge without
        source data.

    References
    ----------
    Caruana, "Multitask Learning", Machine Learning 28, 1997.

    Examples
    --------
    >>> import torch
    >>> from sklearn.datasets import load_iris
    >>> from sktransfer import JointTrainingClassifier, SourceData
    >>> X, y = load_iris(return_X_y=True)
    >>> X_source, y_source = X[:, ::-1], y  # a stand-in for a related task
    >>> source = torch.nn.Sequential(
    ...     torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> clf = JointTrainingClassifier(
    ...     source, source_weight=0.5, max_epochs=20, lr=0.01, random_state=0)
    >>> clf.fit(X, y, source_data=SourceData(X_source, y_source)).n_source_samples_
    150
    >>> clf.predict(X[:3]).shape
    (3,)
    """

    def __init__(
        self,
        source_module,
        *,
        source_weight=1.0,
        source_classes=None,
        source_task="classification",
        source_weights=None,
        max_epochs="auto",
        lr=1e-3,
        batch_size=32,
        optimizer=torch.optim.Adam,
        optimizer_kwargs=None,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        callbacks=None,
        net_params=None,
        augmentation=None,
        device="cpu",
        random_state=None,
        verbose=0,
    ):
        self.source_module = source_module
        self.source_weight = source_weight
        self.source_classes = source_classes
        self.source_task = source_task
        self.source_weights = source_weights
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.optimizer_kwargs = optimizer_kwargs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.callbacks = callbacks
        self.net_params = net_params
        self.augmentation = augmentation
        self.device = device
        self.random_state = random_state
        self.verbose = verbose


@Substitution(training=TRAINING)
class JointTrainingRegressor(RegressorTargetsMixin, RegressorMixin, _JointTraining):
    r"""Train the source network on a regression target and its own task at once.

    The regression counterpart of :class:`JointTrainingClassifier`: the
    source network's body is shared by the source's own head, trained on the
    source data (``source_task``: class labels by default for a classifier
    source, or values), and a new linear head for the target's values, started
    as a linear (ridge) probe. Each step minimises the target's weighted
    squared error plus ``source_weight`` times the source task's weighted
    loss on one source batch.

    Parameters
    ----------
    source_module : torch.nn.Module, fitted skorch net, or callable
        The pretrained network; its final layer with parameters is the source
        head. A private copy is trained.
    source_weight : float, default=1.0
        Weight of the source loss; 0 trains on the target data alone.
    source_classes : array-like of shape (n_source_outputs,) or None
        The label of each of the source head's outputs (classification
        source task).
    source_task : {{"classification", "regression"}}, default="regression"
        What the source head and the source data's ``y`` are.
    source_weights : str or os.PathLike, default=None
    {training}

    Attributes
    ----------
    n_outputs_ : int
        Number of target columns.
    n_source_samples_ : int
    head_choice_ : "new"
    head_choice_reason_ : str
    module_ : torch.nn.Module
        The fitted network: ``body``, ``head`` (target) and ``source_head``.
    net_ : skorch.NeuralNet
    history_ : skorch.History
    n_iter_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    See Also
    --------
    JointTrainingClassifier : the same for a classification target.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from sktransfer import JointTrainingRegressor, SourceData
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(60, 3)).astype("float32")
    >>> y = X @ np.array([1.0, -2.0, 0.5])
    >>> X_source = rng.normal(size=(200, 3)).astype("float32")
    >>> y_source = X_source @ np.array([1.0, -1.5, 0.5])
    >>> source = torch.nn.Sequential(
    ...     torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    >>> reg = JointTrainingRegressor(source, lr=0.01, random_state=0)
    >>> reg.fit(X, y, source_data=SourceData(X_source, y_source)).n_source_samples_
    200
    """

    def __init__(
        self,
        source_module,
        *,
        source_weight=1.0,
        source_classes=None,
        source_task="regression",
        source_weights=None,
        max_epochs="auto",
        lr=1e-3,
        batch_size=32,
        optimizer=torch.optim.Adam,
        optimizer_kwargs=None,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        callbacks=None,
        net_params=None,
        augmentation=None,
        device="cpu",
        random_state=None,
        verbose=0,
    ):
        self.source_module = source_module
        self.source_weight = source_weight
        self.source_classes = source_classes
        self.source_task = source_task
        self.source_weights = source_weights
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.optimizer_kwargs = optimizer_kwargs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.callbacks = callbacks
        self.net_params = net_params
        self.augmentation = augmentation
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

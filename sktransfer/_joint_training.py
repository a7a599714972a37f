"""Joint (multi-task) training on target and source data with a shared body."""

from numbers import Real

import numpy as np
import torch
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils import check_array, column_or_1d
from sklearn.utils._param_validation import Interval
from sklearn.utils.multiclass import check_classification_targets
from torch.nn import functional

from ._engine import (
    BodyHeadModule,
    InMemoryDataset,
    count_batches,
    endless_batches,
)
from ._linear_probe import fit_linear_probe
from ._network_estimator import ClassifierTargetsMixin, _output_width, logits_head
from ._saved_attributes import count
from ._strategy import (
    TRAINING_CONSTRAINTS,
    TRAINING_PARAMETERS,
    MultiNetworkEstimator,
    new_head,
    probe_network,
    split_network,
)
from ._training_checks import check_batch_norm_batches
from ._validation import (
    check_object_values,
    check_representable,
    check_sample_weight,
    network_dtype,
)

__all__ = ["JointTrainingClassifier", "SourceData"]


class SourceData:
    """Source-task data for :class:`JointTrainingClassifier`, kept whole.

    A plain container, deliberately *not* array-like (no ``len``, ``shape``
    or ``__array__``): scikit-learn's cross-validation and grid search cut
    every array-like fit parameter as long as ``X`` into the fold's rows, and
    source data that happened to have as many rows as the target data would
    be cut along with it. Wrapped, it reaches every fit whole.

    Parameters
    ----------
    X : array-like of shape (n_source_samples, ...)
        Source inputs, shaped and scaled like the target's ``X``.
    y : array-like of shape (n_source_samples,)
        Source labels: each is one of the source network's classes (see
        ``source_classes`` of :class:`JointTrainingClassifier`).
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


class _JointModule(BodyHeadModule):
    """``head(body(x))`` for the target; ``source_head(body(x))`` for the source."""

    def __init__(self, body, head, source_head):
        super().__init__(body, head)
        self.source_head = source_head


class _SourceTaskLoss:
    """``source_weight · weighted CE`` on one source batch per training step.

    Source batches come from an endless stream, reshuffled every pass, so a
    source smaller than the target data is cycled and a larger one is seen
    once per epoch (the engine runs as many steps as the larger needs).
    """

    weight_name = "source_weight"

    def __init__(self, weight, dataset, batch_size, generator):
        self.weight = weight
        self.n_batches = count_batches(dataset, batch_size)
        self._stream = endless_batches(dataset, batch_size, generator)

    def __call__(self, module, inputs, features, outputs, index):
        source_inputs, targets = next(self._stream)
        logits = module.source_head(module.body(source_inputs))
        per_sample = functional.cross_entropy(logits, targets.y, reduction="none")
        weight = targets.sample_weight
        if weight is None:  # equal weights: the batches leave them out
            return self.weight * per_sample.mean()
        loss = (per_sample * weight).sum() / weight.sum().clamp_min(
            torch.finfo(weight.dtype).tiny
        )
        return self.weight * loss

    def release(self):
        self._stream = None


class JointTrainingClassifier(
    ClassifierTargetsMixin, ClassifierMixin, MultiNetworkEstimator
):
    r"""Train the source network on the target task and its own task at once.

    Joint (multi-task) training with source data: the source network's body
    is shared by two heads, the source's own head (reused, so it starts from
    what it knows) and a new head for the target classes. Each training step
    takes one batch of target data :math:`B_t` and one batch of source data
    :math:`B_s` and minimises

    .. math::

        \frac{\sum_{i\in B_t} w_i\,\mathrm{CE}(y_i, h_t(\phi(x_i)))}
             {\sum_{i\in B_t} w_i}
        + \text{source\_weight}\cdot
        \frac{\sum_{j\in B_s} v_j\,\mathrm{CE}(y^s_j, h_s(\phi(x^s_j)))}
             {\sum_{j\in B_s} v_j}

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
    source_data=...)``, ``cross_val_score(..., params={"source_data": ...})``
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
    {training}
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Target class labels, in the order of the target head's outputs.
    n_source_samples_ : int
        Source rows trained on (0 when ``source_weight=0``).
    head_choice_ : "new"
        The target head is always a new linear layer with one output per
        class (the source head keeps serving the source task); named like the
        head policy of the other estimators.
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

    _saved_attributes = {"n_source_samples_": count(0)}

    _parameter_constraints = {
        **TRAINING_CONSTRAINTS,
        "source_weight": [Interval(Real, 0, None, closed="left")],
        "source_classes": ["array-like", None],
    }

    # No other estimator consumes it: requested by default under routing.
    __metadata_request__fit = {"source_data": True}

    _fit_scratch = ("_n_source_outputs",)

    def __init__(
        self,
        source_module,
        *,
        source_weight=1.0,
        source_classes=None,
        source_weights=None,
        max_epochs="auto",
        lr=1e-3,
        batch_size=32,
        optimizer=torch.optim.Adam,
        optimizer_kwargs=None,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        device="cpu",
        random_state=None,
        verbose=0,
    ):
        self.source_module = source_module
        self.source_weight = source_weight
        self.source_classes = source_classes
        self.source_weights = source_weights
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.optimizer_kwargs = optimizer_kwargs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, source_data=None):
        """Train on the target data (X, y) and the source data together.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, ...)
            Target inputs the source network accepts.
        y : array-like of shape (n_samples,)
            Target labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the target rows.
        source_data : SourceData, default=None
            The source task's inputs, labels and optional weights. Needed
            unless ``source_weight=0``.

        Returns
        -------
        self : object
        """
        if source_data is not None and not isinstance(source_data, SourceData):
            raise TypeError(
                "source_data must be a SourceData(X_source, y_source, "
                f"sample_weight=None); got {type(source_data).__name__}. The "
                "wrapper keeps the source data whole inside cross-validation, "
                "which cuts array-like fit parameters into folds."
            )
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

    def _build_module(self, source_network, probe, training_rows=None):
        body, source_head, source_head_name = split_network(source_network)
        features = probe_network(body, probe, "source network")
        self._n_source_outputs, source_shape = _output_width(source_head, features)
        if self._n_source_outputs is None and self.source_weight > 0:
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
        # The source head serves the source task; the target's is always new,
        # and starts as a linear probe on the source features (LP-FT).
        self.head_choice_ = "new"
        self.head_choice_reason_ = (
            "joint training keeps the source head for the source task"
        )
        head = new_head(features, self.classes_.shape[0], network_dtype(body))
        if training_rows is not None:
            frozen = training_rows.frozen_outputs(body, logits_head(source_head))
            fit_linear_probe(
                head,
                frozen.features,
                training_rows.y,
                training_rows.sample_weight,
                "classification",
            )
        module = _JointModule(body, head, logits_head(source_head))
        module.train()
        return module

    def _make_penalty(self, source_reference, train_data, module, source_data=None):
        if self.source_weight == 0:
            self.n_source_samples_ = 0
            return None
        X_source, y_source, weight = self._validate_source_data(
            source_data, train_data.X
        )
        self.n_source_samples_ = X_source.shape[0]
        device = train_data.X.device
        dataset = InMemoryDataset(
            torch.tensor(
                np.ascontiguousarray(X_source), dtype=train_data.X.dtype, device=device
            ),
            torch.tensor(y_source, device=device),
            torch.tensor(weight, device=device),
        )
        check_batch_norm_batches(
            module,
            dataset.X[:1],
            X_source.shape[0],
            self.batch_size,
            data="the source data",
        )
        # Drawn from the seeded global generator: the source order is fixed
        # by random_state, and independent of the target batches' generator.
        seed = int(torch.randint(np.iinfo(np.int32).max, (1,)).item())
        return _SourceTaskLoss(
            self.source_weight,
            dataset,
            self.batch_size,
            torch.Generator().manual_seed(seed),
        )

    def _validate_source_data(self, source_data, X_target):
        integer_input = not X_target.is_floating_point()
        check_object_values(source_data.X, name="SourceData's X")
        X_source = check_array(
            source_data.X,
            dtype=None if integer_input else "numeric",
            allow_nd=True,
            ensure_all_finite=True,
            input_name="X_source",
        )
        if not integer_input:
            check_representable(X_source, X_target.dtype, name="SourceData's X")
        if X_source.shape[1:] != tuple(X_target.shape[1:]):
            raise ValueError(
                f"The source data's X has samples of shape {X_source.shape[1:]}, "
                f"the target's X of shape {tuple(X_target.shape[1:])}; both feed "
                "the same network."
            )
        y_source = column_or_1d(source_data.y)
        if y_source.shape[0] != X_source.shape[0]:
            raise ValueError(
                f"The source data's X has {X_source.shape[0]} rows but its y has "
                f"{y_source.shape[0]}."
            )
        check_classification_targets(y_source)
        weight = check_sample_weight(
            source_data.sample_weight, X_source, name="SourceData's sample_weight"
        )
        return X_source, self._encode_source_labels(y_source), weight

    def _encode_source_labels(self, y_source):
        n_outputs = self._n_source_outputs
        if self.source_classes is None:
            source_classes, codes = np.unique(y_source, return_inverse=True)
            if source_classes.shape[0] != n_outputs:
                raise ValueError(
                    f"The source data hold {source_classes.shape[0]} distinct "
                    f"labels but the source head has {n_outputs} outputs; pass "
                    "source_classes, the label of each output in order."
                )
            return codes.astype(np.int64)
        source_classes = np.asarray(self.source_classes)
        if source_classes.ndim != 1 or source_classes.shape[0] != n_outputs:
            raise ValueError(
                f"source_classes names {source_classes.size} labels, but the "
                f"source head has {n_outputs} outputs: give one label per "
                "output, in output order."
            )
        lookup = {label: i for i, label in enumerate(source_classes.tolist())}
        labels, inverse = np.unique(y_source, return_inverse=True)
        unknown = [label for label in labels.tolist() if label not in lookup]
        if unknown:
            raise ValueError(
                f"The source labels {unknown} are not among source_classes "
                f"{source_classes.tolist()}."
            )
        codes = np.array([lookup[label] for label in labels.tolist()], np.int64)
        return codes[inverse]

    def _engine_options(self, train_data, penalty):
        if penalty is None:
            return {}
        n_target_batches = count_batches(train_data, self.batch_size)
        return {"steps_per_epoch": max(n_target_batches, penalty.n_batches)}


JointTrainingClassifier.__doc__ = JointTrainingClassifier.__doc__.replace(
    "    {training}\n", TRAINING_PARAMETERS
)

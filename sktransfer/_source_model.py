"""The pretrained source network used as it is: the zero-shot reference."""

import warnings

from sklearn.base import ClassifierMixin, RegressorMixin

from ._core import SourceNetworkEstimator
from ._heads import forward_probe, logits_head, output_width
from ._modules import BodyHeadModule
from ._plan import TrainingPlan
from ._source import split_body_head
from ._source_classes import SourceClassesMixin, select_head_rows
from ._targets import ClassifierTargetsMixin, RegressorTargetsMixin

__all__ = ["SourceModelClassifier", "SourceModelRegressor"]


class _SourceModel(SourceNetworkEstimator):
    """Predict with the source network's own head; ``fit`` trains nothing.

    ``fit`` validates X against the source, learns the targets' encoding
    (``classes_`` / ``n_outputs_``) and maps the source's outputs to them. A
    ``UserWarning`` says so when the source's predictions on (X, y) hardly
    agree with ``y`` (Cohen's kappa below 0.1; for regression, a correlation
    below 0.3): its outputs probably mean something else.
    """

    def _source_rows(self, head_name, source_width, source_shape):
        return None, []

    def _plan(self, source_network, probe, rows, **fit_data):
        body, head, head_name = split_body_head(source_network)
        if head_name is None:
            raise ValueError(
                f"{type(self).__name__} predicts with the source network's own "
                "head, but the source has none (its output is a feature "
                "vector). Use PretrainedFeatureTransformer with a model trained "
                "on the target instead."
            )
        features = forward_probe(body, probe)
        width, shape = output_width(head, features)
        source_rows, missing = self._source_rows(head_name, width, shape)
        n_outputs = self._n_outputs()
        if missing:
            raise ValueError(
                f"The source network has no output for the classes {missing} "
                f"of y (source_classes: {list(self.source_classes)}); it cannot "
                "predict them."
            )
        if source_rows is None and width != n_outputs:
            described = (
                f"has {width} outputs"
                if width is not None
                else f"gives outputs of shape {shape} per sample"
            )
            remedy = (
                " Pass source_classes, the label of each output."
                if self._task == "classification"
                else ""
            )
            raise ValueError(
                f"The source head {head_name!r} {described}, but the target "
                f"needs {n_outputs} ({self._output_description()}).{remedy}"
            )
        head = logits_head(head)
        if rows is not None:
            self._warn_when_outputs_disagree(rows, body, head, source_rows)
        if source_rows is not None:
            head = select_head_rows(head, source_rows, head_name)
        return TrainingPlan(
            BodyHeadModule(body, head).eval(),
            self._criterion(),
            fitted={
                "head_choice_": "reuse",
                "head_choice_reason_": "the source network is used as it is",
            },
        )

    def _warn_when_outputs_disagree(self, rows, body, head, source_rows):
        outputs = rows.frozen_outputs(body, head).outputs
        if source_rows is not None:
            outputs = outputs[:, source_rows]
        found = self._head_evidence(outputs, rows.y)
        if found.weak:
            remedy = (
                "check source_classes, or compare"
                if self._task == "classification"
                else "compare"
            )
            warnings.warn(
                f"{type(self).__name__}: {found.description}. The source's "
                f"outputs may not mean these targets; {remedy} with a model "
                "trained on the target data.",
                UserWarning,
                stacklevel=6,
            )


class SourceModelClassifier(
    SourceClassesMixin, ClassifierTargetsMixin, ClassifierMixin, _SourceModel
):
    """The pretrained source network as a classifier, untouched.

    The zero-shot reference every transfer strategy must beat when the
    source and the target share their labels: ``fit`` trains nothing; it
    reads the source's outputs as the target's classes, by label
    (``source_classes``) or by position (output ``i`` is ``classes_[i]``),
    and ``predict_proba`` is the softmax of those outputs. Use it as a
    strategy or a baseline in
    :func:`~sktransfer.model_selection.compare_strategies` and
    :func:`~sktransfer.model_selection.transfer_learning_curve`.

    Parameters
    ----------
    source_module : torch.nn.Module, fitted skorch net, source spec, or callable
        The pretrained network, whose output is one score (logit) per class; a
        final ``Softmax`` is read as log-probabilities. Never modified.
    source_weights : str or os.PathLike, default=None
        A ``.safetensors`` or torch state-dict file loaded into the copy.
    source_classes : array-like of shape (n_source_outputs,) or None, default=None
        The label of each of the source's outputs, in output order. The
        outputs of the classes of ``y`` are kept, in ``classes_`` order, and
        probabilities are over those classes only; a class of ``y`` without an
        output raises a ``ValueError``. None: the source needs one output per
        class of ``y``, output ``i`` meaning ``classes_[i]``.
    batch_size : int, default=256
        Samples per forward pass when predicting.
    device : str or torch.device, default="cpu"
        Where the network predicts.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    module_ : torch.nn.Module
        The source network, ``head(body(x))``, restricted to the outputs of
        ``classes_`` when ``source_classes`` is given.
    head_choice_ : "reuse"
    head_choice_reason_ : str
    net_ : skorch.NeuralNet
        The skorch net that predicts with ``module_``; it is never trained.
    n_iter_ : int
        0: no epoch is trained.
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    See Also
    --------
    SourceModelRegressor : the same for regression.
    AutoTransferClassifier : picks this model when nothing trained does
        better.

    Examples
    --------
    >>> import torch
    >>> from sklearn.datasets import load_iris
    >>> from sktransfer import FineTunedClassifier, SourceModelClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> source = FineTunedClassifier(
    ...     torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(),
    ...                         torch.nn.Linear(16, 3)),
    ...     head="reuse", reinitialize=True, max_epochs=50, lr=0.01,
    ...     random_state=0).fit(X, y).module_
    >>> model = SourceModelClassifier(source).fit(X, y)
    >>> model.n_iter_
    0
    >>> round(model.score(X, y), 2) > 0.9
    True
    """

    _parameter_constraints = {
        **_SourceModel._parameter_constraints,
        "source_classes": ["array-like", None],
    }

    def __init__(
        self,
        source_module,
        *,
        source_weights=None,
        source_classes=None,
        batch_size=256,
        device="cpu",
    ):
        self.source_module = source_module
        self.source_weights = source_weights
        self.source_classes = source_classes
        self.batch_size = batch_size
        self.device = device


class SourceModelRegressor(RegressorTargetsMixin, RegressorMixin, _SourceModel):
    """The pretrained source network as a regressor, untouched.

    The zero-shot reference for a target that predicts what the source
    predicts: ``fit`` trains nothing, it checks that the source has one
    output per target column (output ``j`` is column ``j``), and ``predict``
    returns the source's outputs.

    Parameters
    ----------
    source_module : torch.nn.Module, fitted skorch net, source spec, or callable
        The pretrained network. Never modified.
    source_weights : str or os.PathLike, default=None
        A ``.safetensors`` or torch state-dict file loaded into the copy.
    batch_size : int, default=256
        Samples per forward pass when predicting.
    device : str or torch.device, default="cpu"
        Where the network predicts.

    Attributes
    ----------
    n_outputs_ : int
    module_ : torch.nn.Module
        The source network, ``head(body(x))``.
    head_choice_ : "reuse"
    head_choice_reason_ : str
    net_ : skorch.NeuralNet
        The skorch net that predicts with ``module_``; it is never trained.
    n_iter_ : int
        0: no epoch is trained.
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    See Also
    --------
    SourceModelClassifier : the same for classification.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from sktransfer import SourceModelRegressor
    >>> source = torch.nn.Sequential(torch.nn.Linear(3, 1))
    >>> X = np.random.RandomState(0).normal(size=(50, 3)).astype("float32")
    >>> with torch.no_grad():
    ...     y = source(torch.as_tensor(X)).numpy().ravel()
    >>> SourceModelRegressor(source).fit(X, y).score(X, y)
    1.0
    """

    def __init__(
        self,
        source_module,
        *,
        source_weights=None,
        batch_size=256,
        device="cpu",
    ):
        self.source_module = source_module
        self.source_weights = source_weights
        self.batch_size = batch_size
        self.device = device

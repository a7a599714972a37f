"""The pretrained source network used as it is: the zero-shot reference."""

import os
import warnings
from numbers import Integral

import torch
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval

from ._dry_run import check_input_fits_network
from ._engine import BodyHeadModule, build_net, seeded
from ._network_estimator import (
    BaseNetworkEstimator,
    ClassifierTargetsMixin,
    RegressorTargetsMixin,
    _output_width,
    _probe,
    logits_head,
)
from ._source import split_body_head
from ._source_classes import SourceClassesMixin, select_head_rows

__all__ = ["SourceModelClassifier", "SourceModelRegressor"]


class _SourceModel(BaseNetworkEstimator):
    """Predict with the source network's own head; ``fit`` trains nothing.

    ``fit`` validates X against the source, learns the targets' encoding
    (``classes_`` / ``n_outputs_``) and maps the source's outputs to them.
    """

    _parameter_constraints = {
        "source_module": "no_validation",
        "source_weights": [str, os.PathLike, None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
    }

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Check X against the source and match its outputs to the targets.

        Nothing is trained: the fitted network is the source network, whose
        outputs are read as ``classes_`` (by ``source_classes``, or by
        position) or as the target columns. A ``UserWarning`` says so when
        the source's predictions on (X, y) hardly agree with ``y`` (Cohen's
        kappa below 0.1; for regression, a correlation below 0.3): its
        outputs probably mean something else.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, ...)
            Inputs the source network accepts.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target labels (classifier) or values (regressor).
        sample_weight : array-like of shape (n_samples,), default=None
            Validated, and otherwise not used: nothing is fitted.

        Returns
        -------
        self : object
        """
        return self._fit_guarded(X, y, sample_weight)

    def _fit(self, X, y, sample_weight, frozen_outputs=None):
        # frozen_outputs: the source's outputs on X, when the caller has them
        # (AutoTransfer* refitting this model): the check below reads them.
        source_network, X, y_encoded, _, input_dtype = self._validate_fit_input(
            X, y, sample_weight
        )
        # Lazy layers get their weights in the first forward pass: seeded,
        # so that every fit of the same source predicts the same.
        with seeded(0, self.device):
            probe = torch.tensor(X[:1], dtype=input_dtype)
            check_input_fits_network(source_network, probe.clone(), X_shape=X.shape)
            module = self._build_module(source_network, probe)
        module.to(self.device)
        net = self._new_net(module, seed=0)
        net.initialize()
        self.net_ = net
        self.module_ = net.module_
        self.history_ = net.history
        self.n_iter_ = 0
        self._input_dtype = input_dtype
        self._sample_shape = X.shape[1:]
        if frozen_outputs is None:
            outputs = net.predict_outputs(X, input_dtype)
        else:
            outputs = frozen_outputs.outputs
            if self._head_rows is not None:
                outputs = outputs[:, self._head_rows]
        _, weak, description = self._head_evidence(outputs, y_encoded)
        if weak:
            remedy = (
                "check source_classes, or compare"
                if self._task == "classification"
                else "compare"
            )
            warnings.warn(
                f"{type(self).__name__}: {description}. The source's outputs "
                f"may not mean these targets; {remedy} with a model trained on "
                "the target data.",
                UserWarning,
                stacklevel=3,
            )
        return self

    def _build_module(self, source_network, probe, training_rows=None):
        body, head, head_name = split_body_head(source_network)
        if head_name is None:
            raise ValueError(
                f"{type(self).__name__} predicts with the source network's own "
                "head, but the source has none (its output is a feature "
                "vector). Use PretrainedFeatureTransformer with a model trained "
                "on the target instead."
            )
        features = _probe(body, probe.clone())
        width, shape = _output_width(head, features)
        rows, missing = self._source_rows(head_name, width, shape)
        n_outputs = self._n_outputs()
        if missing:
            raise ValueError(
                f"The source network has no output for the classes {missing} "
                f"of y (source_classes: {list(self.source_classes)}); it cannot "
                "predict them."
            )
        if rows is None and width != n_outputs:
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
        self._head_rows = rows
        if rows is not None:
            head = select_head_rows(head, rows, head_name)
        self.head_choice_ = "reuse"
        self.head_choice_reason_ = "the source network is used as it is"
        return BodyHeadModule(body, head).eval()

    def _new_net(self, module, *, seed, **kwargs):
        # A net that only predicts: the optimizer settings are never used.
        return build_net(
            module,
            criterion=self._criterion(),
            optimizer=torch.optim.SGD,
            optimizer_kwargs=None,
            lr=0.0,
            max_epochs=1,
            batch_size=self.batch_size,
            device=self.device,
            verbose=0,
            seed=seed,
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

"""Knowledge fusion: a frozen source network beside a trainable target network."""

import copy

import torch
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils._param_validation import StrOptions
from torch import nn

from ._core import TRAINING_CONSTRAINTS, NetworkEstimator
from ._docstrings import TRAINING, Substitution
from ._dry_run import resolve_other_network
from ._heads import (
    forward_probe,
    logits_head,
    new_head,
    output_width,
    output_width_error,
    reinitialize,
)
from ._modules import FrozenModule
from ._plan import TrainingPlan
from ._source import split_network
from ._targets import ClassifierTargetsMixin, RegressorTargetsMixin
from ._validation import network_dtype

__all__ = ["FusionClassifier", "FusionRegressor"]


class _SumFusion(nn.Module):
    """``source_head(source_body(x)) + target_head(target_body(x))``."""

    def __init__(self, source_body, source_head, target_body, target_head):
        super().__init__()
        self.source_body = source_body
        self.source_head = source_head
        self.target_body = target_body
        self.target_head = target_head

    def forward(self, inputs):
        return self.forward_with_features(inputs)[1]

    def forward_with_features(self, inputs):
        target_features = self.target_body(inputs)
        outputs = self.source_head(self.source_body(inputs)) + self.target_head(
            target_features
        )
        return target_features, outputs


class _ConcatFusion(nn.Module):
    """``head([source_body(x), target_body(x)])``, features flattened."""

    def __init__(self, source_body, target_body, head):
        super().__init__()
        self.source_body = source_body
        self.target_body = target_body
        self.head = head

    def forward(self, inputs):
        return self.forward_with_features(inputs)[1]

    def forward_with_features(self, inputs):
        features = torch.cat(
            [
                self.source_body(inputs).flatten(start_dim=1),
                self.target_body(inputs).flatten(start_dim=1),
            ],
            dim=1,
        )
        return features, self.head(features)


class _Fusion(NetworkEstimator):
    """A frozen source network and a trainable one, combined (sum or concat)."""

    _parameter_constraints = {
        **TRAINING_CONSTRAINTS,
        "target_module": "no_validation",
        "fusion": [StrOptions({"sum", "concat"})],
        "head": [StrOptions({"auto", "reuse", "new"})],
    }

    def _plan(self, source_network, probe, rows, **fit_data):
        if self.target_module is None:
            target = copy.deepcopy(source_network)
            reinitialize(target)
        else:
            target = resolve_other_network(self.target_module, "target_module", probe)
            forward_probe(target, probe, "target network")
        n_outputs = self._n_outputs()
        source_body, source_head, source_head_name = split_network(source_network)
        source_features = forward_probe(source_body, probe)
        target_body, target_head, _ = split_network(target)
        target_features = forward_probe(target_body, probe, "target network")
        dtype = network_dtype(target_body)

        if self.fusion == "concat":
            features = torch.cat(
                [
                    source_features.flatten(start_dim=1),
                    target_features.flatten(start_dim=1),
                ],
                dim=1,
            )
            module = _ConcatFusion(
                FrozenModule(source_body),
                target_body,
                new_head(features, n_outputs, dtype),
            )
            return self._finish(
                module, False, "fusion='concat' always trains a new head"
            )
        source_width = output_width(source_head, source_features)
        if self.head == "reuse" and source_width[0] != n_outputs:
            raise output_width_error(
                "source network",
                source_head_name,
                source_width,
                n_outputs,
                self._output_description(),
                "Use head='new' or 'auto' for a trainable head on the frozen "
                "source features.",
            )
        reuse, reason = self._reuse_source_head(
            source_width[0], n_outputs, source_body, source_head, rows
        )
        if reuse:
            source_side = FrozenModule(logits_head(source_head))
        else:
            source_side = new_head(source_features, n_outputs, dtype)
        if output_width(target_head, target_features)[0] == n_outputs:
            target_head = logits_head(target_head)
        else:
            target_head = new_head(target_features, n_outputs, dtype)
        module = _SumFusion(
            FrozenModule(source_body), source_side, target_body, target_head
        )
        return self._finish(module, reuse, reason)

    def _finish(self, module, reuse, reason):
        module.train()
        return TrainingPlan(
            module,
            self._criterion(),
            fitted={
                "head_choice_": "reuse" if reuse else "new",
                "head_choice_reason_": reason,
            },
        )

    def _reuse_source_head(
        self, source_width, n_outputs, source_body, source_head, rows
    ):
        """``(reuse, reason)``: does the summed output keep the source head?

        ``head="auto"`` keeps it only when the source's predictions on the
        training rows show that its outputs mean the targets; equal widths
        alone do not.
        """
        if self.head in ("reuse", "new"):
            return self.head == "reuse", f"head={self.head!r} was asked for"
        if rows is None:
            # load_fitted: the decision the fit took.
            return self.head_choice_ == "reuse", self.head_choice_reason_
        if source_width != n_outputs:
            return False, (
                f"the source head has {source_width} outputs, but the target "
                f"needs {n_outputs} ({self._output_description()})"
            )
        outputs = rows.frozen_outputs(source_body, logits_head(source_head)).outputs
        found = self._head_evidence(outputs, rows.y)
        if found.agrees:
            return True, f"reused: {found.description}"
        return False, f"not reused: {found.description}"


@Substitution(training=TRAINING)
class FusionClassifier(ClassifierTargetsMixin, ClassifierMixin, _Fusion):
    r"""Combine a frozen source network with a trainable target network.

    Knowledge fusion: the source network keeps everything it knows (it is
    frozen: no gradients, evaluation mode, its parameters are not given to the
    optimizer), and a second network learns, beside it, what the target task
    needs in addition. With :math:`\phi_s, h_s` the source's body and head and
    :math:`\phi_t, h_t` the target network's,

    - ``fusion="sum"`` adds the logits of the two networks,
      :math:`f(x) = h_s(\phi_s(x)) + h_t(\phi_t(x))`: the target network
      learns a correction of the source's predictions (a residual). The
      source's own head is used, frozen, when its outputs mean the classes
      (``head="reuse"``, or ``"auto"`` on the evidence of the source's
      predictions, as for :class:`FineTunedClassifier`); otherwise a new,
      trainable linear head reads the frozen source features.
    - ``fusion="concat"`` feeds both networks' features to a new linear
      head, :math:`f(x) = W[\phi_s(x); \phi_t(x)] + b`, trained with the
      target network; the source's head is not used.

    The loss is the (sample-weighted) cross-entropy of :math:`f`. The fitted
    network holds the frozen source copy bit for bit, so ``predict`` runs
    both networks.

    Parameters
    ----------
    source_module : torch.nn.Module, fitted skorch net, or callable
        The pretrained network. A private copy is used, frozen; the object
        you pass is never modified.
    target_module : torch.nn.Module, fitted skorch net, callable or None
        The trainable network, trained from its current weights; its final
        layer with parameters is its head, kept when it has one output per
        class and replaced by a new linear layer otherwise. None: a copy of
        the source architecture with freshly initialised weights.
    fusion : {{"sum", "concat"}}, default="sum"
        How the two networks are combined (see above).
    head : {{"auto", "reuse", "new"}}, default="auto"
        With ``fusion="sum"``, the source side's head: ``"reuse"`` keeps the
        source head, frozen (its outputs are taken to mean ``classes_`` in
        order; a ``ValueError`` is raised when the widths differ), ``"new"``
        puts a trainable linear head on the frozen source body, ``"auto"``
        reuses the head only when the source's predictions on the training
        data agree with ``y`` far above chance (widths alone never decide
        it). Not used by ``"concat"``.
    source_weights : str or os.PathLike, default=None
        A ``.safetensors`` or torch state-dict file loaded into the copy of
        the source network.
    {training}

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, in the order of the network's outputs.
    head_choice_ : {{"reuse", "new"}}
        ``"reuse"`` when the frozen source head scores the classes
        (``fusion="sum"``), ``"new"`` when a trainable head reads the source
        features.
    head_choice_reason_ : str
        Why.
    module_ : torch.nn.Module
        The fitted network, with parts ``source_body`` (frozen),
        ``target_body`` and, for ``"sum"``, ``source_head`` and
        ``target_head``, for ``"concat"``, ``head``.
    net_ : skorch.NeuralNet
        The skorch net that trained ``module_``.
    history_ : skorch.History
        Losses and timings per epoch and per batch.
    n_iter_ : int
        Number of epochs trained.
    n_features_in_ : int
        Number of features (2-D input) or channels (n-D input) seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names of a DataFrame passed to ``fit``.

    See Also
    --------
    FusionRegressor : the same for regression.
    PretrainedFeatureTransformer : the frozen source alone as a featurizer.
    FineTunedClassifier : train the source network itself.

    Examples
    --------
    >>> import torch
    >>> from sklearn.datasets import load_iris
    >>> from sktransfer import FusionClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> source = torch.nn.Sequential(
    ...     torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5))
    >>> clf = FusionClassifier(
    ...     source, fusion="concat", max_epochs=30, lr=0.01, random_state=0)
    >>> clf.fit(X, y).predict_proba(X[:2]).shape
    (2, 3)
    >>> clf = FusionClassifier(source, fusion="sum", max_epochs=30, random_state=0)
    >>> clf.fit(X, y).head_choice_
    'new'
    """

    def __init__(
        self,
        source_module,
        target_module=None,
        *,
        fusion="sum",
        head="auto",
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
        self.target_module = target_module
        self.fusion = fusion
        self.head = head
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
class FusionRegressor(RegressorTargetsMixin, RegressorMixin, _Fusion):
    r"""Combine a frozen source network with a trainable target network.

    The regression counterpart of :class:`FusionClassifier`: with
    ``fusion="sum"`` the trainable network learns a correction of the
    frozen source's predicted values (its head kept frozen when it predicts
    ``y``, as the evidence of ``head="auto"`` shows: every output's
    correlation with its target column at least 0.3 and significantly
    positive), with ``"concat"`` a new linear head reads both networks'
    features. The loss is the (sample-weighted) squared error.

    Parameters
    ----------
    source_module : torch.nn.Module, fitted skorch net, or callable
        The pretrained network. A private copy is used, frozen.
    target_module : torch.nn.Module, fitted skorch net, callable or None
        The trainable network; None: a copy of the source architecture with
        freshly initialised weights.
    fusion : {{"sum", "concat"}}, default="sum"
    head : {{"auto", "reuse", "new"}}, default="auto"
        The source side's head with ``fusion="sum"``, as in
        :class:`FusionClassifier`.
    source_weights : str or os.PathLike, default=None
    {training}

    Attributes
    ----------
    n_outputs_ : int
        Number of target columns.
    head_choice_ : {{"reuse", "new"}}
    head_choice_reason_ : str
    module_ : torch.nn.Module
    net_ : skorch.NeuralNet
    history_ : skorch.History
    n_iter_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    See Also
    --------
    FusionClassifier : the same for classification.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from sktransfer import FusionRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(80, 3)).astype("float32")
    >>> y = X @ np.array([1.0, -2.0, 0.5])
    >>> source = torch.nn.Sequential(
    ...     torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    >>> reg = FusionRegressor(source, fusion="concat", lr=0.01, random_state=0)
    >>> reg.fit(X, y).predict(X[:2]).shape
    (2,)
    """

    def __init__(
        self,
        source_module,
        target_module=None,
        *,
        fusion="sum",
        head="auto",
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
        self.target_module = target_module
        self.fusion = fusion
        self.head = head
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

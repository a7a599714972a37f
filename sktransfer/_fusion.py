"""Knowledge fusion: a frozen source network beside a trainable target network."""

import copy

import torch
from sklearn.base import ClassifierMixin
from sklearn.utils._param_validation import StrOptions
from torch import nn

from ._engine import FrozenModule
from ._head_choice import classification_evidence
from ._network_estimator import (
    ClassifierTargetsMixin,
    _output_width,
    _reinitialize,
    logits_head,
)
from ._strategy import (
    TRAINING_CONSTRAINTS,
    TRAINING_PARAMETERS,
    MultiNetworkEstimator,
    new_head,
    output_width_error,
    probe_network,
    resolve_other_network,
    split_network,
)
from ._validation import network_dtype

__all__ = ["FusionClassifier"]


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


class FusionClassifier(ClassifierTargetsMixin, ClassifierMixin, MultiNetworkEstimator):
    r"""Combine a frozen source network with a trainable target network.

    Knowledge fusion: the source network keeps everything it knows (it is
    frozen: no gradients, evaluation mode, its parameters are not given to the
    optimizer), and a second network learns, beside it, what the target task
    needs in addition. With :math:`\phi_s, h_s` the source's body and head and
    :math:`\phi_t, h_t` the target network's,

    - ``fusion="sum"`` adds the logits of the two networks,
      :math:`f(x) = h_s(\phi_s(x)) + h_t(\phi_t(x))`: the target network
      learns a correction of the source's predictions (a residual). The
      source's own head is used, frozen, when it has one output per class
      (``head="auto"`` or ``"reuse"``); otherwise a new, trainable linear
      head reads the frozen source features.
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
    target_module : torch.nn.Module, fitted skorch net, callable or None, default=None
        The trainable network, trained from its current weights; its final
        layer with parameters is its head, kept when it has one output per
        class and replaced by a new linear layer otherwise. None: a copy of
        the source architecture with freshly initialised weights.
    fusion : {"sum", "concat"}, default="sum"
        How the two networks are combined (see above).
    head : {"auto", "reuse", "new"}, default="auto"
        With ``fusion="sum"``, the source side's head: ``"reuse"`` keeps the
        source head, frozen (its outputs are taken to mean ``classes_`` in
        order; a ``ValueError`` is raised when the widths differ), ``"new"``
        puts a trainable linear head on the frozen source body, ``"auto"``
        reuses the head when its width matches. Not used by ``"concat"``.
    source_weights : str or os.PathLike, default=None
        A ``.safetensors`` or torch state-dict file loaded into the copy of
        the source network.
    {training}
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, in the order of the network's outputs.
    head_choice_ : {"reuse", "new"}
        ``"reuse"`` when the frozen source head scores the classes
        (``fusion="sum"``), ``"new"`` when a trainable head reads the source
        features.
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

    _parameter_constraints = {
        **TRAINING_CONSTRAINTS,
        "target_module": "no_validation",
        "fusion": [StrOptions({"sum", "concat"})],
        "head": [StrOptions({"auto", "reuse", "new"})],
    }

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
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _build_module(self, source_network, probe, training_rows=None):
        if self.target_module is None:
            target = copy.deepcopy(source_network)
            _reinitialize(target)
        else:
            target = resolve_other_network(self.target_module, "target_module", probe)
            probe_network(target, probe, "target network")
        n_classes = self.classes_.shape[0]

        source_body, source_head, source_head_name = split_network(source_network)
        source_features = probe_network(source_body, probe, "source network")
        target_body, target_head, _ = split_network(target)
        target_features = probe_network(target_body, probe, "target network")
        dtype = network_dtype(target_body)

        if self.fusion == "concat":
            features = torch.cat(
                [
                    source_features.flatten(start_dim=1),
                    target_features.flatten(start_dim=1),
                ],
                dim=1,
            )
            self.head_choice_ = "new"
            self.head_choice_reason_ = "fusion='concat' always trains a new head"
            module = _ConcatFusion(
                FrozenModule(source_body),
                target_body,
                new_head(features, n_classes, dtype),
            )
        else:
            source_outputs = _output_width(source_head, source_features)
            source_width = source_outputs[0]
            if self.head == "reuse" and source_width != n_classes:
                raise output_width_error(
                    "source network",
                    source_head_name,
                    source_outputs,
                    n_classes,
                    self.classes_,
                    "Use head='new' or 'auto' for a trainable head on the frozen "
                    "source features.",
                )
            if self._reuse_source_head(
                source_width, n_classes, source_body, source_head, training_rows
            ):
                source_side = FrozenModule(logits_head(source_head))
                self.head_choice_ = "reuse"
            else:
                source_side = new_head(source_features, n_classes, dtype)
                self.head_choice_ = "new"
            if _output_width(target_head, target_features)[0] == n_classes:
                target_head = logits_head(target_head)
            else:
                target_head = new_head(target_features, n_classes, dtype)
            module = _SumFusion(
                FrozenModule(source_body), source_side, target_body, target_head
            )
        module.train()
        return module

    def _reuse_source_head(
        self, source_width, n_classes, source_body, source_head, training_rows
    ):
        """Whether the summed logits keep the source head (``fusion="sum"``).

        ``head="auto"`` keeps it only when the source's predictions on the
        training rows show that output ``i`` means ``classes_[i]`` (see
        :func:`~sktransfer._head_choice.classification_evidence`); equal
        widths alone do not.
        """
        if self.head == "reuse":
            self.head_choice_reason_ = "head='reuse' was asked for"
            return True
        if self.head == "new":
            self.head_choice_reason_ = "head='new' was asked for"
            return False
        if training_rows is None:
            # load_fitted: the decision the fit took.
            return self.head_choice_ == "reuse"
        if source_width != n_classes:
            self.head_choice_reason_ = (
                f"the source head has {source_width} outputs, but the target "
                f"has {n_classes} classes"
            )
            return False
        outputs = training_rows.frozen_outputs(
            source_body, logits_head(source_head)
        ).outputs
        agrees, _, description = classification_evidence(
            outputs, training_rows.y, n_classes
        )
        self.head_choice_reason_ = (
            f"reused: {description}" if agrees else f"not reused: {description}"
        )
        return agrees


FusionClassifier.__doc__ = FusionClassifier.__doc__.replace(
    "    {training}\n", TRAINING_PARAMETERS
)

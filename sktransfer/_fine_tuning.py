"""Parameter transfer (fine-tuning) and structure transfer (the baseline)."""

from numbers import Integral, Real

import torch
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils._param_validation import Interval, StrOptions

from ._core import TRAINING_CONSTRAINTS, NetworkEstimator
from ._docstrings import (
    FINE_TUNING,
    HEAD,
    NETWORK_ATTRIBUTES,
    SOURCE,
    SOURCE_CLASSES,
    TRAINING,
    Substitution,
)
from ._freezing import freeze_schedule
from ._head_choice import HeadDecision
from ._heads import (
    build_head,
    choose_head,
    forward_probe,
    logits_head,
    output_width,
    reinitialize,
)
from ._linear_probe import fit_linear_probe
from ._modules import BodyHeadModule
from ._plan import TrainingPlan
from ._source import split_body_head
from ._source_classes import SourceClassesMixin
from ._targets import ClassifierTargetsMixin, RegressorTargetsMixin
from ._validation import network_dtype

__all__ = ["FineTunedClassifier", "FineTunedRegressor", "FineTuning"]


class FineTuning(NetworkEstimator):
    """The source body under a head, reused or new, trained on the target.

    Composes the head component (:mod:`sktransfer._heads`: the evidence-based
    choice, a linear probe for a new head), the freezing component
    (:mod:`sktransfer._freezing`) and WiSE-FT's interpolation. The base of
    :class:`FineTunedClassifier`, :class:`FineTunedRegressor` and the
    knowledge-regularized estimators, which add terms to its plan.
    """

    _parameter_constraints = {
        **TRAINING_CONSTRAINTS,
        "head": [StrOptions({"auto", "reuse", "new"})],
        "freeze": [str, list, tuple, None],
        "unfreeze_at": [Interval(Integral, 1, None, closed="left"), None],
        "body_lr_ratio": [Interval(Real, 0, None, closed="left")],
        "reinitialize": ["boolean"],
        "head_init": [StrOptions({"linear_probe", "random"})],
        "interpolation": [Interval(Real, 0, 1, closed="both")],
    }

    def _plan(self, source_network, probe, rows, **fit_data):
        plan, _ = self._fine_tuning_plan(source_network, probe, rows)
        return plan

    def _source_rows(self, head_name, source_width, source_shape):
        """``(rows, missing)``: the source outputs of the target, by label.

        Without labels for the source outputs: none, matched by position.
        """
        return None, []

    def _fine_tuning_plan(self, source_network, probe, rows):
        """The plan, and the :class:`HeadDecision` it followed."""
        body, source_head, head_name = split_body_head(source_network)
        features = forward_probe(body, probe)
        width, shape = (
            (None, None) if head_name is None else output_width(source_head, features)
        )
        source_logits = logits_head(source_head)
        source_rows, missing = self._source_rows(head_name, width, shape)
        n_outputs = self._n_outputs()
        if rows is None:
            # load_fitted: the decision the fit took.
            reuse = self.head_choice_ == "reuse"
            decision = HeadDecision(
                reuse, source_rows if reuse else None, self.head_choice_reason_
            )
        else:
            decision = choose_head(
                self.head,
                head_name=head_name,
                source_width=width,
                source_shape=shape,
                n_outputs=n_outputs,
                output_description=self._output_description(),
                rows=source_rows,
                missing=missing,
                labelled=getattr(self, "source_classes", None) is not None,
                reinitialize=self.reinitialize,
                evidence=lambda: self._source_evidence(rows, body, source_logits),
            )
        head = build_head(
            decision, source_head, head_name, features, n_outputs, network_dtype(body)
        )
        module = BodyHeadModule(body, head)
        outputs = forward_probe(module, probe)
        if tuple(outputs.shape) != (1, n_outputs):
            raise ValueError(
                f"The network gives outputs of shape {tuple(outputs.shape[1:])} "
                f"per sample, but the target needs {n_outputs} "
                f"({self._output_description()}). Check the shape of X "
                f"(samples of shape {tuple(probe.shape[1:])}) against what the "
                "source network reads."
            )
        if self.reinitialize:
            reinitialize(module)
        elif (
            not decision.reuse and self.head_init == "linear_probe" and rows is not None
        ):
            frozen = rows.frozen_outputs(body, source_logits)
            fit_linear_probe(
                head, frozen.features, rows.y, rows.sample_weight, self._task
            )
        module.train()
        schedule = freeze_schedule(
            module, self.freeze, self.unfreeze_at, self.body_lr_ratio
        )
        plan = TrainingPlan(
            module,
            self._criterion(),
            fitted={
                "head_choice_": "reuse" if decision.reuse else "new",
                "head_choice_reason_": decision.reason,
            },
            freeze_prefixes=schedule.freeze_prefixes,
            unfreeze_at=schedule.unfreeze_at,
            lr_groups=schedule.lr_groups,
            # Training from scratch starts from random weights: nothing to keep.
            interpolation=1.0 if self.reinitialize else self.interpolation,
        )
        return plan, decision

    def _source_evidence(self, rows, body, source_logits):
        outputs = rows.frozen_outputs(body, source_logits).outputs
        return None if outputs is None else self._head_evidence(outputs, rows.y)


@Substitution(
    source=SOURCE,
    head=HEAD,
    source_classes=SOURCE_CLASSES,
    fine_tuning=FINE_TUNING,
    training=TRAINING,
    attributes=NETWORK_ATTRIBUTES,
)
class FineTunedClassifier(
    SourceClassesMixin, ClassifierTargetsMixin, ClassifierMixin, FineTuning
):
    """Fine-tune a pretrained network on a classification task.

    Parameter transfer: training starts from the source network's weights
    and minimises the (sample-weighted) cross-entropy on the target data,
    optionally with parts frozen or learning more slowly. With
    ``reinitialize=True`` the same estimator trains the architecture from
    scratch, the baseline any transfer result should be compared with.

    Parameters
    ----------
    {source}
    {head}
    {source_classes}
    {fine_tuning}
    {training}

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, in the order of the network's outputs.
    {attributes}

    See Also
    --------
    FineTunedRegressor : the same for regression.
    PretrainedFeatureTransformer : use the frozen network as a featurizer.
    AutoTransferClassifier : choose between fine-tuning and the other ways.

    Examples
    --------
    >>> import torch
    >>> from sklearn.datasets import load_iris
    >>> from sktransfer import FineTunedClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> source = torch.nn.Sequential(
    ...     torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5))
    >>> clf = FineTunedClassifier(source, max_epochs=50, lr=0.01, random_state=0)
    >>> clf.fit(X, y).head_choice_
    'new'
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    """

    _parameter_constraints = {
        **FineTuning._parameter_constraints,
        "source_classes": ["array-like", None],
    }

    def __init__(
        self,
        source_module,
        *,
        source_weights=None,
        head="auto",
        source_classes=None,
        freeze=None,
        unfreeze_at=None,
        body_lr_ratio=1.0,
        reinitialize=False,
        head_init="linear_probe",
        interpolation=1.0,
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
        self.source_weights = source_weights
        self.head = head
        self.source_classes = source_classes
        self.freeze = freeze
        self.unfreeze_at = unfreeze_at
        self.body_lr_ratio = body_lr_ratio
        self.reinitialize = reinitialize
        self.head_init = head_init
        self.interpolation = interpolation
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


@Substitution(
    source=SOURCE,
    head=HEAD,
    fine_tuning=FINE_TUNING,
    training=TRAINING,
    attributes=NETWORK_ATTRIBUTES,
)
class FineTunedRegressor(RegressorTargetsMixin, RegressorMixin, FineTuning):
    """Fine-tune a pretrained network on a regression task.

    Parameter transfer: training starts from the source network's weights
    and minimises the (sample-weighted) mean squared error on the target
    data. With ``reinitialize=True`` it trains the architecture from scratch,
    the baseline any transfer result should be compared with.

    Parameters
    ----------
    {source}
    {head}
    {fine_tuning}
    {training}

    Attributes
    ----------
    n_outputs_ : int
        Number of target columns.
    {attributes}

    See Also
    --------
    FineTunedClassifier : the same for classification.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from sktransfer import FineTunedRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(100, 3))
    >>> y = X @ np.array([1.0, -2.0, 0.5])
    >>> source = torch.nn.Sequential(
    ...     torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    >>> reg = FineTunedRegressor(source, max_epochs=100, lr=0.01, random_state=0)
    >>> reg.fit(X, y).score(X, y) > 0.9
    True
    """

    def __init__(
        self,
        source_module,
        *,
        source_weights=None,
        head="auto",
        freeze=None,
        unfreeze_at=None,
        body_lr_ratio=1.0,
        reinitialize=False,
        head_init="linear_probe",
        interpolation=1.0,
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
        self.source_weights = source_weights
        self.head = head
        self.freeze = freeze
        self.unfreeze_at = unfreeze_at
        self.body_lr_ratio = body_lr_ratio
        self.reinitialize = reinitialize
        self.head_init = head_init
        self.interpolation = interpolation
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

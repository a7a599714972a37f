"""Knowledge transfer: fine-tuning with a penalty that ties the net to its source."""

import copy
from numbers import Real

import torch
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from ._docstrings import (
    FINE_TUNING,
    HEAD,
    NETWORK_ATTRIBUTES,
    SOURCE,
    SOURCE_CLASSES,
    TRAINING,
    Substitution,
)
from ._fine_tuning import FineTuning
from ._heads import logits_head
from ._modules import BodyHeadModule
from ._source import split_body_head
from ._source_classes import SourceClassesMixin, select_head_rows
from ._targets import ClassifierTargetsMixin, RegressorTargetsMixin
from ._unlabeled import unlabeled_dataset
from .knowledge import L2SP, FeatureDistillation, NewParameterL2, OutputDistillation

__all__ = ["KnowledgeRegularizedClassifier", "KnowledgeRegularizedRegressor"]

_KNOWLEDGE = """\
knowledge : {"l2sp", "features", "outputs"} or callable, default="l2sp"
        The knowledge term ``K(θ)``:

        - ``"l2sp"``: :class:`~sktransfer.knowledge.L2SP`,
          ``½‖θ_S − θ_S⁰‖²`` over the parameters that come from the source
          network (L2-SP);
        - ``"features"``: :class:`~sktransfer.knowledge.FeatureDistillation`,
          mean squared distance between the target's and the source's
          activations on the same inputs (the body's output, or the layers in
          ``feature_layers``);
        - ``"outputs"``: :class:`~sktransfer.knowledge.OutputDistillation`,
          distillation from the source network's outputs at ``temperature``
          (Learning without Forgetting when the head is new);
        - an object following the :class:`~sktransfer.knowledge.KnowledgeTerm`
          protocol, or a plain callable
          ``K(module, inputs, features, outputs, index) -> scalar tensor``.

        Whatever the source network contributes is computed once per ``fit``.
    lam : float, default=0.01
        Weight λ of the knowledge term. 0 trains exactly as
        ``FineTunedClassifier`` / ``FineTunedRegressor`` with the same
        settings; larger values keep the network closer to its source. Tune
        it with ``GridSearchCV``.
    beta : float, default=0.0
        Weight of ``½‖θ_new‖²`` on the parameters of a new head (the β of
        L2-SP); it applies with any ``knowledge``.
    temperature : float, default=2.0
        Softmax temperature of ``knowledge="outputs"``.
    feature_layers : list of str or None, default=None
        Layers matched by ``knowledge="features"``, named as in the source
        network's ``named_modules()``; None matches the body's output."""


class _KnowledgeRegularized(FineTuning):
    """Fine-tuning whose plan adds ``lam · K(θ)`` (and ``beta`` on a new head)."""

    _parameter_constraints = {
        **FineTuning._parameter_constraints,
        "knowledge": [StrOptions({"l2sp", "features", "outputs"}), callable],
        "lam": [Interval(Real, 0, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "feature_layers": [list, tuple, None],
    }

    # No other estimator consumes it: requested by default under routing.
    __metadata_request__fit = {"unlabeled_data": True}

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, unlabeled_data=None):
        """Fine-tune on (X, y) with the knowledge term.

        Parameters
        ----------
        X : array-like, DataFrame or torch Dataset of shape (n_samples, ...)
            Inputs the source network accepts.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target labels (classifier) or values (regressor).
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights of the data loss and of the terms that read
            the training rows.
        unlabeled_data : UnlabeledData, default=None
            Target inputs without labels, handed to the knowledge term as
            ``context.unlabeled_data`` (the built-in terms do not use them;
            a term of your own, or :mod:`sktransfer.adaptation`'s, may).

        Returns
        -------
        self : object
        """
        return self._fit_guarded(X, y, sample_weight, unlabeled_data=unlabeled_data)

    def _plan(self, source_network, probe, rows, unlabeled_data=None):
        # The penalty compares with the source as it was: copied before the
        # fine-tuning plan splits the network and trains its body.
        needs_source = rows is not None and (self.lam > 0 or self.beta > 0)
        source = copy.deepcopy(source_network) if needs_source else None
        plan, decision = self._fine_tuning_plan(source_network, probe, rows)
        head_is_new = not decision.reuse
        terms = []
        if needs_source and self.lam > 0:
            terms.append((self.lam, self._knowledge_term()))
        if needs_source and self.beta > 0 and head_is_new:
            terms.append((self.beta, NewParameterL2()))
        if not terms:
            # lam = 0 (and no beta): exactly the fine-tuning plan.
            return plan
        body, head, head_name = split_body_head(source)
        head = logits_head(head)
        if decision.reuse and decision.rows is not None:
            # The reused head scores the target's classes only: the terms
            # compare it with the same rows of the source head.
            head = select_head_rows(head, decision.rows, head_name)
        plan.terms = terms
        plan.reference_module = BodyHeadModule(body, head)
        plan.term_context = {
            "head_is_new": head_is_new,
            "task": self._task,
            "unlabeled_data": unlabeled_dataset(
                unlabeled_data, probe, self.device, source_network
            ),
        }
        return plan

    def _knowledge_term(self):
        if self.knowledge == "l2sp":
            return L2SP()
        if self.knowledge == "features":
            return FeatureDistillation(layers=self.feature_layers)
        if self.knowledge == "outputs":
            return OutputDistillation(temperature=self.temperature)
        # The user's object may keep state in prepare(): work on a copy.
        return copy.deepcopy(self.knowledge)


@Substitution(
    source=SOURCE,
    knowledge=_KNOWLEDGE,
    head=HEAD,
    source_classes=SOURCE_CLASSES,
    fine_tuning=FINE_TUNING,
    training=TRAINING,
    attributes=NETWORK_ATTRIBUTES,
)
class KnowledgeRegularizedClassifier(
    SourceClassesMixin, ClassifierTargetsMixin, ClassifierMixin, _KnowledgeRegularized
):
    """Fine-tune a classifier while staying close to the source network.

    Knowledge transfer: minimises

    ``Σ_i w_i CE(y_i, f_θ(x_i)) / Σ_i w_i + lam · K(θ)``

    where ``K`` measures how far the target network has drifted from what
    the source network knows (its weights, its features or its outputs).
    Everything else (head, freezing, learning rates, seeding) is as in
    :class:`FineTunedClassifier`.

    With ``source_classes`` and a reused head that keeps only the outputs of
    the classes of ``y``, the knowledge term sees the source network
    restricted in the same way: ``"l2sp"`` ties the kept head rows to their
    source values, and ``"outputs"`` distils the source's distribution over
    the target's classes (the softmax of the source logits of those
    classes).

    Parameters
    ----------
    {source}
    {knowledge}
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
    FineTunedClassifier : the same without the knowledge term (``lam=0``).
    sktransfer.knowledge : the knowledge terms and their protocol.

    Examples
    --------
    >>> import torch
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sktransfer import KnowledgeRegularizedClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> source = torch.nn.Sequential(
    ...     torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5))
    >>> clf = KnowledgeRegularizedClassifier(
    ...     source, knowledge="l2sp", max_epochs=20, lr=0.01, random_state=0)
    >>> search = GridSearchCV(clf, {{"lam": [0.0, 0.1, 1.0]}}, cv=3).fit(X, y)
    >>> search.best_params_["lam"] in (0.0, 0.1, 1.0)
    True
    """

    _parameter_constraints = {
        **_KnowledgeRegularized._parameter_constraints,
        "source_classes": ["array-like", None],
    }

    def __init__(
        self,
        source_module,
        *,
        knowledge="l2sp",
        lam=0.01,
        beta=0.0,
        temperature=2.0,
        feature_layers=None,
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
        self.knowledge = knowledge
        self.lam = lam
        self.beta = beta
        self.temperature = temperature
        self.feature_layers = feature_layers
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
    knowledge=_KNOWLEDGE,
    head=HEAD,
    fine_tuning=FINE_TUNING,
    training=TRAINING,
    attributes=NETWORK_ATTRIBUTES,
)
class KnowledgeRegularizedRegressor(
    RegressorTargetsMixin, RegressorMixin, _KnowledgeRegularized
):
    """Fine-tune a regressor while staying close to the source network.

    Knowledge transfer: minimises

    ``Σ_i w_i ‖y_i − f_θ(x_i)‖² / Σ_i w_i + lam · K(θ)``

    where ``K`` measures how far the target network has drifted from what
    the source network knows. Everything else is as in
    :class:`FineTunedRegressor`.

    Parameters
    ----------
    {source}
    {knowledge}
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
    FineTunedRegressor : the same without the knowledge term (``lam=0``).

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from sktransfer import KnowledgeRegularizedRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(100, 3))
    >>> y = X @ np.array([1.0, -2.0, 0.5])
    >>> source = torch.nn.Sequential(
    ...     torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    >>> reg = KnowledgeRegularizedRegressor(
    ...     source, knowledge="features", lam=0.1, max_epochs=50, lr=0.01,
    ...     random_state=0).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3,)
    """

    def __init__(
        self,
        source_module,
        *,
        knowledge="l2sp",
        lam=0.01,
        beta=0.0,
        temperature=2.0,
        feature_layers=None,
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
        self.knowledge = knowledge
        self.lam = lam
        self.beta = beta
        self.temperature = temperature
        self.feature_layers = feature_layers
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

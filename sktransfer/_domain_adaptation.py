"""Domain adaptation: fine-tuning that aligns the target domain's unlabelled inputs."""

import copy
from numbers import Real

import torch
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from ._data import steps_covering
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
from ._source_classes import SourceClassesMixin
from ._targets import ClassifierTargetsMixin, RegressorTargetsMixin
from ._unlabeled import unlabeled_dataset
from .adaptation._terms import ADAPTATION_METHODS, CLASS_PROBABILITY_METHODS

__all__ = ["DomainAdaptationClassifier", "DomainAdaptationRegressor"]

_METHOD = """\
method : {{"coral", "mmd", "dann"{classification_methods}}} or callable, \
default="coral"
        How the unlabelled target inputs ``unlabeled_data`` enter the loss,
        as a term ``lam · K(θ)`` on one unlabelled batch per training step:

        - ``"coral"``: :class:`~sktransfer.adaptation.CORAL` (Deep CORAL),
          the distance between the covariances of the body's features on
          labelled and unlabelled batches;
        - ``"mmd"``: :class:`~sktransfer.adaptation.MMD` (DAN), a
          multi-kernel maximum mean discrepancy between the same features;
        - ``"dann"``: :class:`~sktransfer.adaptation.DomainAdversarial`
          (DANN), a domain discriminator trained through gradient reversal,
          so that the features stop telling the domains apart;{more_methods}
        - an object following the :class:`~sktransfer.knowledge.KnowledgeTerm`
          protocol (its ``prepare`` finds the unlabelled rows in
          ``context.unlabeled_data``), or a plain callable.

    lam : float, default=1.0
        Weight λ of the adaptation term; 0 trains exactly as fine-tuning.
        Tune it with ``GridSearchCV``: with target labels, score as usual;
        without, with a scorer of :mod:`sktransfer.adaptation` (estimates,
        not measurements)."""

_CLASSIFIER_METHODS = """
        - ``"mcc"``: :class:`~sktransfer.adaptation.MinimumClassConfusion`
          (MCC), the confusion between classes of the predictions on
          unlabelled inputs;
        - ``"entropy"``: :class:`~sktransfer.adaptation.EntropyMinimization`,
          confident predictions on unlabelled inputs, with a diversity term
          that keeps every class predicted;"""


class _DomainAdaptation(FineTuning):
    """Fine-tuning whose plan adds ``lam · K(θ)`` on unlabelled target batches."""

    _parameter_constraints = {
        **FineTuning._parameter_constraints,
        "method": [StrOptions(set(ADAPTATION_METHODS)), callable],
        "lam": [Interval(Real, 0, None, closed="left")],
    }

    # No other estimator consumes it: requested by default under routing.
    __metadata_request__fit = {"unlabeled_data": True}

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, unlabeled_data=None):
        """Fine-tune on (X, y) while aligning the unlabelled target inputs.

        Parameters
        ----------
        X : array-like, DataFrame or torch Dataset of shape (n_samples, ...)
            Labelled inputs: source-domain rows (unsupervised adaptation), a
            few target rows (semi-supervised), or both.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Their labels (classifier) or values (regressor).
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the labelled rows.
        unlabeled_data : UnlabeledData
            Target-domain inputs without labels, shaped like X. Needed unless
            ``lam=0``.

        Returns
        -------
        self : object
        """
        if unlabeled_data is None and self.lam > 0:
            raise ValueError(
                f"{type(self).__name__} aligns the target domain's unlabelled "
                "inputs: pass fit(X, y, unlabeled_data=UnlabeledData(X_target)), "
                "or lam=0 to fine-tune without them. Under metadata routing "
                "(Pipeline, cross_val_score, GridSearchCV) pass unlabeled_data "
                "like any fit parameter."
            )
        return self._fit_guarded(X, y, sample_weight, unlabeled_data=unlabeled_data)

    def _plan(self, source_network, probe, rows, unlabeled_data=None):
        plan, decision = self._fine_tuning_plan(source_network, probe, rows)
        if rows is None or unlabeled_data is None:
            return plan
        unlabeled = unlabeled_dataset(
            unlabeled_data, probe, self.device, source_network
        )
        if self.lam == 0:
            return plan
        plan.terms = [(self.lam, self._adaptation_term())]
        # With a few labels and many unlabelled rows, the unlabelled ones set
        # the length of an epoch.
        plan.steps_per_epoch = steps_covering(self.batch_size, rows.data, unlabeled)
        plan.term_context = {
            "head_is_new": not decision.reuse,
            "task": self._task,
            "unlabeled_data": unlabeled,
        }
        return plan

    def _adaptation_term(self):
        if isinstance(self.method, str):
            if (
                self.method in CLASS_PROBABILITY_METHODS
                and self._task != "classification"
            ):
                raise ValueError(
                    f"method={self.method!r} works on class probabilities, which a "
                    "regressor does not predict; use 'coral', 'mmd' or 'dann'."
                )
            return ADAPTATION_METHODS[self.method]()
        # The user's object may keep state in prepare(): work on a copy.
        return copy.deepcopy(self.method)


@Substitution(
    source=SOURCE,
    method=_METHOD.format(
        classification_methods=', "mcc", "entropy"',
        more_methods=_CLASSIFIER_METHODS,
    ),
    head=HEAD,
    source_classes=SOURCE_CLASSES,
    fine_tuning=FINE_TUNING,
    training=TRAINING,
    attributes=NETWORK_ATTRIBUTES,
)
class DomainAdaptationClassifier(
    SourceClassesMixin, ClassifierTargetsMixin, ClassifierMixin, _DomainAdaptation
):
    """Fine-tune a classifier that also fits the target domain's unlabelled inputs.

    Domain adaptation from the pretrained network: minimises
    ``Σ_i w_i CE(y_i, f_θ(x_i)) / Σ_i w_i + lam · K(θ)`` where the labelled
    rows ``(x_i, y_i)`` may come from the source domain, the target domain or
    both, and ``K`` is computed on one batch of ``unlabeled_data`` per step
    (see ``method``). Everything else (head, freezing, learning rates,
    seeding) is as in :class:`FineTunedClassifier`.

    Adaptation helps when the label of an input depends on the same features
    in both domains, and only their distribution moved (covariate shift);
    it cannot recover a labelling that changed, and a large ``lam`` can
    align the wrong classes. Compare it with fine-tuning on the same labels
    (``lam=0``) before trusting it: the user guide shows how.

    Parameters
    ----------
    {source}
    {method}
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
    FineTunedClassifier : the same without unlabelled data (``lam=0``).
    sktransfer.adaptation : the adaptation terms, instance weights and
        label-free scorers.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from sktransfer import DomainAdaptationClassifier, UnlabeledData
    >>> rng = np.random.default_rng(0)
    >>> X_source = rng.normal(size=(200, 4)).astype(np.float32)
    >>> y_source = (X_source[:, 0] > 0).astype(int)
    >>> X_target = X_source * 1.5 + 0.5  # the same task, shifted inputs
    >>> source = torch.nn.Sequential(
    ...     torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    >>> clf = DomainAdaptationClassifier(
    ...     source, method="coral", lam=1.0, max_epochs=5, random_state=0)
    >>> _ = clf.fit(X_source, y_source, unlabeled_data=UnlabeledData(X_target))
    >>> clf.predict(X_target[:3]).shape
    (3,)
    """

    _parameter_constraints = {
        **_DomainAdaptation._parameter_constraints,
        "source_classes": ["array-like", None],
    }

    def __init__(
        self,
        source_module,
        *,
        method="coral",
        lam=1.0,
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
        self.method = method
        self.lam = lam
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
    method=_METHOD.format(classification_methods="", more_methods=""),
    head=HEAD,
    fine_tuning=FINE_TUNING,
    training=TRAINING,
    attributes=NETWORK_ATTRIBUTES,
)
class DomainAdaptationRegressor(
    RegressorTargetsMixin, RegressorMixin, _DomainAdaptation
):
    """Fine-tune a regressor that also fits the target domain's unlabelled inputs.

    Domain adaptation from the pretrained network: minimises
    ``Σ_i w_i ‖y_i − f_θ(x_i)‖² / Σ_i w_i + lam · K(θ)``, ``K`` computed on
    one batch of ``unlabeled_data`` per step (see ``method``). Everything
    else is as in :class:`FineTunedRegressor`. Feature alignment is a
    weaker prior for regression than for classification (there are no
    classes to keep apart): compare with ``lam=0`` before trusting it.

    Parameters
    ----------
    {source}
    {method}
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
    FineTunedRegressor : the same without unlabelled data (``lam=0``).
    DomainAdaptationClassifier : the same for classification.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from sktransfer import DomainAdaptationRegressor, UnlabeledData
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 4)).astype(np.float32)
    >>> y = X[:, 0] - X[:, 1]
    >>> source = torch.nn.Sequential(
    ...     torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    >>> reg = DomainAdaptationRegressor(
    ...     source, method="mmd", lam=0.5, max_epochs=5, random_state=0)
    >>> reg.fit(X, y, unlabeled_data=UnlabeledData(X + 1.0)).predict(X[:2]).shape
    (2,)
    """

    def __init__(
        self,
        source_module,
        *,
        method="coral",
        lam=1.0,
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
        self.method = method
        self.lam = lam
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

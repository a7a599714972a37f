"""Parameter transfer (fine-tuning) and structure transfer (the baseline)."""

import torch
from sklearn.base import ClassifierMixin, RegressorMixin

from ._network_estimator import (
    BaseNetworkEstimator,
    ClassifierTargetsMixin,
    RegressorTargetsMixin,
)
from ._source_classes import SOURCE_CLASSES_PARAMETER, SourceClassesMixin

__all__ = ["FineTunedClassifier", "FineTunedRegressor"]

_NETWORK_PARAMETERS = """\
    source_module : torch.nn.Module, fitted skorch net, source spec, or callable
        The pretrained network: a module instance, a fitted skorch
        ``NeuralNet`` (its ``module_`` is used), a named model from
        :mod:`sktransfer.sources` (loaded in ``fit``; a Hugging Face text
        encoder reads the token ids of ``spec.tokenize(texts)``), or a module
        class / factory called without arguments. The estimator trains its
        own copy; the object you pass is never modified.
    source_weights : str or os.PathLike, default=None
        A ``.safetensors`` or torch state-dict file loaded into the copy,
        torch files with ``weights_only=True``.
    head : {"auto", "reuse", "new"}, default="auto"
        The network is split into a *body* (everything but its final layer
        with parameters) and a *head* (that layer). ``"reuse"`` keeps the
        source head, so the target's outputs must match the source's
        (output ``i`` is taken to mean ``classes_[i]``); ``"new"`` puts a
        new linear head on the body (see ``head_init``); ``"auto"`` reuses
        the head only on evidence that its outputs mean the target's:
        ``source_classes`` names an output for every class (classifiers), or
        the source's own predictions on the training data agree with ``y``
        far above chance (classification: a one-sided exact binomial test at
        level 0.01 against the agreement of independent labels, and Cohen's
        kappa at least 0.1; regression: every output's Pearson correlation
        with its target column at least 0.3 and significantly positive).
        Equal widths alone never decide it. The choice and its reason are
        recorded in ``head_choice_`` and ``head_choice_reason_``. A source
        without a head (a text encoder, a timm model made with
        ``num_classes=0``) always gets a new one.
"""

_TRAINING_SETTINGS = """\
    freeze : str, list of str or None, default=None
        Parts that do not train: names (or name prefixes) of the fitted
        network ``module_``, whose top-level parts are ``"body"`` and
        ``"head"`` (e.g. ``"body"``, ``["body.0", "body.1"]``).
    unfreeze_at : int or None, default=None
        Epoch (counted from 1) from which the frozen parts train too;
        None keeps them frozen throughout.
    body_lr_ratio : float, default=1.0
        The body learns with ``body_lr_ratio * lr``, the head with ``lr``
        (discriminative learning rates); 0 keeps the body's weights fixed
        while letting its batch-norm statistics adapt.
    reinitialize : bool, default=False
        True gives *structure transfer*: the same architecture with freshly
        initialised weights, i.e. training from scratch. It is the baseline
        that shows whether the pretrained weights help.
    head_init : {"linear_probe", "random"}, default="linear_probe"
        How a new head starts. ``"linear_probe"`` fits it first, with the
        body frozen, as a linear model on the source body's features (a
        logistic regression for classifiers, a ridge regression for
        regressors, on standardised features, folded into the head's
        weights), so that fine-tuning starts from a trained head and the
        body is not wrecked by the gradients of a random one (LP-FT, Kumar
        et al., 2022). ``"random"``: PyTorch's initialisation. Not used when
        the source head is reused or with ``reinitialize=True``.
    interpolation : float in [0, 1], default=1.0
        Weight-space ensembling (WiSE-FT, Wortsman et al., 2022): the fitted
        weights are ``(1 − interpolation) · θ_start + interpolation · θ``,
        where ``θ_start`` are the weights training started from (the source
        weights, with the new head's linear probe) and ``θ`` the fine-tuned
        ones; batch-norm statistics are interpolated too. 1 keeps the
        fine-tuned weights; smaller values keep more of the source's
        robustness under distribution shift. Not applied with
        ``reinitialize=True``, where training starts from random weights.
    max_epochs : int or "auto", default="auto"
        Number of passes over the training data. ``"auto"``: enough passes
        for 300 gradient steps, at least 30 and at most 100 (a few samples
        per class get 100 passes, a few hundred samples 30).
    lr : float, default=1e-3
        Learning rate of the optimizer.
    batch_size : int, default=32
        Samples per gradient step (and per forward pass when predicting).
    optimizer : torch optimizer class, default=torch.optim.Adam
    optimizer_kwargs : dict or None, default=None
        Extra arguments of the optimizer, e.g. ``{"weight_decay": 1e-4}``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified for
        classifiers), stop when its loss has not improved for
        ``n_iter_no_change`` epochs and keep the best epoch's weights. When
        False, every sample trains.
    validation_fraction : float, default=0.1
        Share of the training data held out when ``early_stopping=True``.
    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.
    device : str or torch.device, default="cpu"
        Where the network trains and predicts, e.g. ``"cuda"``.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation of new parts, dropout, batch order and
        the validation split. A fixed int gives identical predictions across
        fits on the CPU. torch's global random state is left as it was.
    verbose : int, default=0
        Above 0, print a table of losses per epoch.
"""

_SHARED_PARAMETERS = _NETWORK_PARAMETERS + _TRAINING_SETTINGS

# A classifier's parameters: the shared ones with source_classes after head.
_CLASSIFIER_PARAMETERS = (
    _NETWORK_PARAMETERS + SOURCE_CLASSES_PARAMETER + _TRAINING_SETTINGS
)

_SHARED_ATTRIBUTES = """\
    module_ : torch.nn.Module
        The fitted network, ``head(body(x))``, with parameters named
        ``body.*`` and ``head.*``.
    head_choice_ : {"reuse", "new"}
        Whether the source head was kept or replaced.
    head_choice_reason_ : str
        Why: what was asked for, or the evidence ``head="auto"`` weighed.
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
"""


class _FineTuned(BaseNetworkEstimator):
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
        self.device = device
        self.random_state = random_state
        self.verbose = verbose


class FineTunedClassifier(
    SourceClassesMixin, ClassifierTargetsMixin, ClassifierMixin, _FineTuned
):
    __doc__ = f"""Fine-tune a pretrained network on a classification task.

    Parameter transfer: training starts from the source network's weights
    and minimises the (sample-weighted) cross-entropy on the target data,
    optionally with parts frozen or learning more slowly. With
    ``reinitialize=True`` the same estimator trains the architecture from
    scratch, the baseline any transfer result should be compared with.

    Parameters
    ----------
{_CLASSIFIER_PARAMETERS}
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, in the order of the network's outputs.
{_SHARED_ATTRIBUTES}
    See Also
    --------
    FineTunedRegressor : the same for regression.
    PretrainedFeatureTransformer : use the frozen network as a featurizer.

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
        **_FineTuned._parameter_constraints,
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
        device="cpu",
        random_state=None,
        verbose=0,
    ):
        super().__init__(
            source_module,
            source_weights=source_weights,
            head=head,
            freeze=freeze,
            unfreeze_at=unfreeze_at,
            body_lr_ratio=body_lr_ratio,
            reinitialize=reinitialize,
            head_init=head_init,
            interpolation=interpolation,
            max_epochs=max_epochs,
            lr=lr,
            batch_size=batch_size,
            optimizer=optimizer,
            optimizer_kwargs=optimizer_kwargs,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            device=device,
            random_state=random_state,
            verbose=verbose,
        )
        self.source_classes = source_classes


class FineTunedRegressor(RegressorTargetsMixin, RegressorMixin, _FineTuned):
    __doc__ = f"""Fine-tune a pretrained network on a regression task.

    Parameter transfer: training starts from the source network's weights
    and minimises the (sample-weighted) mean squared error on the target
    data. With ``reinitialize=True`` it trains the architecture from scratch,
    the baseline any transfer result should be compared with.

    Parameters
    ----------
{_SHARED_PARAMETERS}
    Attributes
    ----------
    n_outputs_ : int
        Number of target columns.
{_SHARED_ATTRIBUTES}
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

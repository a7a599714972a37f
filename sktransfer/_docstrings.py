"""Docstring sections shared by the estimators, and the decorator that fills them.

One mechanism, in the spirit of imbalanced-learn's ``Substitution``: a
docstring names a section in braces on a line of its own (``{training}``),
and :class:`Substitution` fills it in when the class is defined. Literal
braces in a docstring are doubled.
"""

__all__ = ["Substitution"]


class Substitution:
    """Fill the ``{name}`` placeholders of a class's or function's docstring.

    Parameters
    ----------
    **sections : str
        The text of each placeholder.
    """

    def __init__(self, **sections):
        self.sections = sections

    def __call__(self, documented):
        documented.__doc__ = documented.__doc__.format(**self.sections)
        return documented


SOURCE = """\
source_module : torch.nn.Module, fitted skorch net, source spec, or callable
        The pretrained network: a module instance, a fitted skorch
        ``NeuralNet`` (its ``module_`` is used), a named model from
        :mod:`sktransfer.sources` (loaded in ``fit``; a Hugging Face text
        encoder reads the token ids of ``spec.tokenize(texts)`` or of a
        :class:`~sktransfer.sources.TextTokenizer` step), or a module class /
        factory called without arguments. The estimator works on its own
        copy; the object you pass is never modified.
    source_weights : str or os.PathLike, default=None
        A ``.safetensors`` or torch state-dict file loaded into the copy,
        torch files with ``weights_only=True``."""

HEAD = """\
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
        ``num_classes=0``) always gets a new one."""

SOURCE_CLASSES = """\
source_classes : array-like of shape (n_source_outputs,) or None, \
default=None
        The label of each of the source head's outputs, in output order. When
        every class of ``y`` is among them, ``head="reuse"`` and ``"auto"``
        keep the source head restricted to the outputs of those classes, in
        ``classes_`` order (its final ``Linear`` layer keeps the rows of those
        classes), so a training set that lacks some source classes still
        reuses the head, and predictions are over ``classes_`` only. When a
        class of ``y`` is not among them, ``"reuse"`` raises a ``ValueError``
        naming it and ``"auto"`` puts a new head. Keeping some of the outputs
        needs a head whose final layer is a ``torch.nn.Linear`` (a
        ``ValueError`` says so otherwise). None: output ``i`` is
        ``classes_[i]`` and the head is reused only on the evidence of the
        source's predictions."""

FINE_TUNING = """\
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
        regressors, on centred features of one common scale, folded into
        the head's weights), so that fine-tuning starts from a trained head
        and the body is not wrecked by the gradients of a random one (LP-FT,
        Kumar et al., 2022). ``"random"``: PyTorch's initialisation. Not
        used when the source head is reused or with ``reinitialize=True``.
    interpolation : float in [0, 1], default=1.0
        Weight-space ensembling (WiSE-FT, Wortsman et al., 2022): the fitted
        weights are ``(1 − interpolation) · θ_start + interpolation · θ``,
        where ``θ_start`` are the weights training started from (the source
        weights, with the new head's linear probe) and ``θ`` the fine-tuned
        ones; batch-norm statistics are interpolated too. 1 keeps the
        fine-tuned weights; smaller values keep more of the source's
        robustness under distribution shift. Not applied with
        ``reinitialize=True``, where training starts from random weights."""

TRAINING = """\
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
    callbacks : list of skorch callbacks or (name, callback) pairs, default=None
        Further skorch callbacks of the training (``Checkpoint``,
        ``LRScheduler``, ``EpochScoring``, ``ProgressBar``, loggers…); each
        fit works on copies, so the objects you pass are never changed.
    net_params : dict or None, default=None
        Further arguments of the skorch net that trains the network, by
        skorch's names, e.g. ``{"iterator_train__num_workers": 2}`` for a
        torch ``Dataset`` given as X (arrays held in memory are batched on
        the device, without a DataLoader). One entry can be set, or
        grid-searched, as ``net_params__<name>``.
    augmentation : callable or None, default=None
        ``augmentation(inputs) -> inputs``, applied to each training batch of
        inputs (a tensor on the training device), e.g. random crops or
        noise; never to validation or prediction.
    device : str or torch.device, default="cpu"
        Where the network trains and predicts, e.g. ``"cuda"``.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation of new parts, dropout, batch order and
        the validation split. A fixed int gives identical predictions across
        fits on the CPU. torch's global random state is left as it was.
    verbose : int, default=0
        Above 0, print a table of losses per epoch (with the held-out
        accuracy or R² when ``early_stopping``), and how far a long epoch
        has got every few seconds."""

NETWORK_ATTRIBUTES = """\
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
        Column names of a DataFrame passed to ``fit``."""

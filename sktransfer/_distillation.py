"""Knowledge distillation: train a student network on the source's outputs."""

from numbers import Real

import torch
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from ._core import TRAINING_CONSTRAINTS, NetworkEstimator
from ._data import endless_batches, steps_covering
from ._docstrings import TRAINING, Substitution
from ._dry_run import resolve_other_network
from ._heads import (
    forward_probe,
    logits_head,
    new_head,
    output_width,
    output_width_error,
)
from ._modules import BodyHeadModule
from ._plan import TrainingPlan
from ._saved_attributes import one_of
from ._source import split_network
from ._source_classes import check_source_classes, rows_of_classes
from ._targets import ClassifierTargetsMixin, RegressorTargetsMixin
from ._unlabeled import unlabeled_dataset
from ._validation import network_dtype
from .knowledge import OutputDistillation

__all__ = ["DistilledClassifier", "DistilledRegressor"]


class _StudentModule(BodyHeadModule):
    """The student, ``head(body(x))``, with an auxiliary head for the source.

    ``auxiliary_head`` reads the body's features and has one output per
    source output; it learns the source's outputs when they are not the
    target's. Prediction never uses it.
    """

    def __init__(self, body, head, auxiliary_head):
        super().__init__(body, head)
        self.auxiliary_head = auxiliary_head


class _StudentDistillation(OutputDistillation):
    """:class:`OutputDistillation` of the source's outputs into a student.

    ``columns`` restricts the source's logits to the target's classes;
    ``auxiliary`` distils into the student's auxiliary head instead of its
    own outputs.
    """

    weight_name = "alpha"

    def __init__(self, temperature, columns, auxiliary):
        super().__init__(temperature)
        self.columns = columns
        self.auxiliary = auxiliary

    def _source_logits(self, context):
        logits = context.map_batches(context.source_module, data=self._rows(context))
        if self.columns is None:
            return logits
        return logits[:, torch.as_tensor(self.columns, device=logits.device)]

    def _rows(self, context):
        """The rows distilled on: the training rows (None)."""
        return None

    def _student_logits(self, context):
        if self.auxiliary:
            return lambda module, features, outputs: module.auxiliary_head(features)
        return lambda module, features, outputs: outputs


class _UnlabeledDistillation(_StudentDistillation):
    """The same distillation on one batch of unlabelled target inputs per step.

    The teacher's outputs on every unlabelled row are computed once per fit;
    each step draws a batch of those rows (reshuffled every pass) and
    distils them into the student, so the student learns the teacher where
    no labels are.
    """

    def _rows(self, context):
        return context.unlabeled_data

    def prepare(self, context):
        super().prepare(context)
        self._sample_weight = None
        self._stream = endless_batches(
            context.unlabeled_data, context.training_batch_size, context.generator
        )

    def release(self):
        super().release()
        self._stream = None

    def __call__(self, module, inputs, features, outputs, index):
        unlabeled, rows = next(self._stream)
        features = module.body(unlabeled)
        # The auxiliary head reads the features only: no need for the outputs.
        outputs = None if self.auxiliary else module.head(features)
        return super().__call__(module, unlabeled, features, outputs, rows.index)


class _Distilled(NetworkEstimator):
    """Train ``student_module`` on the labels and the source's outputs."""

    _saved_attributes = {"distilled_into_": one_of("head", "auxiliary", None)}

    _parameter_constraints = {
        **TRAINING_CONSTRAINTS,
        "student_module": "no_validation",
        "alpha": [Interval(Real, 0, 1, closed="both")],
        "head": [StrOptions({"reuse", "new"})],
    }

    # No other estimator consumes it: requested by default under routing.
    __metadata_request__fit = {"unlabeled_data": True}

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, unlabeled_data=None):
        """Train the student on (X, y) and the source network's outputs.

        Parameters
        ----------
        X : array-like, DataFrame or torch Dataset of shape (n_samples, ...)
            Inputs both networks accept.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target labels (classifier) or values (regressor).
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the labelled rows.
        unlabeled_data : UnlabeledData, default=None
            Target inputs without labels: the student also learns the
            source's outputs on them, one batch per step, weighted ``alpha``
            like the distillation on the labelled rows. This is where
            distillation helps most: the teacher labels what nobody did.

        Returns
        -------
        self : object
        """
        return self._fit_guarded(X, y, sample_weight, unlabeled_data=unlabeled_data)

    def _plan(self, source_network, probe, rows, unlabeled_data=None):
        source_outputs = forward_probe(source_network, probe)
        vector = source_outputs.ndim == 2
        if not vector and self.alpha > 0:
            kind = "logits" if self._task == "classification" else "outputs"
            raise ValueError(
                f"Distillation needs the source network's {kind}, one vector of "
                "shape (n_source_outputs,) per sample, but on samples of shape "
                f"{tuple(probe.shape[1:])} it gives outputs of shape "
                f"{tuple(source_outputs.shape[1:])} per sample. Layers that act "
                f"on the last axis (e.g. Linear) give one row of {kind} per "
                "position of n-D input: pass X of the sample shape the source "
                "network reads, or a source that maps such samples to one "
                f"vector of {kind}."
            )
        # With alpha=0 the source's outputs are never used.
        columns, auxiliary = (
            self._match_source_outputs(source_outputs.shape[1])
            if vector
            else (None, False)
        )
        student = resolve_other_network(self.student_module, "student_module", probe)
        body, head, head_name = split_network(student)
        features = forward_probe(body, probe, "student network")
        n_outputs = self._n_outputs()
        if self.head == "reuse":
            width = output_width(head, features)
            if width[0] != n_outputs:
                raise output_width_error(
                    "student network",
                    head_name,
                    width,
                    n_outputs,
                    self._output_description(),
                    "Give the student one output per target, or pass head='new' "
                    "to replace its final layer.",
                )
            head = logits_head(head)
        else:
            head = new_head(features, n_outputs, network_dtype(body))
        if auxiliary and self.alpha > 0:
            module = _StudentModule(
                body,
                head,
                new_head(features, source_outputs.shape[1], network_dtype(body)),
            )
        else:
            module = BodyHeadModule(body, head)
        module.train()
        plan = TrainingPlan(
            module,
            self._criterion(),
            fitted={
                "head_choice_": self.head,
                "head_choice_reason_": f"head={self.head!r} was asked for",
                "distilled_into_": (
                    None if self.alpha == 0 else ("auxiliary" if auxiliary else "head")
                ),
            },
            loss_weight=1.0 - self.alpha,
        )
        if self.alpha > 0 and rows is not None:
            teacher_body, teacher_head, _ = split_network(source_network)
            plan.reference_module = BodyHeadModule(
                teacher_body, logits_head(teacher_head)
            )
            plan.terms = [
                (
                    self.alpha,
                    _StudentDistillation(self._temperature(), columns, auxiliary),
                )
            ]
            plan.term_context = {"head_is_new": False, "task": self._task}
            if unlabeled_data is not None:
                plan.terms.append(
                    (
                        self.alpha,
                        _UnlabeledDistillation(self._temperature(), columns, auxiliary),
                    )
                )
                unlabeled = unlabeled_dataset(
                    unlabeled_data, probe, self.device, source_network
                )
                plan.term_context["unlabeled_data"] = unlabeled
                plan.steps_per_epoch = steps_covering(
                    self.batch_size, rows.data, unlabeled
                )
        return plan

    def _temperature(self):
        return 1.0


@Substitution(training=TRAINING)
class DistilledClassifier(ClassifierTargetsMixin, ClassifierMixin, _Distilled):
    r"""Train a student network on the source network's softened predictions.

    Knowledge distillation: the *student*, a network of any architecture
    (usually smaller than the source), minimises

    .. math::

        \alpha\,T^2\,\frac{{\sum_{{i\in B}} w_i\,
            \mathrm{{KL}}\big(\sigma(z^{{s}}_i / T)\,\Vert\,\sigma(z_i / T)\big)}}
            {{\sum_{{i\in B}} w_i}}
        + (1-\alpha)\,\frac{{\sum_{{i\in B}} w_i\,\mathrm{{CE}}(y_i, z_i)}}
            {{\sum_{{i\in B}} w_i}}

    where :math:`z^{{s}}_i` are the source network's logits on :math:`x_i`,
    :math:`z_i` the student's, :math:`\sigma` the softmax and :math:`w_i`
    the sample weights (1 by default) of the batch :math:`B`. The source
    logits are computed once per ``fit``, in batches and without gradients;
    the fitted model is the student alone, so ``predict`` never runs the
    source network.

    Which student outputs learn the source's: when the source scores every
    target class (``source_classes`` names them all, or, without
    ``source_classes``, the source has one output per class and output ``i``
    is taken to mean ``classes_[i]``), the student's own outputs are
    distilled, on the source logits of the target's classes
    (``distilled_into_ == "head"``). Otherwise (a source trained on other
    classes) an auxiliary head on the student's body, as wide as the
    source's output, learns the source's distribution while the student's
    head learns the target labels (``"auxiliary"``); the auxiliary head is
    not used to predict. Pass ``source_classes`` whenever the source's
    labels are known: a source of other classes but of the same width would
    otherwise be matched by position.

    Parameters
    ----------
    source_module : torch.nn.Module, fitted skorch net, or callable
        The pretrained *teacher* network, whose outputs are logits (a final
        ``Softmax`` is taken as log-probabilities). Never modified, never
        trained, not kept after ``fit``.
    student_module : torch.nn.Module, fitted skorch net, or callable
        The network trained, from its current weights; its final layer with
        parameters is its head. A private copy is trained; the object you pass
        is never modified.
    temperature : float, default=2.0
        Softmax temperature :math:`T` of both distributions; higher values
        expose more of the teacher's ranking of the wrong classes.
    alpha : float, default=0.5
        Weight of the distillation term in ``[0, 1]``; ``1 − alpha`` weighs
        the cross-entropy on the labels. ``alpha=0`` trains the student on the
        labels alone, exactly as ``FineTunedClassifier(student_module,
        head="reuse")`` would (the source only checks that X fits it).
    source_classes : array-like of shape (n_source_outputs,) or None
        The label of each of the source network's outputs, in output order.
        When every class of ``y`` is among them, the student's outputs are
        distilled on the source logits of those classes (a softmax over
        them); otherwise the auxiliary head is used. None: output ``i`` is
        ``classes_[i]`` when the source has one output per class, otherwise
        the auxiliary head is used.
    head : {{"reuse", "new"}}, default="reuse"
        ``"reuse"`` trains the student's own final layer, which must have one
        output per class (a ``ValueError`` says so otherwise); ``"new"``
        replaces it with a freshly initialised linear layer of that width.
    source_weights : str or os.PathLike, default=None
        A ``.safetensors`` or torch state-dict file loaded into the copy of
        the teacher.
    {training}

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, in the order of the student's outputs.
    distilled_into_ : {{"head", "auxiliary"}} or None
        Which student outputs learned the source's distribution; None when
        ``alpha=0``.
    head_choice_ : {{"reuse", "new"}}
        Whether the student's own final layer was kept.
    head_choice_reason_ : str
    module_ : torch.nn.Module
        The fitted student, ``head(body(x))``.
    net_ : skorch.NeuralNet
        The skorch net that trained ``module_``.
    history_ : skorch.History
        Losses per epoch; ``train_loss`` includes the distillation term.
    n_iter_ : int
        Number of epochs trained.
    n_features_in_ : int
        Number of features (2-D input) or channels (n-D input) seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names of a DataFrame passed to ``fit``.

    See Also
    --------
    DistilledRegressor : the same for regression.
    KnowledgeRegularizedClassifier : ``knowledge="outputs"`` distils into
        the source architecture itself (Learning without Forgetting).
    FusionClassifier : keep the source and add a trainable network beside it.

    References
    ----------
    Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network",
    2015.

    Examples
    --------
    >>> import torch
    >>> from sklearn.datasets import load_iris
    >>> from sktransfer import DistilledClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> teacher = torch.nn.Sequential(
    ...     torch.nn.Linear(4, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))
    >>> student = torch.nn.Linear(4, 3)
    >>> clf = DistilledClassifier(
    ...     teacher, student, alpha=0.5, max_epochs=30, lr=0.01, random_state=0)
    >>> clf.fit(X, y).distilled_into_
    'head'
    >>> clf.predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints = {
        **_Distilled._parameter_constraints,
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "source_classes": ["array-like", None],
    }

    def __init__(
        self,
        source_module,
        student_module,
        *,
        temperature=2.0,
        alpha=0.5,
        source_classes=None,
        head="reuse",
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
        self.student_module = student_module
        self.temperature = temperature
        self.alpha = alpha
        self.source_classes = source_classes
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

    def _temperature(self):
        return self.temperature

    def _match_source_outputs(self, n_source_outputs):
        """``(columns, auxiliary)``: the source logits of ``classes_``, or none.

        Without ``source_classes``, the outputs are the classes by position
        when there are as many; with it, by label. A class the source has no
        output for sends the distillation to an auxiliary head.
        """
        classes = self.classes_.tolist()
        if self.source_classes is None:
            return None, n_source_outputs != len(classes)
        labels = check_source_classes(
            self.source_classes, n_source_outputs, "the source network"
        )
        rows, missing = rows_of_classes(labels, classes)
        if missing:
            return None, True
        return (rows if rows is not None else None), False


@Substitution(training=TRAINING)
class DistilledRegressor(RegressorTargetsMixin, RegressorMixin, _Distilled):
    r"""Train a student network on the source network's predicted values.

    Knowledge distillation for regression: the *student*, a network of any
    architecture (usually smaller than the source), minimises

    .. math::

        \alpha\,\frac{{\sum_{{i\in B}} w_i\,\lVert f_s(x_i) - f(x_i)\rVert^2}}
            {{\sum_{{i\in B}} w_i}}
        + (1-\alpha)\,\frac{{\sum_{{i\in B}} w_i\,\lVert y_i - f(x_i)\rVert^2}}
            {{\sum_{{i\in B}} w_i}}

    (squared norms averaged over the outputs), where :math:`f_s` is the
    source network, computed once per ``fit``, and :math:`f` the student.
    When the source has one output per target column, the student's outputs
    learn the source's (``distilled_into_ == "head"``); otherwise an
    auxiliary head on the student's body, as wide as the source's output,
    learns them while the student's head learns ``y`` (``"auxiliary"``).

    Parameters
    ----------
    source_module : torch.nn.Module, fitted skorch net, or callable
        The pretrained *teacher* network. Never modified, never trained, not
        kept after ``fit``.
    student_module : torch.nn.Module, fitted skorch net, or callable
        The network trained, from its current weights; its final layer with
        parameters is its head. A private copy is trained.
    alpha : float, default=0.5
        Weight of the distillation term in ``[0, 1]``; ``1 − alpha`` weighs
        the squared error on ``y``.
    head : {{"reuse", "new"}}, default="reuse"
        ``"reuse"`` trains the student's own final layer, which must have one
        output per target column; ``"new"`` replaces it with a freshly
        initialised linear layer of that width.
    source_weights : str or os.PathLike, default=None
        A ``.safetensors`` or torch state-dict file loaded into the copy of
        the teacher.
    {training}

    Attributes
    ----------
    n_outputs_ : int
        Number of target columns.
    distilled_into_ : {{"head", "auxiliary"}} or None
    head_choice_ : {{"reuse", "new"}}
    head_choice_reason_ : str
    module_ : torch.nn.Module
        The fitted student.
    net_ : skorch.NeuralNet
    history_ : skorch.History
    n_iter_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    See Also
    --------
    DistilledClassifier : the same for classification, with a temperature.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from sktransfer import DistilledRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(100, 3)).astype("float32")
    >>> teacher = torch.nn.Sequential(
    ...     torch.nn.Linear(3, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    >>> with torch.no_grad():
    ...     y = teacher(torch.as_tensor(X)).numpy().ravel()
    >>> reg = DistilledRegressor(
    ...     teacher, torch.nn.Linear(3, 1), alpha=0.5, lr=0.01, random_state=0)
    >>> reg.fit(X, y).distilled_into_
    'head'
    """

    def __init__(
        self,
        source_module,
        student_module,
        *,
        alpha=0.5,
        head="reuse",
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
        self.student_module = student_module
        self.alpha = alpha
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

    def _match_source_outputs(self, n_source_outputs):
        return None, n_source_outputs != self.n_outputs_

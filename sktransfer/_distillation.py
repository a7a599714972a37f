"""Knowledge distillation: train a student network on the source's soft outputs."""

from numbers import Real

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions

from ._engine import BodyHeadModule
from ._network_estimator import (
    ClassifierTargetsMixin,
    _output_width,
    logits_head,
)
from ._saved_attributes import one_of
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
from .knowledge import KnowledgeTerm, SourceContext

__all__ = ["DistilledClassifier"]


class _StudentModule(BodyHeadModule):
    """The student, ``head(body(x))``, with an auxiliary head for soft targets.

    ``auxiliary_head`` reads the body's features and has one output per
    source output; it learns the source's distribution when the source's
    classes are not the target's. Prediction never uses it.
    """

    def __init__(self, body, head, auxiliary_head):
        super().__init__(body, head)
        self.auxiliary_head = auxiliary_head


class _SoftTargets(KnowledgeTerm):
    r"""``weight · T² · KL(σ(z_source / T) ‖ σ(z_student / T))``, batch mean.

    The source logits ``z_source`` are computed once, before training, on
    the training inputs (restricted to ``columns`` when given). With
    :math:`p = σ(z_{source}/T)` fixed, the divergence is
    :math:`\sum p \log p - \sum p \log σ(z_{student}/T)`: the first sum is
    cached per row, so a step computes only the second. Rows are weighted by
    ``sample_weight`` like the cross-entropy (a row of weight 2 counts as a
    repeated row in both terms).
    """

    weight_name = "alpha"

    def __init__(self, weight, temperature, columns, auxiliary):
        self.weight = weight
        self.temperature = temperature
        self.columns = columns
        self.auxiliary = auxiliary

    def prepare(self, context, train_data):
        logits = context.map_batches(context.source_module)
        if self.columns is not None:
            logits = logits[:, self.columns]
        log_targets = torch.log_softmax(logits / self.temperature, dim=1)
        self._targets = log_targets.exp()
        self._negative_entropy = (self._targets * log_targets).sum(dim=1)
        # Equal weights (the usual case) take the cheaper unweighted path,
        # as the engine's batches do.
        self._sample_weight = train_data.sample_weight if train_data.weighted else None

    def release(self):
        self._targets = self._negative_entropy = self._sample_weight = None

    def __call__(self, module, inputs, features, outputs, index):
        student = module.auxiliary_head(features) if self.auxiliary else outputs
        log_student = torch.log_softmax(student / self.temperature, dim=1)
        scale = self.weight * self.temperature**2
        if self._sample_weight is None:
            cross = (self._targets[index] * log_student).sum()
            divergence = self._negative_entropy[index].sum() - cross
            return divergence * (scale / student.shape[0])
        per_row = self._negative_entropy[index] - (
            self._targets[index] * log_student
        ).sum(dim=1)
        weight = self._sample_weight[index]
        return (
            (per_row * weight).sum()
            * scale
            / weight.sum().clamp_min(torch.finfo(weight.dtype).tiny)
        )


class DistilledClassifier(
    ClassifierTargetsMixin, ClassifierMixin, MultiNetworkEstimator
):
    r"""Train a student network on the source network's softened predictions.

    Knowledge distillation: the *student*, a network of any architecture
    (usually smaller than the source), minimises

    .. math::

        \alpha\,T^2\,\frac{\sum_{i\in B} w_i\,
            \mathrm{KL}\big(\sigma(z^{s}_i / T)\,\Vert\,\sigma(z_i / T)\big)}
            {\sum_{i\in B} w_i}
        + (1-\alpha)\,\frac{\sum_{i\in B} w_i\,\mathrm{CE}(y_i, z_i)}
            {\sum_{i\in B} w_i}

    where :math:`z^{s}_i` are the source network's logits on :math:`x_i`,
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
        The pretrained *teacher* network, whose output are logits (a final
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
    source_classes : array-like of shape (n_source_outputs,) or None, default=None
        The label of each of the source network's outputs, in output order.
        When every class of ``y`` is among them, the student's outputs are
        distilled on the source logits of those classes (a softmax over
        them); otherwise the auxiliary head is used. None: output ``i`` is
        ``classes_[i]`` when the source has one output per class, otherwise
        the auxiliary head is used.
    head : {"reuse", "new"}, default="reuse"
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
    distilled_into_ : {"head", "auxiliary"} or None
        Which student outputs learned the source's distribution; None when
        ``alpha=0``.
    head_choice_ : {"reuse", "new"}
        Whether the student's own final layer was kept.
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

    _saved_attributes = {"distilled_into_": one_of("head", "auxiliary")}

    _parameter_constraints = {
        **TRAINING_CONSTRAINTS,
        "student_module": "no_validation",
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "alpha": [Interval(Real, 0, 1, closed="both")],
        "source_classes": ["array-like", None],
        "head": [StrOptions({"reuse", "new"})],
    }

    _fit_scratch = ("_columns",)

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
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _source_reference(self, source_network):
        # The teacher: already a private copy, and _build_module leaves it
        # whole.
        return source_network

    def _build_module(self, source_network, probe, training_rows=None):
        with torch.no_grad():
            source_network.eval()
            source_outputs = source_network(probe.clone())
        logits = isinstance(source_outputs, torch.Tensor) and source_outputs.ndim == 2
        if not logits and self.alpha > 0:
            raise ValueError(
                "Distillation needs the source network's logits, one vector of "
                "shape (n_source_outputs,) per sample, but on samples of shape "
                f"{tuple(probe.shape[1:])} it {_describe(source_outputs)}. "
                "Layers that act on the last axis (e.g. Linear) give one row of "
                "logits per position of n-D input: pass X of the sample shape "
                "the source network classifies, or a source that maps such "
                "samples to one vector of logits."
            )
        # With alpha=0 the source's outputs are never used.
        self._columns, auxiliary = (
            self._match_source_outputs(source_outputs.shape[1])
            if logits
            else (None, False)
        )
        self.distilled_into_ = (
            None if self.alpha == 0 else ("auxiliary" if auxiliary else "head")
        )

        student = resolve_other_network(self.student_module, "student_module", probe)
        probe_network(student, probe, "student network")
        body, head, head_name = split_network(student)
        features = probe_network(body, probe, "student network")
        width = _output_width(head, features)
        n_classes = self.classes_.shape[0]
        if self.head == "reuse":
            if width[0] != n_classes:
                raise output_width_error(
                    "student network",
                    head_name,
                    width,
                    n_classes,
                    self.classes_,
                    "Give the student one output per class, or pass head='new' "
                    "to replace its final layer.",
                )
            head, self.head_choice_ = logits_head(head), "reuse"
        else:
            head = new_head(features, n_classes, network_dtype(body))
            self.head_choice_ = "new"
        self.head_choice_reason_ = f"head={self.head!r} was asked for"
        if self.distilled_into_ == "auxiliary":
            auxiliary_head = new_head(
                features, source_outputs.shape[1], network_dtype(body)
            )
            module = _StudentModule(body, head, auxiliary_head)
        else:
            module = BodyHeadModule(body, head)
        module.train()
        return module

    def _match_source_outputs(self, n_source_outputs):
        """Columns of the source logits for ``classes_`` and whether to use an
        auxiliary head."""
        if self.source_classes is None:
            if n_source_outputs == self.classes_.shape[0]:
                return None, False
            return None, True
        source_classes = np.asarray(self.source_classes)
        if source_classes.ndim != 1 or source_classes.shape[0] != n_source_outputs:
            raise ValueError(
                f"source_classes names {source_classes.size} labels, but the "
                f"source network has {n_source_outputs} outputs: give one label "
                "per output, in output order."
            )
        if np.unique(source_classes).shape[0] != source_classes.shape[0]:
            raise ValueError("source_classes holds a label more than once.")
        known = set(source_classes.tolist())
        if not all(c in known for c in self.classes_.tolist()):
            # The source has no output for some target class.
            return None, True
        lookup = {label: i for i, label in enumerate(source_classes.tolist())}
        columns = [lookup[c] for c in self.classes_.tolist()]
        return torch.tensor(columns), False

    def _make_penalty(self, source_reference, train_data, module, **fit_data):
        if self.alpha == 0:
            return None
        body, head, _ = split_network(source_reference)
        teacher = BodyHeadModule(body, logits_head(head)).to(self.device)
        teacher.requires_grad_(False).eval()
        context = SourceContext(
            source_module=teacher,
            target_module=module,
            inputs=train_data.X,
            batch_size=max(self.batch_size, 256),
            head_is_new=self.head_choice_ == "new",
            task="classification",
        )
        columns = None if self._columns is None else self._columns.to(self.device)
        term = _SoftTargets(
            self.alpha,
            self.temperature,
            columns,
            auxiliary=self.distilled_into_ == "auxiliary",
        )
        term.prepare(context, train_data)
        return term

    def _engine_options(self, train_data, penalty):
        return {"loss_weight": 1.0 - self.alpha}


def _describe(outputs):
    if isinstance(outputs, torch.Tensor):
        return f"gives outputs of shape {tuple(outputs.shape[1:])} per sample"
    return f"returns a {type(outputs).__name__}, not a tensor"


DistilledClassifier.__doc__ = DistilledClassifier.__doc__.replace(
    "    {training}\n", TRAINING_PARAMETERS
)

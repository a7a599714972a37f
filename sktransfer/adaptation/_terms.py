"""Domain adaptation losses, as knowledge terms on unlabelled target batches.

Each term draws one batch of the unlabelled target inputs
(``context.unlabeled_data``) per training step and compares what the network
makes of it with the labelled batch, or asks something of its predictions.
They follow the :class:`~sktransfer.knowledge.KnowledgeTerm` protocol, so the
training engine needs to know nothing of them.
"""

import itertools
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, validate_parameter_constraints
from torch import nn
from torch.nn import functional

from .._data import endless_batches
from .._seeding import seeded
from ..knowledge import KnowledgeTerm

__all__ = [
    "ADAPTATION_METHODS",
    "CLASS_PROBABILITY_METHODS",
    "CORAL",
    "MMD",
    "DomainAdversarial",
    "EntropyMinimization",
    "MinimumClassConfusion",
]


class _UnlabeledBatchTerm(KnowledgeTerm):
    """A term that reads one batch of unlabelled target inputs per call."""

    _parameter_constraints = {}
    _classification_only = False

    def prepare(self, context):
        name = type(self).__name__
        validate_parameter_constraints(
            self._parameter_constraints,
            {key: getattr(self, key) for key in self._parameter_constraints},
            caller_name=name,
        )
        if context.unlabeled_data is None:
            raise ValueError(
                f"{name} adapts to the target domain from its unlabelled inputs: "
                "pass them to fit as unlabeled_data=UnlabeledData(X_target)."
            )
        if self._classification_only and context.task != "classification":
            raise ValueError(
                f"{name} works on class probabilities, which a regressor does not "
                "predict; use CORAL, MMD or DomainAdversarial for regression."
            )
        self._stream = endless_batches(
            context.unlabeled_data, context.training_batch_size, context.generator
        )

    def release(self):
        self._stream = None

    def _unlabeled_inputs(self):
        inputs, _ = next(self._stream)
        return inputs


class _FeatureAlignment(_UnlabeledBatchTerm):
    """``loss(labelled_features, unlabelled_features)`` of the body's features."""

    def __call__(self, module, inputs, features, outputs, index):
        return self.loss(features, module.body(self._unlabeled_inputs()))


class _TargetPrediction(_UnlabeledBatchTerm):
    """``loss(unlabelled_logits)`` of the network's outputs on target inputs."""

    _classification_only = True

    def __call__(self, module, inputs, features, outputs, index):
        return self.loss(module.head(module.body(self._unlabeled_inputs())))


class CORAL(_FeatureAlignment):
    r"""Deep CORAL: align the covariances of labelled and unlabelled features.

    .. math::

        K(\theta) = \frac{1}{4 d^2}\,\lVert C_S - C_T \rVert_F^2

    where :math:`C_S` and :math:`C_T` are the :math:`d \times d` covariance
    matrices (unbiased, denominator :math:`n - 1`) of the body's features on
    the labelled batch and on one batch of unlabelled target inputs, and
    :math:`\lVert\cdot\rVert_F` the Frobenius norm. Features of any shape are
    flattened to :math:`d` values per sample. A batch of one sample has no
    covariance; it counts as zero.

    Shapes: features ``(batch, ...)``; the call returns a scalar.

    References
    ----------
    Sun & Saenko, "Deep CORAL: Correlation Alignment for Deep Domain
    Adaptation", ECCV 2016 Workshops.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.adaptation import CORAL
    >>> features = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    >>> CORAL().loss(features, features).item()
    0.0
    >>> CORAL().loss(features, 2 * features).item() > 0
    True
    """

    def loss(self, labelled_features, unlabelled_features):
        """The CORAL distance between two batches of features.

        Parameters
        ----------
        labelled_features, unlabelled_features : torch.Tensor of shape (n, ...)
            Features of the two domains; the batch sizes may differ.

        Returns
        -------
        loss : torch.Tensor of shape ()
        """
        labelled = labelled_features.flatten(start_dim=1)
        unlabelled = unlabelled_features.flatten(start_dim=1)
        n_features = labelled.shape[1]
        difference = _covariance(labelled) - _covariance(unlabelled)
        return difference.pow(2).sum() / (4 * n_features**2)


def _covariance(features):
    centred = features - features.mean(dim=0, keepdim=True)
    return centred.T @ centred / max(features.shape[0] - 1, 1)


class MMD(_FeatureAlignment):
    r"""Multi-kernel maximum mean discrepancy between the two domains' features.

    The squared distance between the mean embeddings of the labelled batch
    :math:`S` and of one unlabelled target batch :math:`T` under the average
    :math:`k` of Gaussian kernels (DAN):

    .. math::

        K(\theta) = \frac{1}{|S|^2}\sum_{i,j \in S} k(s_i, s_j)
            + \frac{1}{|T|^2}\sum_{i,j \in T} k(t_i, t_j)
            - \frac{2}{|S|\,|T|}\sum_{i \in S,\, j \in T} k(s_i, t_j),
        \qquad
        k(x, x') = \frac{1}{M}\sum_{m=1}^{M}
            \exp\!\Big(-\frac{\lVert x - x'\rVert^2}{\rho_m\,\gamma}\Big)

    with :math:`\rho_m` the ``kernel_multipliers`` and :math:`\gamma` the mean
    squared distance between distinct samples of both batches together
    (computed on every call, without gradient), so that the kernels follow
    the scale of the features as they train. Features of any shape are
    flattened.

    This is the *biased* (V-statistic) estimate: it is never negative, and
    zero when both batches hold the same samples. With Gaussian kernels
    (:math:`k(x, x) = 1`) it differs from the unbiased U-statistic only by
    the constant :math:`1/|S| + 1/|T|` and factors :math:`(n-1)/n` on the
    within-domain sums, so both train alike. The batches may differ in size.

    Parameters
    ----------
    kernel_multipliers : tuple of float, default=(0.5, 1, 2, 4, 8)
        Widths of the kernels, as multiples of :math:`\gamma`; several widths
        make the discrepancy sensitive at several scales of the features.

    Shapes: features ``(batch, ...)``; the call returns a scalar.

    References
    ----------
    Gretton et al., "A Kernel Two-Sample Test", JMLR 2012; Long et al.,
    "Learning Transferable Features with Deep Adaptation Networks", ICML
    2015.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.adaptation import MMD
    >>> features = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    >>> MMD().loss(features, features).item()
    0.0
    >>> MMD().loss(features, features + 3).item() > 0.1
    True
    """

    _parameter_constraints = {"kernel_multipliers": ["array-like"]}

    def __init__(self, kernel_multipliers=(0.5, 1, 2, 4, 8)):
        self.kernel_multipliers = kernel_multipliers

    def prepare(self, context):
        super().prepare(context)
        self._check_multipliers()

    def _check_multipliers(self):
        multipliers = np.asarray(self.kernel_multipliers, dtype=float)
        if multipliers.ndim != 1 or not multipliers.size or (multipliers <= 0).any():
            raise ValueError(
                "kernel_multipliers must be a non-empty sequence of positive "
                f"numbers; got {self.kernel_multipliers!r}."
            )
        return multipliers.tolist()

    def loss(self, labelled_features, unlabelled_features):
        """The MMD estimate between two batches of features.

        Parameters
        ----------
        labelled_features, unlabelled_features : torch.Tensor of shape (n, ...)
            Features of the two domains; the batch sizes may differ.

        Returns
        -------
        loss : torch.Tensor of shape ()
        """
        multipliers = self._check_multipliers()
        labelled = labelled_features.flatten(start_dim=1)
        pooled = torch.cat([labelled, unlabelled_features.flatten(start_dim=1)])
        # ‖x‖² + ‖x'‖² − 2x·x' needs no (n, n, d) tensor, unlike a broadcast
        # difference, and has a gradient at zero distance, unlike cdist.
        squared_norms = pooled.pow(2).sum(dim=1)
        distances = (
            squared_norms[:, None] + squared_norms[None, :] - 2 * pooled @ pooled.T
        ).clamp_min(0)
        n_pooled = pooled.shape[0]
        scale = (
            distances.detach().sum() / max(n_pooled * (n_pooled - 1), 1)
        ).clamp_min(torch.finfo(distances.dtype).tiny)
        kernel = sum(
            torch.exp(-distances / (multiplier * scale)) for multiplier in multipliers
        )
        kernel = kernel / len(multipliers)
        n_labelled = labelled.shape[0]
        within_labelled = kernel[:n_labelled, :n_labelled].mean()
        within_unlabelled = kernel[n_labelled:, n_labelled:].mean()
        between = kernel[:n_labelled, n_labelled:].mean()
        # Never below zero in exact arithmetic; rounding can dip under it.
        return (within_labelled + within_unlabelled - 2 * between).clamp_min(0)


class _GradientReversal(torch.autograd.Function):
    """Identity forward; the gradient times ``-coefficient`` backward."""

    @staticmethod
    def forward(ctx, inputs, coefficient):
        ctx.coefficient = coefficient
        return inputs.view_as(inputs)

    @staticmethod
    def backward(ctx, grad_output):
        return -ctx.coefficient * grad_output, None


class DomainAdversarial(_FeatureAlignment, nn.Module):
    r"""DANN: features that a domain discriminator cannot tell apart.

    A small network :math:`D` (the discriminator) reads the body's features
    through a gradient-reversal layer :math:`R` and is trained to tell the
    labelled batch :math:`S` (domain 1) from one unlabelled target batch
    :math:`T` (domain 0), with :math:`\ell` the binary cross-entropy on a logit:

    .. math::

        K(\theta, \psi) = \tfrac{1}{2}\Big(
            \frac{1}{|S|}\sum_{i \in S} \ell\big(1, D_\psi(R(\phi_\theta(s_i)))\big)
            + \frac{1}{|T|}\sum_{j \in T} \ell\big(0, D_\psi(R(\phi_\theta(t_j)))\big)
        \Big)

    :math:`R` is the identity forward and multiplies the gradient by
    :math:`-c` (``reversal_coefficient``) backward, so one minimisation of
    ``loss + lam * K`` trains the discriminator to separate the domains
    (gradient ``lam · ∂K/∂ψ``) and the body to confuse it (gradient
    ``-lam · c · ∂K/∂θ``). The coefficient is fixed: the engine tells a term
    nothing of training progress, so Ganin et al.'s ramp from 0 to 1 is not
    used; ``lam`` scales both players (with Adam, the discriminator's steps
    barely depend on it), ``reversal_coefficient`` the body's side alone.

    The discriminator (``Linear``–``ReLU`` layers of ``hidden_units``, then
    one logit) is built in :meth:`prepare`, its input width read from one
    forward pass of the body, seeded from ``context.generator`` so that a
    fixed ``random_state`` fixes it, and put on the training device. The term
    is a :class:`torch.nn.Module` whose ``parameters()`` are the
    discriminator's, which the training engine adds to the optimizer. It is
    dropped by :meth:`release`: predictions never need it.

    Parameters
    ----------
    hidden_units : tuple of int, default=(100,)
        Widths of the discriminator's hidden layers; ``()`` makes it linear.
    reversal_coefficient : float, default=1.0
        :math:`c`, how strongly the body is pushed to confuse the
        discriminator relative to how strongly the discriminator learns.

    Shapes: features ``(batch, ...)`` (flattened); the call returns a scalar.

    References
    ----------
    Ganin et al., "Domain-Adversarial Training of Neural Networks", JMLR
    2016.

    Examples
    --------
    >>> from sktransfer.adaptation import DomainAdversarial
    >>> term = DomainAdversarial(hidden_units=(32,))
    >>> term
    DomainAdversarial(hidden_units=(32,), reversal_coefficient=1.0)
    >>> len(list(term.parameters()))  # the discriminator is built in prepare
    0
    """

    _parameter_constraints = {
        "hidden_units": [tuple, list],
        "reversal_coefficient": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, hidden_units=(100,), reversal_coefficient=1.0):
        nn.Module.__init__(self)
        self.hidden_units = hidden_units
        self.reversal_coefficient = reversal_coefficient
        self.discriminator = None

    def __repr__(self):
        return (
            f"{type(self).__name__}(hidden_units={self.hidden_units!r}, "
            f"reversal_coefficient={self.reversal_coefficient!r})"
        )

    def prepare(self, context):
        # Drawn before the stream's first shuffle: both follow the generator.
        seed = int(
            torch.randint(np.iinfo(np.int32).max, (1,), generator=context.generator)
        )
        super().prepare(context)
        if any(
            not isinstance(width, Integral) or width < 1 for width in self.hidden_units
        ):
            raise ValueError(
                "hidden_units must hold positive integers (the widths of the "
                f"discriminator's hidden layers); got {self.hidden_units!r}."
            )
        probe = context.unlabeled_data.X[:2]
        body = context.target_module.body
        # Evaluation mode: the probe must not move batch-norm statistics.
        modes = [(layer, layer.training) for layer in body.modules()]
        body.eval()
        try:
            with torch.no_grad():
                features = body(probe).flatten(start_dim=1)
        finally:
            for layer, training in modes:
                layer.training = training
        widths = [features.shape[1], *self.hidden_units]
        layers = []
        with seeded(seed, "cpu"):
            for n_in, n_out in itertools.pairwise(widths):
                layers += [nn.Linear(n_in, n_out), nn.ReLU()]
            discriminator = nn.Sequential(*layers, nn.Linear(widths[-1], 1))
        self.discriminator = discriminator.to(
            device=context.device, dtype=features.dtype
        )

    def release(self):
        super().release()
        self.discriminator = None

    def forward(self, features):
        """The discriminator's logits on reversed features, shape ``(batch,)``."""
        reversed_features = _GradientReversal.apply(
            features.flatten(start_dim=1), self.reversal_coefficient
        )
        return self.discriminator(reversed_features).squeeze(1)

    def loss(self, labelled_features, unlabelled_features):
        """The discriminator's loss on two batches of features (after prepare).

        Parameters
        ----------
        labelled_features, unlabelled_features : torch.Tensor of shape (n, ...)
            Features of the two domains; the batch sizes may differ.

        Returns
        -------
        loss : torch.Tensor of shape ()
        """
        if self.discriminator is None:
            raise RuntimeError(
                "DomainAdversarial builds its discriminator in prepare(context); "
                "call it before computing the loss."
            )
        n_labelled = labelled_features.shape[0]
        logits = self.forward(
            torch.cat(
                [
                    labelled_features.flatten(start_dim=1),
                    unlabelled_features.flatten(start_dim=1),
                ]
            )
        )
        labelled_loss = functional.binary_cross_entropy_with_logits(
            logits[:n_labelled], torch.ones_like(logits[:n_labelled])
        )
        unlabelled_loss = functional.binary_cross_entropy_with_logits(
            logits[n_labelled:], torch.zeros_like(logits[n_labelled:])
        )
        return 0.5 * (labelled_loss + unlabelled_loss)


def _class_logits(outputs):
    """Logits of shape (batch, n_classes); one column is a binary logit."""
    if outputs.ndim != 2:
        raise ValueError(
            "Class logits of shape (batch, n_classes) are needed; the network "
            f"gives outputs of shape {tuple(outputs.shape)}."
        )
    if outputs.shape[1] == 1:
        return torch.cat([torch.zeros_like(outputs), outputs], dim=1)
    return outputs


def _entropy(log_probabilities):
    return -(log_probabilities.exp() * log_probabilities).sum(dim=-1)


class MinimumClassConfusion(_TargetPrediction):
    r"""MCC: penalise predictions on unlabelled inputs that mix classes.

    With :math:`\hat Y = \mathrm{softmax}(Z / T)` the tempered predictions on
    one unlabelled batch of :math:`B` rows and :math:`C` classes, rows
    weighted by their certainty
    :math:`W_{ii} = B\,\frac{1 + e^{-H(\hat y_i)}}{\sum_k (1 + e^{-H(\hat y_k)})}`
    (:math:`H` the entropy; the weights carry no gradient):

    .. math::

        M = \hat Y^\top W \hat Y, \qquad
        \tilde M_{jj'} = \frac{M_{jj'}}{\sum_{j''} M_{j''j'}}, \qquad
        K(\theta) = \frac{1}{C}\sum_{j \ne j'} \tilde M_{jj'}

    the share of the class-correlation matrix off its diagonal: how often
    the network's predictions on the target domain hesitate between two
    classes. Classification only.

    Parameters
    ----------
    temperature : float, default=2.5
        :math:`T`; above 1 it softens the predictions, so that confident
        but hesitant rows still show their confusion. The paper's value.
        The evidence here is mixed: on ``benchmarks/bench_adaptation.py``'s
        two 10-class tasks, 1.0 (skada's default) was 0.008 of accuracy
        better on average over six cells; on the gallery's rotated moons
        (two classes), 2.5 was 0.07 better. Pass
        ``method=MinimumClassConfusion(temperature=1.0)`` to try it.

    Shapes: logits ``(batch, n_classes)``; the call returns a scalar.

    References
    ----------
    Jin, Wang, Long & Wang, "Minimum Class Confusion for Versatile Domain
    Adaptation", ECCV 2020.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.adaptation import MinimumClassConfusion
    >>> confident = torch.tensor([[9.0, 0.0], [0.0, 9.0]])
    >>> unsure = torch.zeros(2, 2)
    >>> term = MinimumClassConfusion()
    >>> bool(term.loss(confident) < term.loss(unsure))
    True
    """

    _parameter_constraints = {
        "temperature": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, temperature=2.5):
        self.temperature = temperature

    def loss(self, unlabelled_logits):
        """The class confusion of a batch of logits.

        Parameters
        ----------
        unlabelled_logits : torch.Tensor of shape (n, n_classes)

        Returns
        -------
        loss : torch.Tensor of shape ()
        """
        logits = _class_logits(unlabelled_logits)
        n_rows, n_classes = logits.shape
        log_predictions = functional.log_softmax(logits / self.temperature, dim=1)
        predictions = log_predictions.exp()
        certainty = 1 + torch.exp(-_entropy(log_predictions.detach()))
        row_weights = n_rows * certainty / certainty.sum()
        confusion = (predictions * row_weights[:, None]).T @ predictions
        confusion = confusion / confusion.sum(dim=0, keepdim=True)
        return (confusion.sum() - confusion.trace()) / n_classes


class EntropyMinimization(_TargetPrediction):
    r"""Confident, yet diverse, predictions on unlabelled target inputs.

    With :math:`p_i = \mathrm{softmax}(z_i)` the predictions on one
    unlabelled batch :math:`T`, :math:`\bar p` their mean and :math:`H` the
    entropy (natural logarithm):

    .. math::

        K(\theta) = \frac{1}{|T|}\sum_{i \in T} H(p_i)
            - \text{diversity}\cdot H(\bar p)

    The first part pushes decision boundaries away from the target inputs
    (entropy minimisation); the second keeps the network from predicting one
    class for all of them, which alone would minimise the first (information
    maximisation). The term can be negative. Classification only.

    Parameters
    ----------
    diversity : float, default=1.0
        Weight of the entropy of the mean prediction; 0 is plain entropy
        minimisation.

    Shapes: logits ``(batch, n_classes)``; the call returns a scalar.

    References
    ----------
    Grandvalet & Bengio, "Semi-supervised Learning by Entropy Minimization",
    NeurIPS 2004; Krause, Perona & Gomes, "Discriminative Clustering by
    Regularized Information Maximization", NeurIPS 2010; Liang, Hu & Feng,
    "Do We Really Need to Access the Source Data? (SHOT)", ICML 2020.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.adaptation import EntropyMinimization
    >>> confident_and_diverse = torch.tensor([[9.0, 0.0], [0.0, 9.0]])
    >>> confident_one_class = torch.tensor([[9.0, 0.0], [9.0, 0.0]])
    >>> term = EntropyMinimization(diversity=1.0)
    >>> bool(term.loss(confident_and_diverse) < term.loss(confident_one_class))
    True
    """

    _parameter_constraints = {
        "diversity": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, diversity=1.0):
        self.diversity = diversity

    def loss(self, unlabelled_logits):
        """The information-maximisation loss of a batch of logits.

        Parameters
        ----------
        unlabelled_logits : torch.Tensor of shape (n, n_classes)

        Returns
        -------
        loss : torch.Tensor of shape ()
        """
        log_predictions = functional.log_softmax(
            _class_logits(unlabelled_logits), dim=1
        )
        mean_entropy = _entropy(log_predictions).mean()
        mean_prediction = log_predictions.exp().mean(dim=0)
        log_mean = torch.log(
            mean_prediction.clamp_min(torch.finfo(mean_prediction.dtype).tiny)
        )
        return mean_entropy - self.diversity * _entropy(log_mean)


ADAPTATION_METHODS = {
    "coral": CORAL,
    "mmd": MMD,
    "dann": DomainAdversarial,
    "mcc": MinimumClassConfusion,
    "entropy": EntropyMinimization,
}
# The methods that work on class probabilities: classifiers only.
CLASS_PROBABILITY_METHODS = ("mcc", "entropy")

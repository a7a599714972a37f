"""Output distillation: keep the source network's predictions (LwF / KD)."""

import copy

import torch

from .._data import weighted_mean
from ._base import KnowledgeTerm

__all__ = ["OutputDistillation"]


class OutputDistillation(KnowledgeTerm):
    r"""Distance between the source network's outputs and the target's.

    For classification, the temperature-scaled Kullback-Leibler divergence
    of knowledge distillation, weighted like the data loss:

    .. math::

        K(\theta) = T^2\,\frac{\sum_{i \in B} w_i\,
            \mathrm{KL}\big(\sigma(z^{0}_i / T)\,\Vert\,\sigma(z_i / T)\big)}
            {\sum_{i \in B} w_i}

    with :math:`\sigma` the softmax, :math:`z^{0}_i` the source network's
    logits on :math:`x_i` (computed once per fit), :math:`z_i` the logits
    the target gives for them and :math:`w_i` the sample weights (1 by
    default: a row of weight 2 counts as a repeated row, as in the data
    loss). When the target reuses the source head, :math:`z_i` is simply the
    target's output (Hinton distillation); when the head is new, a frozen
    copy of the source head reads the target body's features, so the body is
    held to what the source task needs while the new head learns the target
    task (Learning without Forgetting, with the old head frozen). For
    regression, the weighted mean squared difference of the outputs replaces
    the divergence.

    With :math:`p = \sigma(z^0/T)` fixed, the divergence is
    :math:`\sum p \log p - \sum p \log \sigma(z/T)`: the first sum is cached
    per row, so a step computes only the second.

    Parameters
    ----------
    temperature : float, default=2.0
        Softens both distributions; :math:`T^2` keeps the gradient scale
        comparable across temperatures.

    Shapes: logits ``(batch, n_source_outputs)``; the call returns a scalar.

    References
    ----------
    Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network",
    2015; Li & Hoiem, "Learning without Forgetting", ECCV 2016.
    """

    def __init__(self, temperature=2.0):
        self.temperature = temperature

    def prepare(self, context):
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0; got {self.temperature}.")
        self._classification = context.task == "classification"
        source_logits = self._source_logits(context)
        if self._classification:
            # The softened source distribution is fixed: compute it once.
            log_targets = torch.log_softmax(source_logits / self.temperature, dim=1)
            self._targets = log_targets.exp()
            self._negative_entropy = (self._targets * log_targets).sum(dim=1)
        else:
            self._targets = source_logits
        self._sample_weight = context.sample_weight
        self._student = self._student_logits(context)

    def _source_logits(self, context):
        """The source's logits on every training row, in row order."""
        return context.map_batches(context.source_module)

    def _student_logits(self, context):
        """``function(module, features, outputs)`` giving the logits to distil.

        The target's own outputs when its head is the source's; otherwise a
        frozen copy of the source head on the target body's features.
        """
        if not context.head_is_new:
            return _outputs
        source_head = copy.deepcopy(context.source_module.head)
        source_head.requires_grad_(False).eval()
        return lambda module, features, outputs: source_head(features)

    def release(self):
        self._targets = self._negative_entropy = None
        self._sample_weight = self._student = None

    def __call__(self, module, inputs, features, outputs, index):
        student = self._student(module, features, outputs)
        targets = self._targets.index_select(0, index)
        weight = (
            None
            if self._sample_weight is None
            else self._sample_weight.index_select(0, index)
        )
        if not self._classification:
            squared = (student - targets).pow(2)
            return weighted_mean(squared.flatten(start_dim=1).mean(dim=1), weight)
        log_student = torch.log_softmax(student / self.temperature, dim=1)
        divergence = self._negative_entropy.index_select(0, index) - (
            targets * log_student
        ).sum(dim=1)
        return weighted_mean(divergence, weight) * self.temperature**2


def _outputs(module, features, outputs):
    return outputs

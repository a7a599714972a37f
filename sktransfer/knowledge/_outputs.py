"""Output distillation: keep the source network's predictions (LwF / KD)."""

import copy

import torch
from torch.nn import functional

from ._base import KnowledgeTerm

__all__ = ["OutputDistillation"]


class OutputDistillation(KnowledgeTerm):
    r"""Distance between the source network's outputs and the target's.

    For classification, the temperature-scaled Kullback-Leibler divergence
    of knowledge distillation:

    .. math::

        K(\theta) = \frac{T^2}{|B|}\sum_{i \in B}
            \mathrm{KL}\big(\sigma(z^{0}_i / T)\,\Vert\,\sigma(z_i / T)\big)

    with :math:`\sigma` the softmax, :math:`z^{0}_i` the source network's
    logits on :math:`x_i` (computed once per fit) and :math:`z_i` the logits
    the source head gives on the *target* body's features. When the target
    reuses the source head, :math:`z_i` is simply the target's output (Hinton
    distillation); when the head is new, a frozen copy of the source head is
    kept beside it, so the body is held to what the source task needs while
    the new head learns the target task (Learning without Forgetting, with
    the old head frozen). For regression, the mean squared difference of the
    outputs replaces the divergence.

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
        source_outputs = context.map_batches(context.source_module)
        if self._classification:
            # The softened source distribution is fixed: compute it once.
            source_outputs = torch.log_softmax(source_outputs / self.temperature, 1)
        self._source_outputs = source_outputs
        if context.head_is_new:
            head = copy.deepcopy(context.source_module.head)
            self._source_head = head.requires_grad_(False).eval()
        else:
            self._source_head = None

    def release(self):
        self._source_outputs = None
        self._source_head = None

    def __call__(self, module, inputs, features, outputs, index):
        predicted = (
            outputs if self._source_head is None else self._source_head(features)
        )
        reference = self._source_outputs.index_select(0, index)
        if not self._classification:
            return functional.mse_loss(predicted, reference)
        temperature = self.temperature
        return functional.kl_div(
            torch.log_softmax(predicted / temperature, dim=1),
            reference,
            reduction="batchmean",
            log_target=True,
        ) * (temperature**2)

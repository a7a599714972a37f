"""L2-SP: keep the weights close to the source's (Li et al., 2018)."""

import torch

from ._base import KnowledgeTerm

__all__ = ["L2SP", "NewParameterL2"]


class _HalfSquaredDistance(torch.autograd.Function):
    """``½ Σ‖θ_k − θ⁰_k‖²`` over many tensors, with fused (foreach) kernels.

    The term runs on every batch and touches every weight. Autograd through a
    ``sub``/``pow``/``sum`` per tensor costs several passes over the weights
    and a graph node each; this makes one pass forward (the differences and
    their norms) and one backward (``grad · (θ − θ⁰)``), which is what keeps
    L2-SP's overhead small next to the optimizer's own pass over the weights.
    ``references`` None means zeros (plain weight decay).
    """

    @staticmethod
    def forward(ctx, references, *parameters):
        if references is None:
            differences = list(parameters)
        else:
            differences = torch._foreach_sub(parameters, references)
        ctx.differences = differences
        norms = torch._foreach_norm(differences)
        return 0.5 * torch.stack(norms).square().sum()

    @staticmethod
    def backward(ctx, grad_output):
        gradients = torch._foreach_mul(ctx.differences, grad_output)
        return None, *(
            gradient if needed else None
            for gradient, needed in zip(
                gradients, ctx.needs_input_grad[1:], strict=True
            )
        )


def _half_squared_distance(parameters, references=None):
    if not parameters:
        return torch.zeros(())
    return _HalfSquaredDistance.apply(references, *parameters)


class L2SP(KnowledgeTerm):
    r"""Squared distance of the weights to the source weights.

    .. math::

        K(\theta) = \tfrac{1}{2}\,\lVert \theta_S - \theta_S^{0} \rVert_2^2

    where :math:`\theta_S` are the parameters that have a source
    counterpart (the body, and the head when it is reused) and
    :math:`\theta_S^{0}` their pretrained values. With weight ``lam`` this is
    the :math:`\frac{\alpha}{2}\lVert w_S - w_S^0\rVert^2` term of L2-SP; the
    :math:`\frac{\beta}{2}\lVert w_{\bar S}\rVert^2` term on new parameters
    is :class:`NewParameterL2`, weighted by the estimators' ``beta``.

    Shapes: the call returns a scalar; it does not read the batch.

    References
    ----------
    Li, Grandvalet & Davoine, "Explicit Inductive Bias for Transfer Learning
    with Convolutional Networks", ICML 2018.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.knowledge import L2SP
    >>> term = L2SP()
    >>> term._pairs = [(torch.ones(2), torch.zeros(2))]
    >>> round(term(None, None, None, None, None).item(), 6)
    1.0
    """

    def prepare(self, context):
        source = dict(context.source_module.named_parameters())
        tied = []
        for name, parameter in context.target_module.named_parameters():
            is_new = context.head_is_new and name.startswith("head.")
            if not is_new and name in source and source[name].shape == parameter.shape:
                tied.append((parameter, source[name].detach().clone()))
        self._pairs = tied

    def release(self):
        self._pairs = []

    def __call__(self, module, inputs, features, outputs, index):
        parameters = [parameter for parameter, _ in self._pairs]
        references = [reference for _, reference in self._pairs]
        return _half_squared_distance(parameters, references)


class NewParameterL2(KnowledgeTerm):
    r"""Weight decay on the parameters that have no source counterpart.

    .. math::

        K(\theta) = \tfrac{1}{2}\,\lVert \theta_{\bar S} \rVert_2^2

    :math:`\theta_{\bar S}` are the parameters of a freshly initialised head
    (none when the source head is reused).
    """

    def prepare(self, context):
        self._parameters = (
            list(context.target_module.head.parameters()) if context.head_is_new else []
        )

    def release(self):
        self._parameters = []

    def __call__(self, module, inputs, features, outputs, index):
        return _half_squared_distance(self._parameters)

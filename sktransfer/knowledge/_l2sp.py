"""L2-SP: keep the weights close to the source's (Li et al., 2018)."""

import torch

from ._base import KnowledgeTerm

__all__ = ["L2SP", "NewParameterL2"]


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
    >>> term(None, None, None, None, None)
    tensor(1.)
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
        total = sum(
            (parameter - reference).pow(2).sum() for parameter, reference in self._pairs
        )
        return 0.5 * torch.as_tensor(total)


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
        total = sum(parameter.pow(2).sum() for parameter in self._parameters)
        return 0.5 * torch.as_tensor(total)

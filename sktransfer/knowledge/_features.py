"""Feature distillation: keep the target's representations near the source's."""

from .._source import get_layer
from ._base import KnowledgeTerm

__all__ = ["FeatureDistillation"]


class FeatureDistillation(KnowledgeTerm):
    r"""Mean squared distance between target and source activations.

    .. math::

        K(\theta) = \frac{1}{|B|}\sum_{i \in B}\sum_{\ell \in L}
            \frac{1}{d_\ell}\,\lVert \phi^{\ell}_\theta(x_i)
            - \phi^{\ell}_{0}(x_i) \rVert_2^2

    for a batch :math:`B`, where :math:`\phi^{\ell}_\theta` is the target
    network's activation at layer :math:`\ell` (of width :math:`d_\ell`) and
    :math:`\phi^{\ell}_{0}` the source network's on the same input. The
    source activations are computed once per fit, on the training inputs.

    Parameters
    ----------
    layers : list of str or None, default=None
        None: the body's output, the features the head reads (no extra
        computation). Otherwise names of layers of the source network, as in
        ``source_module.named_modules()`` (``"0"``, ``"layer3"``); each
        layer's output is matched.

    Shapes: activations of shape ``(batch, ...)``; the call returns a scalar.

    References
    ----------
    Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015; Li et al.,
    "DELTA: Deep Learning Transfer using Feature Map with Attention", ICLR
    2019 (without the attention weights).
    """

    def __init__(self, layers=None):
        self.layers = layers

    def prepare(self, context):
        self._handles = []
        self._captured = {}
        if self.layers is None:
            self._source = [context.map_batches(context.source_module.body)]
            return
        for name in self.layers:
            # A clear error naming the valid layers, before any hook is set.
            get_layer(context.source_module.body, name)
        names = [f"body.{name}" for name in self.layers]
        source_captured = {}
        source_handles = [
            _capture(context.source_module.get_submodule(name), name, source_captured)
            for name in names
        ]
        try:
            self._source = list(
                context.map_batches(
                    lambda batch: _run_and_collect(
                        context.source_module.body, batch, source_captured, names
                    )
                )
            )
        finally:
            for handle in source_handles:
                handle.remove()
        self._handles = [
            _capture(context.target_module.get_submodule(name), name, self._captured)
            for name in names
        ]
        self._names = names

    def release(self):
        for handle in getattr(self, "_handles", []):
            handle.remove()
        self._handles = []
        self._captured = {}
        self._source = []

    def __call__(self, module, inputs, features, outputs, index):
        if self.layers is None:
            targets = [features]
        else:
            targets = [self._captured[name] for name in self._names]
        total = 0.0
        for target, source in zip(targets, self._source, strict=True):
            # index_select: several times faster than source[index].
            difference = target.flatten(start_dim=1) - source.index_select(
                0, index
            ).flatten(start_dim=1)
            total = total + difference.pow(2).mean(dim=1).mean()
        return total


def _capture(layer, name, store):
    def hook(module, args, output):
        store[name] = output

    return layer.register_forward_hook(hook)


def _run_and_collect(body, batch, store, names):
    body(batch)
    return tuple(store[name] for name in names)

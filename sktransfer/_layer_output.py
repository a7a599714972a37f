"""Read the activations of one layer of a network, running nothing after it."""

import contextlib

from ._source import find_head_name, get_layer

__all__ = ["LayerOutput"]


class _StopForward(Exception):
    """Raised by a hook once the wanted activation is captured."""


class LayerOutput:
    """Callable returning the activation of one layer of ``network``.

    A hook on the layer stores the activation and raises, so the layers after
    it are never computed. This works for any ``forward``, not only
    ``nn.Sequential``; a layer called several times in one pass (shared
    weights) yields its first call.

    Parameters
    ----------
    network : nn.Module
    feature_layer : str or None
        None or ``"body"`` (when the network has no sub-module of that name):
        the *input* of the head, found by
        :func:`~sktransfer._source.find_head_name`, or the network's output
        when it has no head (``layer_name`` is then ``""``). Otherwise the
        *output* of the sub-module with that name in ``named_modules()``.
    """

    def __init__(self, network, feature_layer=None):
        self.network = network
        names = dict(network.named_modules())
        if feature_layer is None or (feature_layer == "body" and "body" not in names):
            head_name = find_head_name(network)
            self.layer_name = "" if head_name is None else head_name
            self.reads_input = head_name is not None
        else:
            get_layer(network, feature_layer)
            self.layer_name = feature_layer
            self.reads_input = False

    @contextlib.contextmanager
    def hooked(self):
        """Yield a function ``*inputs -> activation`` with the hook set once.

        Registering and removing a hook costs more than a small layer's
        forward pass, so :meth:`__call__` is for one-off calls and loops use
        this context.
        """
        layer = self.network.get_submodule(self.layer_name)
        captured = []

        def capture_input(module, args):
            captured.append(args[0])
            raise _StopForward

        def capture_output(module, args, output):
            captured.append(output)
            raise _StopForward

        if self.reads_input:
            handle = layer.register_forward_pre_hook(capture_input)
        else:
            handle = layer.register_forward_hook(capture_output)

        def run(*inputs):
            captured.clear()
            try:
                result = self.network(*inputs)
            except _StopForward:
                return captured[0]
            if self.layer_name == "" and not self.reads_input:
                return result
            raise ValueError(
                f"Layer {self.layer_name!r} was not called in the source "
                "network's forward pass, so its activations cannot be read."
            )

        try:
            yield run
        finally:
            handle.remove()

    def __call__(self, *inputs):
        with self.hooked() as run:
            return run(*inputs)

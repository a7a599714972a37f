"""The protocol every knowledge term follows, and what it is given."""

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["KnowledgeTerm", "SourceContext"]


@dataclass
class SourceContext:
    """What a knowledge term may use to prepare itself, once per ``fit``.

    Attributes
    ----------
    source_module : torch.nn.Module
        The source network split like the target network, ``head(body(x))``
        with parameters named ``body.*`` and ``head.*``; frozen, in
        evaluation mode, on the training device. A private copy.
    target_module : torch.nn.Module
        The network about to be trained (same naming).
    inputs : torch.Tensor
        The training inputs, in the order the batches index them.
    batch_size : int
        Rows per forward pass when computing source quantities.
    head_is_new : bool
        True when the target head was freshly initialised (its parameters
        have no source counterpart).
    task : {"classification", "regression"}
    """

    source_module: nn.Module
    target_module: nn.Module
    inputs: torch.Tensor
    batch_size: int
    head_is_new: bool
    task: str

    def map_batches(self, function):
        """Apply ``function`` to the inputs batch by batch, without gradients.

        Returns the concatenated results (a tensor, or a tuple of tensors when
        ``function`` returns a tuple). Memory is bounded by what is kept, not
        by intermediate activations.
        """
        results = []
        with torch.no_grad():
            for start in range(0, self.inputs.shape[0], self.batch_size):
                results.append(function(self.inputs[start : start + self.batch_size]))
        if isinstance(results[0], tuple):
            return tuple(torch.cat(parts) for parts in zip(*results, strict=True))
        return torch.cat(results)


class KnowledgeTerm:
    """Base class of a knowledge term ``K(θ)``, the protocol the engine knows.

    The estimator minimises ``mean L(y, f_θ(x)) + lam * K(θ)``. A term is
    any object with this call signature; subclassing is optional, and a plain
    function works when nothing needs preparing.

    ``prepare(context)`` is called once per ``fit``, before training, with a
    :class:`SourceContext`: compute there whatever the source network
    contributes on the training inputs, so that it is not recomputed for
    every batch of every epoch. ``release()`` is called when training ends,
    successfully or not. The estimator works on a deep copy of the term, so
    state stored in ``prepare`` never leaks into the object the user passed.

    ``__call__(module, inputs, features, outputs, index)`` returns a scalar
    tensor for one training batch: ``module`` is the network being trained,
    ``inputs`` the batch, ``features`` the body's output and ``outputs`` the
    network's output on it (already computed: reuse them), ``index`` the
    batch rows' positions in ``context.inputs``.
    """

    def prepare(self, context):
        """Cache what the term needs from the source network (default: nothing)."""

    def release(self):
        """Drop hooks or caches once training has ended (default: nothing)."""

    def __call__(self, module, inputs, features, outputs, index):
        raise NotImplementedError

    def __repr__(self):
        params = ", ".join(
            f"{key}={value!r}"
            for key, value in vars(self).items()
            if not key.startswith("_")
        )
        return f"{type(self).__name__}({params})"

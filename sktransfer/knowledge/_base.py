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
    source_module : torch.nn.Module or None
        The source network split like the target network, ``head(body(x))``
        with parameters named ``body.*`` and ``head.*``; frozen, in
        evaluation mode, on the training device. A private copy. None when
        the strategy registered none (the term needs only the target).
    target_module : torch.nn.Module
        The network about to be trained (same naming).
    training_data : torch.utils.data.Dataset
        The training rows, in the order the batches index them (their
        ``index``); read their inputs with :meth:`map_batches`.
    batch_size : int
        Rows per forward pass when computing source quantities.
    training_batch_size : int
        Rows per training step: a term that draws batches of its own (from
        ``unlabeled_data``) draws this many per step.
    head_is_new : bool
        True when the target head was freshly initialised (its parameters
        have no source counterpart).
    task : {"classification", "regression"}
    generator : torch.Generator or None
        Seeded once per fit, for terms that draw batches of their own (e.g.
        from ``unlabeled_data``), so that a fixed ``random_state`` fixes them.
    device : str or torch.device
        The training device.
    unlabeled_data : Dataset or None
        Unlabelled target inputs passed to ``fit`` (``UnlabeledData``), on
        the training device; their ``y`` is a placeholder.
    """

    source_module: nn.Module | None
    target_module: nn.Module
    training_data: object
    batch_size: int
    training_batch_size: int = 32
    head_is_new: bool = False
    task: str = "classification"
    generator: torch.Generator | None = None
    device: object = "cpu"
    unlabeled_data: object = None

    @property
    def inputs(self):
        """The training inputs as one tensor (arrays held in memory only)."""
        inputs = getattr(self.training_data, "X", None)
        if inputs is None:
            raise TypeError(
                "This knowledge term reads the training inputs as one tensor, "
                "which a torch Dataset given as X is not; it needs X as an array."
            )
        return inputs

    @property
    def sample_weight(self):
        """The training rows' weights, or None when they are all equal."""
        data = self.training_data
        return data.sample_weight.to(self.device) if data.weighted else None

    def map_batches(self, function, data=None):
        """Apply ``function`` to the inputs batch by batch, without gradients.

        ``data`` defaults to the training rows (``unlabeled_data`` is the
        other choice). Returns the concatenated results (a tensor, or a tuple
        of tensors when ``function`` returns a tuple), in row order. Memory is
        bounded by what is kept, not by intermediate activations.
        """
        data = self.training_data if data is None else data
        results = []
        with torch.no_grad():
            for inputs in data.input_batches(self.batch_size):
                results.append(function(inputs.to(self.device)))
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
    A term that is also an ``nn.Module`` with trainable parameters after
    ``prepare`` (e.g. the domain discriminator of
    :class:`~sktransfer.adaptation.DomainAdversarial`) has them trained by
    the network's optimizer, at the learning rate ``lr``.

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

"""Divergence: tell early that training has gone wrong, and say why.

Training has diverged when the loss becomes NaN or infinite, when it rises
far above its first value (:data:`LOSS_RATIO`), or when the trained network
gives non-finite outputs. The likely cause is told apart by *when* it
happens: a loss that is not finite on the very first batch, before any
update, comes from the inputs (their scale) or the source network, never
from the learning rate; a loss that explodes after updates comes from the
step size, unless the inputs are large enough to make the gradients so.
"""

import math

import torch
from skorch.callbacks import Callback

__all__ = ["LOSS_RATIO", "DivergenceCheck", "LossMonitor", "TrainingDivergedError"]

# A training loss above LOSS_RATIO times its first value (or above LOSS_RATIO
# when the first value is below 1, so that a near-perfect start does not make
# ordinary noise look like divergence) has diverged: on cross-entropy that
# means logit gaps of thousands, on a squared error predictions off by a
# hundred times the first errors.
LOSS_RATIO = 1e4

# Inputs beyond this absolute value make gradients large enough to be named
# as a likely cause next to the learning rate (0-255 pixels given to a
# network trained on 0-1 inputs, unscaled physical quantities).
LARGE_INPUT = 100.0


class TrainingDivergedError(FloatingPointError):
    """Training diverged: the loss became NaN, infinite or exploded.

    Raised by ``fit``, which leaves the estimator as it was before. The
    message names the epoch and the likely cause (the scale of the inputs,
    or the learning rate) with its remedy.
    """


class LossMonitor:
    """Watches the training loss of one fit, step by step.

    Parameters
    ----------
    lr : float
        The learning rate, named in the remedy.
    optimizer : type
        The optimizer class, named in the remedy.
    inputs : torch.Tensor or None
        The training inputs, read (not copied) only to describe their scale
        when training diverges.
    penalty_weight : str or None
        The name of the penalty's weight (``lam``, ``source_weight``) when a
        penalty is added to the loss, named as a further remedy.
    """

    def __init__(self, lr, optimizer, inputs=None, penalty_weight=None):
        self.lr = lr
        self.optimizer = optimizer
        self.inputs = inputs
        self.penalty_weight = penalty_weight
        self.first_loss = None
        self.n_steps = 0

    def check(self, loss, epoch):
        """Raise :class:`TrainingDivergedError` when ``loss`` shows divergence."""
        self.n_steps += 1
        if self.first_loss is None:
            if not math.isfinite(loss):
                raise TrainingDivergedError(
                    f"Training diverged in epoch {epoch}, on the first batch, before "
                    f"any update: the loss is {loss}. {self._input_cause()}"
                )
            self.first_loss = loss
            return
        if math.isfinite(loss) and loss <= LOSS_RATIO * max(self.first_loss, 1.0):
            return
        change = (
            f"the loss became {loss}"
            if not math.isfinite(loss)
            else f"the loss rose from {self.first_loss:.3g} to {loss:.3g}, more "
            f"than {LOSS_RATIO:.0e} times its first value"
        )
        raise TrainingDivergedError(
            f"Training diverged in epoch {epoch} (step {self.n_steps}): {change}. "
            f"{self.step_cause()}"
        )

    def step_cause(self):
        """The likely cause of a divergence after updates, with its remedy."""
        optimizer = getattr(self.optimizer, "__name__", type(self.optimizer).__name__)
        cause = (
            f"The learning rate is the likely cause: lower lr (now {self.lr:g} "
            f"with {optimizer})"
        )
        if self.penalty_weight is not None:
            cause += f", or the penalty's weight {self.penalty_weight}"
        cause += "."
        largest = self._largest_input()
        if largest is not None and largest > LARGE_INPUT:
            cause += (
                f" The inputs are large too (values up to {largest:.3g} in absolute "
                "value), which makes the gradients large: scale the inputs to the "
                "range the source network was trained on (e.g. with "
                "sklearn.preprocessing.StandardScaler)."
            )
        return cause

    def _input_cause(self):
        no_update = "The learning rate cannot be the cause: no update was made yet."
        largest = self._largest_input()
        if largest is not None and largest <= LARGE_INPUT:
            penalty = (
                ""
                if self.penalty_weight is None
                else f", or the penalty (weight {self.penalty_weight})"
            )
            return (
                f"{no_update} The inputs are of ordinary scale (values up to "
                f"{largest:.3g} in absolute value): check the source network for "
                f"NaN or infinite weights{penalty}."
            )
        scale = (
            ""
            if largest is None
            else f" (values up to {largest:.3g} in absolute value)"
        )
        return (
            f"{no_update} The inputs are the likely cause: their scale{scale} "
            "overflows the network's computations. Scale them to the range the "
            "source network was trained on (e.g. with "
            "sklearn.preprocessing.StandardScaler)."
        )

    def _largest_input(self):
        inputs = self.inputs
        if inputs is None or not inputs.is_floating_point() or inputs.numel() == 0:
            return None
        return float(inputs.abs().amax())


class DivergenceCheck(Callback):
    """At the end of training: are the trained network's outputs finite?

    The loss of each step is checked before that step's update
    (:class:`LossMonitor`); this checks the last update, whose result no
    later loss sees, with one forward pass of one training batch in
    evaluation mode, as ``predict`` will run it. Runs after the other
    callbacks (early stopping may restore the best epoch's weights first).
    """

    def on_train_end(self, net, X=None, y=None, **kwargs):
        # The monitor holds the training inputs: the fitted net must not.
        monitor = net.__dict__.pop("_loss_monitor", None)
        module = net.module_
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                inputs, _ = next(iter(net.get_iterator(X, training=False)))
                outputs = module(inputs.to(net.device))
        finally:
            module.train(was_training)
        if bool(torch.isfinite(outputs).all()):
            return
        cause = (
            monitor.step_cause() if monitor is not None else "Lower the learning rate."
        )
        raise TrainingDivergedError(
            f"Training diverged in epoch {len(net.history)}: after the last "
            "update the network's outputs are NaN or infinite, although the loss "
            f"was finite before it. {cause}"
        )

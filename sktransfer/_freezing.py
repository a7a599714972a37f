"""The freezing component: what does not train, and at which learning rate.

A strategy that fine-tunes composes it from its ``freeze``, ``unfreeze_at``
and ``body_lr_ratio`` parameters; the engine turns the result into skorch's
``Freezer`` / ``Unfreezer`` callbacks and the optimizer's parameter groups.
"""

from typing import NamedTuple

__all__ = ["FreezeSchedule", "freeze_schedule"]


class FreezeSchedule(NamedTuple):
    """Parameter-name prefixes frozen until ``unfreeze_at``; learning-rate groups.

    ``lr_groups`` lists ``(prefixes, ratio)``: those parameters learn with
    ``ratio * lr``.
    """

    freeze_prefixes: list
    unfreeze_at: int | None
    lr_groups: list


def freeze_schedule(module, freeze, unfreeze_at, body_lr_ratio):
    """Check ``freeze`` against ``module``'s parameter names; the schedule.

    Parameters
    ----------
    module : nn.Module
        The network about to train, with parameters named ``body.*`` and
        ``head.*``.
    freeze : str, list of str or None
    unfreeze_at : int or None
    body_lr_ratio : float
    """
    if unfreeze_at is not None and not freeze:
        raise ValueError(
            f"unfreeze_at={unfreeze_at} needs something to unfreeze; set freeze "
            "as well (e.g. freeze='body')."
        )
    prefixes = (
        [] if freeze is None else [freeze] if isinstance(freeze, str) else list(freeze)
    )
    names = [name for name, _ in module.named_parameters()]
    for prefix in prefixes:
        if not any(name == prefix or name.startswith(prefix + ".") for name in names):
            shown = sorted({name.rsplit(".", 1)[0] for name in names})
            raise ValueError(
                f"freeze={prefix!r} matches no parameter of the network. Names "
                "start with 'body.' (the source network without its head) or "
                f"'head.'; modules with parameters: {shown[:20]}."
            )
    lr_groups = [(["body"], body_lr_ratio)] if body_lr_ratio != 1 else []
    return FreezeSchedule(prefixes, unfreeze_at, lr_groups)

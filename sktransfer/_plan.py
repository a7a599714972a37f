"""What a strategy asks the engine to train: the one thing strategies build.

A strategy (fine-tuning, knowledge regularization, distillation, fusion,
joint training) turns the source network and the training rows into a
:class:`TrainingPlan`; the estimator core hands it to the engine and records
``plan.fitted`` as fitted attributes, in one place. Everything a strategy adds
to plain training is a field here, so the engine needs to know no strategy.
"""

from dataclasses import dataclass, field

from torch import nn

__all__ = ["TrainingPlan"]


@dataclass
class TrainingPlan:
    """The network to train and how, as one strategy decided it.

    Attributes
    ----------
    module : nn.Module
        The network to train; it has ``forward_with_features(inputs) ->
        (features, outputs)`` (see :class:`~sktransfer._modules.BodyHeadModule`).
    criterion : nn.Module
        The per-sample loss (``reduction="none"``).
    fitted : dict
        Fitted attributes the strategy reports (``head_choice_``,
        ``head_choice_reason_``, ``distilled_into_``…).
    terms : list of (float, KnowledgeTerm)
        Weighted terms added to the training loss.
    reference_module : nn.Module or None
        The frozen source network the terms compare with.
    term_context : dict
        More of the terms' :class:`~sktransfer.knowledge.SourceContext`
        (``head_is_new``, ``task``, ``unlabeled_data``…).
    freeze_prefixes : list of str
        Parameter-name prefixes that do not train until ``unfreeze_at``.
    unfreeze_at : int or None
    lr_groups : list of (list of str, float)
        Parameter-name prefixes and the ratio of ``lr`` they learn with.
    loss_weight : float
        Multiplies the data loss (``1 − α`` of distillation).
    steps_per_epoch : int or None
        More steps than one pass over the target rows, e.g. to see every
        source batch of joint training once per epoch.
    interpolation : float
        WiSE-FT's weight of the fine-tuned weights (1: none).
    """

    module: nn.Module
    criterion: nn.Module
    fitted: dict = field(default_factory=dict)
    terms: list = field(default_factory=list)
    reference_module: nn.Module | None = None
    term_context: dict = field(default_factory=dict)
    freeze_prefixes: list = field(default_factory=list)
    unfreeze_at: int | None = None
    lr_groups: list = field(default_factory=list)
    loss_weight: float = 1.0
    steps_per_epoch: int | None = None
    interpolation: float = 1.0

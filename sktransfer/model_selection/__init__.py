"""Show whether transfer helps: compare strategies against a baseline."""

from ._compare import (
    NegativeTransferWarning,
    StrategyComparison,
    compare_strategies,
    corrected_paired_ttest,
)
from ._learning_curve import TransferLearningCurve, transfer_learning_curve

__all__ = [
    "NegativeTransferWarning",
    "StrategyComparison",
    "TransferLearningCurve",
    "compare_strategies",
    "corrected_paired_ttest",
    "transfer_learning_curve",
]

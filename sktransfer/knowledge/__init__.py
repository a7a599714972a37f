"""Knowledge terms ``K(θ)`` that tie a target network to its source.

Each term is a small object; :class:`~sktransfer.KnowledgeRegularizedClassifier`
and :class:`~sktransfer.KnowledgeRegularizedRegressor` minimise
``mean L(y, f_θ(x)) + lam * K(θ)``. Write a new term by following the
:class:`KnowledgeTerm` protocol; the training engine needs nothing else.
"""

from ._base import KnowledgeTerm, SourceContext
from ._features import FeatureDistillation
from ._l2sp import L2SP, NewParameterL2
from ._outputs import OutputDistillation

__all__ = [
    "L2SP",
    "FeatureDistillation",
    "KnowledgeTerm",
    "NewParameterL2",
    "OutputDistillation",
    "SourceContext",
]

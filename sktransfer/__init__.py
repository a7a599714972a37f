"""Transfer learning as scikit-learn estimators."""

from . import datasets, knowledge, model_selection, sources
from ._engine import TrainingDivergedError
from ._feature_transfer import PretrainedFeatureTransformer
from ._fine_tuning import FineTunedClassifier, FineTunedRegressor
from ._knowledge_regularized import (
    KnowledgeRegularizedClassifier,
    KnowledgeRegularizedRegressor,
)
from ._persistence import load_fitted, save_fitted

__all__ = [
    "FineTunedClassifier",
    "FineTunedRegressor",
    "KnowledgeRegularizedClassifier",
    "KnowledgeRegularizedRegressor",
    "PretrainedFeatureTransformer",
    "TrainingDivergedError",
    "datasets",
    "knowledge",
    "load_fitted",
    "model_selection",
    "save_fitted",
    "sources",
]
__version__ = "0.1.0.dev0"

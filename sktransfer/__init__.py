"""Transfer learning as scikit-learn estimators."""

from . import datasets, knowledge, model_selection, sources
from ._auto import AutoTransferClassifier, AutoTransferRegressor
from ._distillation import DistilledClassifier
from ._engine import TrainingDivergedError
from ._feature_transfer import PretrainedFeatureTransformer
from ._fine_tuning import FineTunedClassifier, FineTunedRegressor
from ._fusion import FusionClassifier
from ._joint_training import JointTrainingClassifier, SourceData
from ._knowledge_regularized import (
    KnowledgeRegularizedClassifier,
    KnowledgeRegularizedRegressor,
)
from ._persistence import load_fitted, save_fitted
from ._source_model import SourceModelClassifier, SourceModelRegressor

__all__ = [
    "AutoTransferClassifier",
    "AutoTransferRegressor",
    "DistilledClassifier",
    "FineTunedClassifier",
    "FineTunedRegressor",
    "FusionClassifier",
    "JointTrainingClassifier",
    "KnowledgeRegularizedClassifier",
    "KnowledgeRegularizedRegressor",
    "PretrainedFeatureTransformer",
    "SourceData",
    "SourceModelClassifier",
    "SourceModelRegressor",
    "TrainingDivergedError",
    "datasets",
    "knowledge",
    "load_fitted",
    "model_selection",
    "save_fitted",
    "sources",
]
__version__ = "0.1.0.dev0"

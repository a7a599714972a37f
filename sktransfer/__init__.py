"""Transfer learning as scikit-learn estimators."""

from . import adaptation, datasets, knowledge, model_selection, sources
from ._auto import AutoTransferClassifier, AutoTransferRegressor
from ._distillation import DistilledClassifier, DistilledRegressor
from ._divergence import TrainingDivergedError
from ._domain_adaptation import DomainAdaptationClassifier, DomainAdaptationRegressor
from ._feature_transfer import PretrainedFeatureTransformer
from ._fine_tuning import FineTunedClassifier, FineTunedRegressor
from ._fusion import FusionClassifier, FusionRegressor
from ._joint_training import (
    JointTrainingClassifier,
    JointTrainingRegressor,
    SourceData,
)
from ._knowledge_regularized import (
    KnowledgeRegularizedClassifier,
    KnowledgeRegularizedRegressor,
)
from ._persistence import load_fitted, save_fitted
from ._self_training import PseudoLabelingClassifier
from ._source_model import SourceModelClassifier, SourceModelRegressor
from ._unlabeled import UnlabeledData
from ._version import __version__ as __version__

__all__ = [
    "AutoTransferClassifier",
    "AutoTransferRegressor",
    "DistilledClassifier",
    "DistilledRegressor",
    "DomainAdaptationClassifier",
    "DomainAdaptationRegressor",
    "FineTunedClassifier",
    "FineTunedRegressor",
    "FusionClassifier",
    "FusionRegressor",
    "JointTrainingClassifier",
    "JointTrainingRegressor",
    "KnowledgeRegularizedClassifier",
    "KnowledgeRegularizedRegressor",
    "PretrainedFeatureTransformer",
    "PseudoLabelingClassifier",
    "SourceData",
    "SourceModelClassifier",
    "SourceModelRegressor",
    "TrainingDivergedError",
    "UnlabeledData",
    "adaptation",
    "datasets",
    "knowledge",
    "load_fitted",
    "model_selection",
    "save_fitted",
    "sources",
]

"""Transfer learning as scikit-learn estimators."""

from . import datasets
from ._feature_transfer import PretrainedFeatureTransformer
from ._fine_tuning import FineTunedClassifier, FineTunedRegressor

__all__ = [
    "FineTunedClassifier",
    "FineTunedRegressor",
    "PretrainedFeatureTransformer",
    "datasets",
]
__version__ = "0.1.0.dev0"

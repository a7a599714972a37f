"""Transfer learning as scikit-learn estimators."""

from ._feature_transfer import PretrainedFeatureTransformer

__all__ = ["PretrainedFeatureTransformer"]
__version__ = "0.1.0.dev0"

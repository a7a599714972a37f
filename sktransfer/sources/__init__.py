"""Pretrained networks by name: torchvision, timm and Hugging Face models.

Each function returns a small description of the network (a *spec*) to pass as
``source_module`` to any sktransfer estimator. Nothing is imported or loaded
when the spec is made: the estimator loads the network in ``fit``, so that
``clone`` and ``GridSearchCV`` copy a name, not a model. Each family needs its
optional extra (``pip install "sktransfer[torchvision]"``, ``[timm]``,
``[transformers]``); ``fit`` says which one is missing.
"""

from ._spec import SourceSpec
from ._text import HuggingFaceModel, TextEncoder, huggingface_model
from ._tokenizer import TextTokenizer
from ._vision import TimmModel, TorchvisionModel, timm_model, torchvision_model

__all__ = [
    "HuggingFaceModel",
    "SourceSpec",
    "TextEncoder",
    "TextTokenizer",
    "TimmModel",
    "TorchvisionModel",
    "huggingface_model",
    "timm_model",
    "torchvision_model",
]

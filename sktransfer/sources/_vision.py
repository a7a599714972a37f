"""Image models by name: torchvision and timm."""

import os
import pickle
import urllib.error

from ._spec import SourceSpec, import_optional

__all__ = ["TimmModel", "TorchvisionModel", "timm_model", "torchvision_model"]


class TorchvisionModel(SourceSpec):
    """A torchvision model by name, with its pretrained weights.

    Made by :func:`torchvision_model`; see there for the parameters.
    """

    _param_names = ("name", "weights", "model_kwargs")
    _factory_name = "torchvision_model"

    def __init__(self, name, weights="DEFAULT", model_kwargs=None):
        self.name = name
        self.weights = weights
        self.model_kwargs = model_kwargs

    def load(self):
        models = import_optional("torchvision.models", "torchvision")
        try:
            builder = models.get_model_builder(self.name)
        except ValueError as exc:
            raise ValueError(
                f"torchvision has no model named {self.name!r}; "
                "torchvision.models.list_models() lists them."
            ) from exc
        weights = None
        if self.weights is not None:
            weights_enum = models.get_model_weights(self.name)
            try:
                weights = weights_enum.verify(self.weights)
            except (KeyError, TypeError) as exc:
                names = ["DEFAULT", *weights_enum.__members__]
                raise ValueError(
                    f"torchvision model {self.name!r} has no weights "
                    f"{self.weights!r}; choose one of {names}, or None for "
                    "random weights."
                ) from exc
            # torchvision unpickles its checkpoints in full (torch.hub's
            # weights_only=False). Loading the file with weights_only=True
            # first (downloading it into torch.hub's cache if needed)
            # refuses one that would run code before the builder reads it.
            try:
                weights.get_state_dict(
                    progress=False, check_hash=True, weights_only=True
                )
            except urllib.error.URLError as exc:
                import torch

                raise ConnectionError(
                    f"Cannot download the {weights!r} weights of {self.name!r} "
                    f"from {weights.url} ({exc.reason}; offline?). Put the file "
                    "into torch.hub's cache, "
                    f"{os.path.join(torch.hub.get_dir(), 'checkpoints')}, or use "
                    "weights=None with the estimator's source_weights=<file>."
                ) from exc
            except pickle.UnpicklingError as exc:
                raise ValueError(
                    f"Refused to load the {weights!r} checkpoint of "
                    f"{self.name!r}: it needs to unpickle arbitrary Python "
                    "objects, which could execute code. Delete it from "
                    "torch.hub's cache (torch.hub.get_dir()) and download it "
                    "again."
                ) from exc
        return builder(weights=weights, **(self.model_kwargs or {}))


def torchvision_model(name, weights="DEFAULT", model_kwargs=None):
    """Name a torchvision model as the source network.

    Nothing is imported or loaded here: the estimator builds the model with
    ``torchvision.models.get_model`` in ``fit``. The head is the final layer
    with parameters (``fc`` for ResNets, ``classifier[-1]`` for VGG,
    EfficientNet, MobileNet, ``heads.head`` for ViT).

    Parameters
    ----------
    name : str
        A name from ``torchvision.models.list_models()``, e.g. ``"resnet18"``.
    weights : str, weights enum member or None, default="DEFAULT"
        ``"DEFAULT"`` (the best weights torchvision has for the model), the
        name of a member of the model's weights enum (``"IMAGENET1K_V1"``),
        the member itself (``ResNet18_Weights.IMAGENET1K_V1``), or None for
        random weights (to load your own file with the estimator's
        ``source_weights``). Weights are downloaded into torch.hub's cache on
        the first ``fit``; a file that needs to unpickle Python objects is
        refused.
    model_kwargs : dict, default=None
        Further keyword arguments of the model builder, e.g.
        ``{"num_classes": 10}`` with ``weights=None``.

    Returns
    -------
    spec : TorchvisionModel
        A small description to pass as ``source_module``; cloning it copies
        no network.

    Raises
    ------
    ImportError
        In ``fit``, when torchvision is not installed:
        ``pip install "sktransfer[torchvision]"``.

    See Also
    --------
    timm_model : a model from timm.
    huggingface_model : a Hugging Face text encoder.

    Examples
    --------
    >>> from sktransfer import FineTunedClassifier
    >>> from sktransfer.sources import torchvision_model
    >>> source = torchvision_model("resnet18", weights="IMAGENET1K_V1")
    >>> source
    torchvision_model('resnet18', weights='IMAGENET1K_V1')
    >>> FineTunedClassifier(source, freeze="body")
    FineTunedClassifier(freeze='body',
                        source_module=torchvision_model('resnet18', weights='IMAGENET1K_V1'))
    """  # noqa: E501
    return TorchvisionModel(name, weights=weights, model_kwargs=model_kwargs)


class TimmModel(SourceSpec):
    """A timm model by name, optionally pretrained.

    Made by :func:`timm_model`; see there for the parameters.
    """

    _param_names = ("name", "pretrained", "model_kwargs")
    _factory_name = "timm_model"

    def __init__(self, name, pretrained=True, model_kwargs=None):
        self.name = name
        self.pretrained = pretrained
        self.model_kwargs = model_kwargs

    def load(self):
        timm = import_optional("timm", "timm")
        if not timm.is_model(self.name):
            raise ValueError(
                f"timm has no model named {self.name!r}; timm.list_models() "
                "lists them (pretrained ones with pretrained=True)."
            )
        try:
            return timm.create_model(
                self.name, pretrained=self.pretrained, **(self.model_kwargs or {})
            )
        except (OSError, urllib.error.URLError) as exc:
            if not self.pretrained or isinstance(exc, FileNotFoundError):
                raise
            raise ConnectionError(
                f"Cannot download the pretrained weights of timm model "
                f"{self.name!r} ({exc}; offline?). Download them once with "
                "network access (they are cached), or load a local file with "
                "model_kwargs={'pretrained_cfg_overlay': {'file': <path>}}."
            ) from exc


def timm_model(name, pretrained=True, model_kwargs=None):
    """Name a timm model as the source network.

    Nothing is imported or loaded here: the estimator calls
    ``timm.create_model`` in ``fit``. The head is the layer the model's
    ``get_classifier()`` returns (``fc``, ``head``, ``head.fc`` …); a model
    created with ``num_classes=0`` has none and its output is the feature
    vector.

    Parameters
    ----------
    name : str
        A name from ``timm.list_models()``, e.g. ``"resnet18.a1_in1k"``.
    pretrained : bool, default=True
        Load the pretrained weights (downloaded on the first ``fit``; timm
        reads safetensors or torch files with ``weights_only=True``).
    model_kwargs : dict, default=None
        Further keyword arguments of ``timm.create_model``, e.g.
        ``{"pretrained_cfg_overlay": {"file": "weights.safetensors"}}`` to
        load a local file, or ``{"num_classes": 0}``.

    Returns
    -------
    spec : TimmModel
        A small description to pass as ``source_module``.

    Raises
    ------
    ImportError
        In ``fit``, when timm is not installed:
        ``pip install "sktransfer[timm]"``.

    See Also
    --------
    torchvision_model : a model from torchvision.

    Examples
    --------
    >>> from sktransfer import PretrainedFeatureTransformer
    >>> from sktransfer.sources import timm_model
    >>> PretrainedFeatureTransformer(timm_model("resnet18.a1_in1k"), pooling="avg")
    PretrainedFeatureTransformer(pooling='avg',
                                 source_module=timm_model('resnet18.a1_in1k'))
    """
    return TimmModel(name, pretrained=pretrained, model_kwargs=model_kwargs)

"""Save and load fitted estimators without pickle: JSON + safetensors.

A pickle runs arbitrary code when it is loaded, so it is only as trustworthy
as its source. :func:`save_fitted` writes a directory that loading cannot turn
into code: the estimator's parameters and fitted attributes as JSON
(``params.json``) and the fitted network's weights as safetensors
(``weights.safetensors``). The network's *architecture* is Python code, the
user's; it is not saved, so :func:`load_fitted` takes the source network again
and rebuilds the fitted network around it, exactly as ``fit`` did.

What loading accepts is exact: every parameter passes the estimator's
``_parameter_constraints``, every fitted attribute is one the class declares
(``_saved_attributes``) and of its declared kind, and a digest over the JSON
(which records the weights' SHA-256) detects any change to either file: a
SHA-256 without a key (corruption, mixed-up files, careless edits), an
HMAC-SHA256 with one (deliberate tampering by anyone without the key).
"""

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from . import (
    _auto,
    _distillation,
    _domain_adaptation,
    _feature_transfer,
    _fine_tuning,
    _fusion,
    _joint_training,
    _knowledge_regularized,
    _self_training,
    _source_model,
)
from ._auto import AutoTransferClassifier, AutoTransferRegressor
from ._core import SourceNetworkEstimator
from ._feature_transfer import PretrainedFeatureTransformer
from ._heads import forward_probe
from ._integrity import check_key, digest, file_sha256, verify_digest
from ._layer_output import LayerOutput
from ._saved_attributes import check_saved_attributes, saved_attributes
from ._seeding import seeded
from ._self_training import PseudoLabelingClassifier
from ._source import resolve_source
from ._training_checks import check_device
from ._validation import materialize_lazy_layers
from ._version import __version__

# The estimators a file may name: the public classes of the estimator
# modules, and nothing else, so that a name in a file can never make the
# loader import or call anything else.
_ESTIMATORS = {
    name: getattr(module, name)
    for module in (
        _auto,
        _distillation,
        _domain_adaptation,
        _feature_transfer,
        _fine_tuning,
        _fusion,
        _joint_training,
        _knowledge_regularized,
        _self_training,
        _source_model,
    )
    for name in module.__all__
    if isinstance(getattr(module, name), type)
    and issubclass(getattr(module, name), BaseEstimator)
}

__all__ = ["load_fitted", "save_fitted"]

_FORMAT = "sktransfer.fitted"
_FORMAT_VERSION = 2
_PARAMS_FILE = "params.json"
_WEIGHTS_FILE = "weights.safetensors"
# Rebuilt from the source network and the weights, not stored in the JSON.
_REBUILT = {"module_", "net_", "history_", "_extractor"}


class _NotSaveable(TypeError):
    pass


def save_fitted(estimator, directory, *, key=None):
    """Save a fitted estimator as JSON and safetensors, without pickle.

    Writes two files into ``directory`` (created if needed):

    - ``params.json``: the estimator's class, its parameters, its declared
      fitted attributes (``classes_``, ``n_features_in_``, ``head_choice_``,
      …), the training history, the SHA-256 of the weights file, and a digest
      of all of that: a SHA-256, or with ``key`` an HMAC-SHA256;
    - ``weights.safetensors``: the weights of the fitted network.

    Neither file can run code when loaded, unlike a pickle. The source network
    (its Python class) is not saved: :func:`load_fitted` needs it again.

    Parameters
    ----------
    estimator : fitted sktransfer estimator
    directory : str or os.PathLike
        Existing files named ``params.json`` / ``weights.safetensors`` in it
        are overwritten.
    key : bytes or str, default=None
        A secret key: the files are then authenticated with an HMAC-SHA256
        that only a holder of the key can compute, and :func:`load_fitted`
        refuses them unless given the same key. Without a key, the SHA-256
        detects accidental changes only: whoever can write the directory can
        recompute it.

    Returns
    -------
    directory : pathlib.Path

    Raises
    ------
    TypeError
        When the estimator holds a fitted attribute its class does not
        declare (see ``_saved_attributes``), or is not an sktransfer estimator.

    Notes
    -----
    A parameter that JSON cannot hold (a custom ``knowledge`` term, a
    ``random_state`` that is a ``RandomState`` instance, an optimizer outside
    ``torch.optim``, a network other than the source such as a
    ``student_module``) is recorded by name only; pass it to
    :func:`load_fitted` again.

    See Also
    --------
    load_fitted : rebuild the estimator from these files.

    Examples
    --------
    >>> import tempfile
    >>> import torch
    >>> from sklearn.datasets import load_iris
    >>> from sktransfer import FineTunedClassifier, load_fitted, save_fitted
    >>> X, y = load_iris(return_X_y=True)
    >>> def make_source():
    ...     torch.manual_seed(0)
    ...     return torch.nn.Sequential(
    ...         torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> clf = FineTunedClassifier(make_source(), max_epochs=5, random_state=0)
    >>> directory = save_fitted(clf.fit(X, y), tempfile.mkdtemp())
    >>> sorted(path.name for path in directory.iterdir())
    ['params.json', 'weights.safetensors']
    >>> loaded = load_fitted(directory, source_module=make_source())
    >>> bool((loaded.predict_proba(X) == clf.predict_proba(X)).all())
    True

    With a secret key, the files cannot be changed unnoticed by anyone who
    lacks it:

    >>> directory = save_fitted(clf, tempfile.mkdtemp(), key=b"secret key")
    >>> loaded = load_fitted(directory, make_source(), key=b"secret key")
    """
    from safetensors.torch import save_model

    check_is_fitted(estimator)
    _check_supported(type(estimator))
    key = check_key(key)
    declared = saved_attributes(type(estimator))
    params = estimator.get_params(deep=False)
    saved_params, pass_again = {}, {}
    for name, value in params.items():
        if name == "source_module":
            continue
        try:
            saved_params[name] = _encode(value)
        except _NotSaveable:
            pass_again[name] = type(value).__name__
    attributes = {}
    for name, value in vars(estimator).items():
        if name in params or name in _REBUILT:
            continue
        if name not in declared:
            raise TypeError(
                f"Cannot save {type(estimator).__name__}: its fitted attribute "
                f"{name!r} is not declared. Declare it, with its kind, in the "
                "_saved_attributes of the class that sets it."
            )
        try:
            attributes[name] = _encode(value)
        except _NotSaveable as exc:
            raise TypeError(
                f"Cannot save the fitted attribute {name!r} of "
                f"{type(estimator).__name__}: {exc}"
            ) from None
    history = getattr(estimator, "history_", None)

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights_path = directory / _WEIGHTS_FILE
    save_model(estimator.module_, os.fspath(weights_path), metadata={"format": "pt"})
    document = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "estimator": type(estimator).__name__,
        "sktransfer_version": _version(),
        "torch_version": torch.__version__,
        "params": saved_params,
        "params_to_pass_again": pass_again,
        "fitted_attributes": attributes,
        "history": None if history is None else _encode_history(history),
        "weights_sha256": file_sha256(weights_path),
    }
    document["digest"] = digest(document, key)
    (directory / _PARAMS_FILE).write_text(json.dumps(document, indent=1))
    return directory


def load_fitted(directory, source_module, *, key=None, **params):
    """Load an estimator saved by :func:`save_fitted`, without unpickling.

    The fitted network is rebuilt from ``source_module`` exactly as ``fit``
    built it (same head, same layers), and the saved weights are loaded into
    it, so the loaded estimator predicts bit-identically to the saved one on
    the same device and torch version.

    Parameters
    ----------
    directory : str or os.PathLike
        The directory written by :func:`save_fitted`.
    source_module : torch.nn.Module, fitted skorch net, or callable
        The source network the estimator was fitted with (its architecture;
        its weights are replaced by the saved ones). ``source_weights`` files
        are not read.
    key : bytes or str, default=None
        The secret key the files were saved with. With a key, files without
        a matching HMAC-SHA256 are refused, whatever else they hold; without
        one, files saved with a key are refused (they cannot be verified).
    **params
        Parameters to set on the loaded estimator: those that could not be
        saved as JSON (``params.json`` lists them under
        ``params_to_pass_again``; e.g. the ``student_module`` of a
        ``DistilledClassifier``, whose architecture is rebuilt like the
        source's), or others to change, e.g. ``device="cpu"`` for an estimator
        fitted on a GPU.

    Returns
    -------
    estimator : fitted estimator
        Of the class that was saved.

    Raises
    ------
    ValueError
        When the files are not a saved estimator, were changed after saving
        (their digest differs), hold a parameter its constraints refuse or a
        fitted attribute the class does not declare (or not of its kind), or
        do not fit ``source_module``.
    """
    key = check_key(key)
    directory = Path(directory)
    params_path, weights_path = directory / _PARAMS_FILE, directory / _WEIGHTS_FILE
    for path in (params_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"{os.fspath(path)!r} does not exist; load_fitted needs the "
                f"{_PARAMS_FILE} and {_WEIGHTS_FILE} that save_fitted writes."
            )
    document = _read_document(params_path)
    verify_digest(document, key, params_path)
    if file_sha256(weights_path) != document["weights_sha256"]:
        raise ValueError(
            f"{os.fspath(weights_path)!r} is not the file saved with "
            f"{_PARAMS_FILE}: its SHA-256 differs from the one recorded there. "
            "The file was modified or comes from another save."
        )
    estimator_class = _estimator_class(document["estimator"])
    _check_passed_again(document["params_to_pass_again"], estimator_class)
    missing = sorted(set(document["params_to_pass_again"]) - set(params))
    if missing:
        described = ", ".join(
            f"{name} (a {document['params_to_pass_again'][name]})" for name in missing
        )
        raise ValueError(
            f"These parameters could not be saved as JSON; pass them to "
            f"load_fitted again: {described}."
        )
    constructor_params = {
        name: _decode(value) for name, value in document["params"].items()
    }
    constructor_params.update(params)
    constructor_params["source_module"] = source_module
    try:
        estimator = estimator_class(**constructor_params)
    except TypeError as exc:
        raise ValueError(
            f"{os.fspath(params_path)!r} holds parameters that "
            f"{estimator_class.__name__} does not take: {exc}"
        ) from exc
    # Every parameter, saved or passed again, through the constraints fit
    # applies: a file cannot hold a value fit would refuse.
    estimator._validate_params()
    check_device(estimator.device)
    attributes = {
        name: _decode(value) for name, value in document["fitted_attributes"].items()
    }
    for name, value in check_saved_attributes(attributes, estimator_class).items():
        setattr(estimator, name, value)

    if isinstance(estimator, PretrainedFeatureTransformer):
        _restore_transformer(estimator, weights_path)
    else:
        _restore_network_estimator(estimator, weights_path, document["history"])
    return estimator


def _check_supported(estimator_class):
    if issubclass(estimator_class, (AutoTransferClassifier, AutoTransferRegressor)):
        raise TypeError(
            f"save_fitted does not support {estimator_class.__name__}: the "
            "model it chose, best_estimator_, can be any scikit-learn model. "
            "Save best_estimator_ instead: with save_fitted when it is an "
            "sktransfer estimator, otherwise with a format for scikit-learn "
            "models (e.g. skops)."
        )
    if issubclass(estimator_class, PseudoLabelingClassifier):
        raise TypeError(
            f"save_fitted does not support {estimator_class.__name__}, a wrapper "
            "whose predictions are those of estimator_, the model it fitted "
            "last: save estimator_ instead."
        )
    if not issubclass(
        estimator_class, (SourceNetworkEstimator, PretrainedFeatureTransformer)
    ):
        raise TypeError(
            f"save_fitted does not support {estimator_class.__name__}; it saves "
            "sktransfer's network estimators and PretrainedFeatureTransformer."
        )


def _estimator_class(name):
    # Only the package's own public estimators: a name in the file can never
    # make the loader import or call anything else.
    estimator_class = _ESTIMATORS.get(name)
    if estimator_class is None:
        raise ValueError(
            f"{_PARAMS_FILE} names the estimator {name!r}, which is not one of "
            "sktransfer's estimators."
        )
    _check_supported(estimator_class)
    return estimator_class


def _read_document(path):
    try:
        document = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{os.fspath(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise ValueError(
            f"{os.fspath(path)!r} was not written by sktransfer.save_fitted."
        )
    if document.get("format_version") != _FORMAT_VERSION:
        raise ValueError(
            f"{os.fspath(path)!r} has format version "
            f"{document.get('format_version')!r}; this sktransfer "
            f"({_version()}) reads version {_FORMAT_VERSION}."
        )
    expected = {
        "estimator": str,
        "params": dict,
        "params_to_pass_again": dict,
        "fitted_attributes": dict,
        "history": (list, type(None)),
        "weights_sha256": str,
        "digest": dict,
    }
    for key, kind in expected.items():
        if not isinstance(document.get(key), kind):
            raise ValueError(
                f"{os.fspath(path)!r} lacks a valid {key!r} entry; the file was "
                "modified or is incomplete."
            )
    if not all(isinstance(row, dict) for row in document["history"] or []):
        raise ValueError(
            f"{os.fspath(path)!r} holds a history that is not a list of epochs "
            "(dicts); the file was modified."
        )
    return document


def _check_passed_again(passed_again, estimator_class):
    names = estimator_class._get_param_names()
    for name, type_name in passed_again.items():
        if name not in names or not isinstance(type_name, str):
            raise ValueError(
                f"{_PARAMS_FILE} lists {name!r} among the parameters to pass "
                f"again, which is no parameter of {estimator_class.__name__}."
            )


def _restore_network_estimator(estimator, weights_path, history):
    network = resolve_source(estimator.source_module)
    probe = torch.zeros((1, *estimator._sample_shape), dtype=estimator._input_dtype)
    # A new head and lazy layers draw initial weights, overwritten below; the
    # fork keeps the user's global random stream as it was.
    with seeded(0, "cpu"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # reinitialize=True notes
        forward_probe(network, probe.clone())
        module = estimator._rebuild(network, probe, history)
    _load_weights(module, weights_path)


def _restore_transformer(estimator, weights_path):
    network = resolve_source(estimator.source_module)
    materialize_lazy_layers(network, np.zeros((1, *estimator.input_shape_)))
    _load_weights(network, weights_path)
    network.requires_grad_(False)
    estimator.module_ = network.to(estimator.device).eval()
    estimator._extractor = LayerOutput(estimator.module_, estimator.feature_layer)
    if estimator._extractor.layer_name != estimator.feature_layer_:
        raise ValueError(
            f"The transformer was saved reading layer {estimator.feature_layer_!r}, "
            f"but in the source_module given to load_fitted that is layer "
            f"{estimator._extractor.layer_name!r}: it is not the architecture "
            "the transformer was fitted with."
        )


def _load_weights(module, weights_path):
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    try:
        load_model(module, os.fspath(weights_path), strict=True)
    except (RuntimeError, SafetensorError) as exc:
        raise ValueError(
            f"The weights in {os.fspath(weights_path)!r} do not fit the network "
            f"built from source_module; pass the architecture the estimator was "
            f"fitted with. {exc}"
        ) from exc


def _encode(value):
    """A JSON value for ``value``; tagged dicts for what JSON lacks."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return _encode(value.item())
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(item) for item in value]}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) and key[:2] != "__" for key in value):
            raise _NotSaveable("a dict whose keys are not plain strings")
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufUO" or (
            value.dtype.kind == "O"
            and not all(
                isinstance(item, (str, int, float, bool)) for item in value.flat
            )
        ):
            raise _NotSaveable(f"an array of dtype {value.dtype}")
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, torch.dtype):
        return {"__torch_dtype__": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"__torch_device__": str(value)}
    if (
        isinstance(value, type)
        and issubclass(value, torch.optim.Optimizer)
        and getattr(torch.optim, value.__name__, None) is value
    ):
        return {"__torch_optimizer__": value.__name__}
    raise _NotSaveable(f"a {type(value).__name__}")


def _decode(value):
    """The value ``_encode`` made JSON of; a ValueError for anything else."""
    try:
        return _decode_value(value)
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise ValueError(
            f"{_PARAMS_FILE} holds a value that cannot be decoded: {exc}"
        ) from exc


def _decode_value(value):
    if isinstance(value, list):
        return [_decode_value(item) for item in value]
    if not isinstance(value, dict):
        return value
    if "__tuple__" in value:
        return tuple(_decode_value(item) for item in value["__tuple__"])
    if "__ndarray__" in value:
        dtype = np.dtype(value["dtype"])
        if dtype.kind not in "biufUO":
            raise ValueError(f"{_PARAMS_FILE} holds an array of dtype {dtype}.")
        return np.array(value["__ndarray__"], dtype=dtype)
    if "__torch_dtype__" in value:
        return _torch_attribute(torch, value["__torch_dtype__"], torch.dtype)
    if "__torch_device__" in value:
        return torch.device(value["__torch_device__"])
    if "__torch_optimizer__" in value:
        optimizer = _torch_attribute(torch.optim, value["__torch_optimizer__"], type)
        if not issubclass(optimizer, torch.optim.Optimizer):
            raise ValueError(f"{_PARAMS_FILE} names an unknown optimizer.")
        return optimizer
    return {key: _decode_value(item) for key, item in value.items()}


def _torch_attribute(namespace, name, kind):
    attribute = getattr(namespace, name, None) if isinstance(name, str) else None
    if not isinstance(attribute, kind):
        raise ValueError(f"{_PARAMS_FILE} names an unknown torch object {name!r}.")
    return attribute


def _encode_history(history):
    # skorch records Python numbers, but a callback may add numpy scalars.
    return json.loads(
        json.dumps(list(history), default=lambda item: _encode(item)),
    )


def _version():
    return __version__

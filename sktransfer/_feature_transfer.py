"""Feature transfer: a frozen pretrained network as a scikit-learn transformer."""

import os
from numbers import Integral

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import SourceModuleMixin
from ._dry_run import check_input_fits_network
from ._layer_output import LayerOutput
from ._saved_attributes import FEATURE_NAMES, SHAPE, TEXT, count, optional
from ._source import resolve_source
from ._training_checks import check_device
from ._validation import (
    check_finite_outputs,
    check_input_values,
    check_no_text,
    check_object_values,
    materialize_lazy_layers,
    network_dtype,
    reads_integers,
    to_batch_tensor,
)
from .sources._text import (
    HuggingFaceModel,
    TextEncoder,
    check_texts,
    pool_tokens,
    token_states,
)

__all__ = ["PretrainedFeatureTransformer"]


class PretrainedFeatureTransformer(
    SourceModuleMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Turn X into the features a frozen pretrained network computes.

    Feature transfer: the source network (or the part of it up to
    ``feature_layer``) is run in evaluation mode and never trained; its
    outputs become the input of any downstream scikit-learn estimator.
    ``fit`` learns nothing from the data: it checks that X fits the source
    network and records the input shape.

    With a text model (:func:`~sktransfer.sources.huggingface_model`), X is
    raw text, one string per sample: it is tokenized in batches and each
    text becomes one vector, pooled over its real tokens.

    Parameters
    ----------
    source_module : torch.nn.Module, fitted skorch net, source spec, or callable
        The pretrained network: a module instance, a fitted skorch
        ``NeuralNet`` (its ``module_`` is used), a named model from
        :mod:`sktransfer.sources` (loaded in ``fit``), or a module class /
        factory called without arguments. The estimator works on its own
        copy; the object you pass is never modified.
    source_weights : str or os.PathLike, default=None
        A ``.safetensors`` or torch state-dict file loaded into the copy of
        the source network. Torch files are read with ``weights_only=True``;
        a file that would need to unpickle arbitrary objects is refused.
    feature_layer : str, default=None
        Where to read the features. None or ``"body"``: the input of the
        network's final layer with parameters (its *head*), i.e. the
        penultimate representation, or the network's output when it has no
        head (a text encoder). Any other name from
        ``source_module.named_modules()`` (``"layer4"``, ``"0.2"``): the
        output of that sub-module. The rest of the network is not run.
    pooling : {"auto", "flatten", "avg", "max", "cls"}, default="auto"
        How a layer output becomes one row per sample. For an n-D output of
        shape ``(n_samples, channels, *rest)`` (PyTorch's channels-first
        layout): ``"flatten"`` keeps every value, ``"avg"`` / ``"max"`` pool
        over ``rest`` and keep one feature per channel; ``"auto"`` is
        ``"flatten"``. For a text model's token vectors: ``"avg"`` (and
        ``"auto"``) / ``"max"`` pool over the text's real tokens, padding
        excluded, and ``"cls"`` keeps the first token's vector. A 2-D output
        is returned as is.
    batch_size : int, default=256
        Rows (or texts) per forward pass; peak memory grows with it, not with
        the number of rows.
    device : str or torch.device, default="cpu"
        Where the network runs, e.g. ``"cuda"``.

    Attributes
    ----------
    module_ : torch.nn.Module
        The private, frozen copy of the source network, in evaluation mode.
    feature_layer_ : str
        Name of the layer the features come from (the head's name when
        ``feature_layer`` is None or ``"body"``; ``""``, the whole network,
        when the network has no head).
    input_shape_ : tuple of int
        Shape of one sample seen in ``fit`` (not set for text).
    n_features_in_ : int
        Number of features (2-D input) or channels (n-D input) seen in ``fit``
        (not set for text).
    feature_names_in_ : ndarray of str
        Column names of a DataFrame passed to ``fit``.

    See Also
    --------
    sklearn.pipeline.make_pipeline : put a downstream estimator after it.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from sktransfer import PretrainedFeatureTransformer
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> source = torch.nn.Sequential(
    ...     torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> X = np.random.RandomState(0).normal(size=(5, 4))
    >>> features = PretrainedFeatureTransformer(source).fit_transform(X)
    >>> features.shape
    (5, 8)
    """

    # The fitted attributes save_fitted keeps, and their kinds (see
    # _saved_attributes); text fits set no shape, width or column names.
    _saved_attributes = {
        "feature_layer_": TEXT,
        "input_shape_": optional(SHAPE),
        "n_features_in_": optional(count(1)),
        "feature_names_in_": FEATURE_NAMES,
        "_n_features_out": count(1),
    }

    _parameter_constraints = {
        "source_module": "no_validation",
        "source_weights": [str, os.PathLike, None],
        "feature_layer": [str, None],
        "pooling": [StrOptions({"auto", "flatten", "avg", "max", "cls"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
    }

    def __init__(
        self,
        source_module,
        *,
        source_weights=None,
        feature_layer=None,
        pooling="auto",
        batch_size=256,
        device="cpu",
    ):
        self.source_module = source_module
        self.source_weights = source_weights
        self.feature_layer = feature_layer
        self.pooling = pooling
        self.batch_size = batch_size
        self.device = device

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check that X fits the source network and record its shape.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, ...)
            2-D tabular data, n-D data such as images
            ``(n_samples, channels, height, width)``, or, for a text model,
            a list, 1-d array or Series of strings.
        y : None
            Ignored.

        Returns
        -------
        self : object
        """
        check_device(self.device)
        network = resolve_source(self.source_module, self.source_weights)
        if isinstance(network, TextEncoder):
            return self._fit_text(X, network)
        check_no_text(X, network)
        check_object_values(X)
        if self.pooling == "cls":
            raise ValueError(
                "pooling='cls' keeps the first token of a text model's output, "
                "but the source network is not a text model; use 'flatten', "
                "'avg' or 'max'."
            )
        integer_input = reads_integers(network)
        X = validate_data(
            self,
            X,
            dtype=None if integer_input else "numeric",
            allow_nd=True,
            ensure_all_finite=True,
        )
        check_input_values(
            X, network, feature_names=getattr(self, "feature_names_in_", None)
        )
        # A dry pass decides whether X fits the network (up to the feature
        # layer: the rest is never run).
        input_dtype = torch.long if integer_input else network_dtype(network)
        sample = to_batch_tensor(X[:1], input_dtype, "cpu")
        check_input_fits_network(
            network,
            sample,
            X_shape=X.shape,
            run=lambda _: materialize_lazy_layers(network, X[:1]),
        )
        network.requires_grad_(False)
        self.module_ = network.to(self.device).eval()
        self._extractor = LayerOutput(self.module_, self.feature_layer)
        self.feature_layer_ = self._extractor.layer_name
        self.input_shape_ = X.shape[1:]
        with self._extractor.hooked() as run:
            probe = check_input_fits_network(
                self.module_,
                sample.to(self.device),
                X_shape=X.shape,
                run=lambda s: _pool(run(s), self.pooling),
            )
        self._n_features_out = probe.shape[1]
        return self

    def transform(self, X):
        """Compute the features of X with the frozen network.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, ...)
            Same shape per sample as in ``fit``.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out)
            In the network's floating dtype (float32 for most networks).
        """
        check_is_fitted(self)
        if isinstance(self.module_, TextEncoder):
            return self._transform_text(X)
        check_no_text(X, self.module_)
        check_object_values(X)
        # Before validate_data, whose message would count the channels of
        # an image as its "features" (1-D X gets its "Reshape your data").
        ndim = getattr(X, "ndim", 0)
        if ndim >= 2 and ndim != len(self.input_shape_) + 1:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but "
                f"{type(self).__name__} was fitted on samples of shape "
                f"{self.input_shape_}."
            )
        X = validate_data(
            self,
            X,
            reset=False,
            dtype=None if reads_integers(self.module_) else "numeric",
            allow_nd=True,
            ensure_all_finite=True,
        )
        check_input_values(
            X, self.module_, feature_names=getattr(self, "feature_names_in_", None)
        )
        if X.ndim != len(self.input_shape_) + 1 or (
            self.pooling in ("auto", "flatten") and X.shape[1:] != self.input_shape_
        ):
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but "
                f"{type(self).__name__} was fitted on samples of shape "
                f"{self.input_shape_}."
            )
        features = np.empty(
            (X.shape[0], self._n_features_out),
            dtype=_numpy_dtype(network_dtype(self.module_)),
        )
        features_view = torch.from_numpy(features)
        input_dtype = self._input_dtype()
        # Never NaN or infinite features, silently.
        finite = check_finite_outputs(X)
        with self._extractor.hooked() as run:
            for start in range(0, X.shape[0], self.batch_size):
                stop = start + self.batch_size
                features_view[start:stop] = finite(
                    self._forward(run, X[start:stop], input_dtype)
                )
        return features

    def _fit_text(self, X, network):
        texts = check_texts(X)
        if self.pooling == "flatten":
            raise ValueError(
                "pooling='flatten' cannot make one row per text: texts have "
                "different numbers of tokens. Use 'avg' (mean over the real "
                "tokens, the default), 'max' or 'cls'."
            )
        # Nothing of X's shape or columns applies to text (a refit may
        # follow a fit on arrays).
        for name in ("n_features_in_", "feature_names_in_", "input_shape_"):
            self.__dict__.pop(name, None)
        network.requires_grad_(False)
        network.pooling = "avg" if self.pooling == "auto" else self.pooling
        self.module_ = network.to(self.device).eval()
        self._extractor = LayerOutput(self.module_, self.feature_layer)
        self.feature_layer_ = self._extractor.layer_name
        with self._extractor.hooked() as run:
            probe = self._forward_text(run, texts[:1])
        self._n_features_out = probe.shape[1]
        return self

    def _transform_text(self, X):
        texts = check_texts(X)
        features = np.empty(
            (len(texts), self._n_features_out),
            dtype=_numpy_dtype(network_dtype(self.module_)),
        )
        # Texts of similar length share a batch, so little of each batch is
        # padding; the mask keeps padding out of the features either way.
        order = np.argsort([len(text) for text in texts], kind="stable")
        with self._extractor.hooked() as run:
            for start in range(0, len(texts), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = [texts[row] for row in rows]
                features[rows] = self._forward_text(run, batch).numpy()
        return features

    def _forward_text(self, run, texts):
        input_ids, attention_mask = self.module_.tokenize(texts, self.device)
        with torch.inference_mode():
            try:
                outputs = run(input_ids, attention_mask)
            except (RuntimeError, ValueError, TypeError) as exc:
                raise ValueError(
                    f"The text model could not process the batch: {exc}"
                ) from exc
            states = token_states(outputs)
            if states.ndim == 3:
                states = pool_tokens(states, attention_mask, self.module_.pooling)
            return _pool(states, "flatten").cpu()

    def _input_dtype(self):
        if reads_integers(self.module_):
            return torch.long
        return network_dtype(self.module_)

    def _forward(self, run, X_batch, input_dtype):
        inputs = to_batch_tensor(X_batch, input_dtype, self.device)
        with torch.inference_mode():
            try:
                outputs = run(inputs)
            except (RuntimeError, ValueError, TypeError) as exc:
                raise ValueError(
                    f"The source network could not process samples of shape "
                    f"{tuple(X_batch.shape[1:])}: {exc}"
                ) from exc
            return _pool(outputs, self.pooling).cpu()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        if isinstance(self.source_module, (HuggingFaceModel, TextEncoder)):
            tags.input_tags.string = True
            tags.input_tags.two_d_array = False
        else:
            tags.input_tags.three_d_array = True
        return tags


def _numpy_dtype(torch_dtype):
    return torch.empty((), dtype=torch_dtype).numpy().dtype


def _pool(outputs, pooling):
    """Make a layer output 2-D: (n_samples, n_features)."""
    if isinstance(outputs, (tuple, list)):
        outputs = outputs[0]
    if outputs.ndim == 1:
        return outputs.reshape(-1, 1)
    if outputs.ndim == 2:
        return outputs
    if pooling in ("auto", "flatten"):
        return outputs.flatten(start_dim=1)
    rest = tuple(range(2, outputs.ndim))
    if pooling == "avg":
        return outputs.mean(dim=rest)
    return outputs.amax(dim=rest)

"""Raw text to token ids of one fixed length: the step before a training estimator."""

from numbers import Integral

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ._text import HuggingFaceModel, TextEncoder, check_texts

__all__ = ["TextTokenizer"]


class TextTokenizer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Turn raw text into token ids of one fixed length, in a pipeline.

    The estimators that train (:class:`~sktransfer.FineTunedClassifier` and
    the others) read token ids, one row per text, and a network fitted on
    rows of ``n`` ids needs rows of ``n`` ids to predict. This step makes
    them: ``fit`` learns the length (the longest text of the training data,
    in tokens, unless ``max_length`` fixes it), and ``transform`` pads every
    text to it with the tokenizer's pad id (which the network masks out) or
    truncates it. Put it first in a :class:`~sklearn.pipeline.Pipeline`, and
    ``fit``, ``predict`` on new text, ``cross_val_score`` and ``GridSearchCV``
    work on raw strings.

    Parameters
    ----------
    source_module : HuggingFaceModel or TextEncoder
        The text model whose tokenizer is used: the
        :func:`~sktransfer.sources.huggingface_model` spec you also pass to
        the estimator (loaded in ``fit``), or a loaded ``TextEncoder``.
    max_length : int, default=None
        Tokens per text, special tokens included. None: the number of tokens
        of the longest text seen in ``fit``, at most the model's limit
        (``max_length`` of the spec, or what the tokenizer and the model
        allow).

    Attributes
    ----------
    max_length_ : int
        Tokens per text in the output of ``transform``.
    pad_token_id_ : int
        The id that pads short texts.

    See Also
    --------
    huggingface_model : name the text model.
    sktransfer.PretrainedFeatureTransformer : embeds raw text itself, for
        feature transfer; it needs no tokenizer step.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sktransfer import FineTunedClassifier
    >>> from sktransfer.sources import TextTokenizer, huggingface_model
    >>> source = huggingface_model("sentence-transformers/all-MiniLM-L6-v2")
    >>> make_pipeline(TextTokenizer(source), FineTunedClassifier(source))
    Pipeline(steps=[('texttokenizer',
                     TextTokenizer(source_module=huggingface_model('sentence-transformers/all-MiniLM-L6-v2'))),
                    ('finetunedclassifier',
                     FineTunedClassifier(source_module=huggingface_model('sentence-transformers/all-MiniLM-L6-v2')))])
    """

    _parameter_constraints = {
        "source_module": [HuggingFaceModel, TextEncoder],
        "max_length": [Interval(Integral, 2, None, closed="left"), None],
    }

    def __init__(self, source_module, *, max_length=None):
        self.source_module = source_module
        self.max_length = max_length

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Load the tokenizer and learn the number of tokens per text.

        Parameters
        ----------
        X : list, 1-d array or pandas Series of str
            The training texts.
        y : None
            Ignored.

        Returns
        -------
        self : object
        """
        texts = check_texts(X)
        tokenizer, limit = self.source_module.load_tokenizer()
        if self.max_length is not None:
            length = self.max_length
        else:
            ids = tokenizer(texts, truncation=True, max_length=limit)["input_ids"]
            length = max(len(row) for row in ids)
        self.tokenizer_ = tokenizer
        self.max_length_ = int(length)
        pad_token_id = tokenizer.pad_token_id
        self.pad_token_id_ = 0 if pad_token_id is None else int(pad_token_id)
        self._n_features_out = self.max_length_
        return self

    def transform(self, X):
        """Token ids of each text, padded or truncated to ``max_length_``.

        Parameters
        ----------
        X : list, 1-d array or pandas Series of str

        Returns
        -------
        input_ids : ndarray of shape (n_texts, n_tokens), dtype int64
            ``n_tokens`` is ``max_length_``.
        """
        check_is_fitted(self)
        texts = check_texts(X)
        encoded = self.tokenizer_(
            texts,
            padding="max_length",
            truncation=True,
            max_length=self.max_length_,
            return_tensors="np",
        )
        return encoded["input_ids"].astype(np.int64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.requires_fit = True
        return tags

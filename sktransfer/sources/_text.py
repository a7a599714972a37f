"""Text encoders by name: Hugging Face ``transformers`` models and tokenizers."""

import os

import numpy as np
import torch
from torch import nn

from ._spec import SourceSpec, import_optional, reachable

__all__ = [
    "HuggingFaceModel",
    "TextEncoder",
    "check_texts",
    "holds_strings",
    "huggingface_model",
    "pool_tokens",
]

TEXT_POOLING = ("avg", "max", "cls")


class HuggingFaceModel(SourceSpec):
    """A Hugging Face encoder and its tokenizer, by name or local folder.

    Made by :func:`huggingface_model`; see there for the parameters.
    """

    _param_names = (
        "name_or_path",
        "revision",
        "max_length",
        "local_files_only",
        "model_kwargs",
        "tokenizer_kwargs",
    )
    _factory_name = "huggingface_model"

    def __init__(
        self,
        name_or_path,
        revision=None,
        max_length=None,
        local_files_only=False,
        model_kwargs=None,
        tokenizer_kwargs=None,
    ):
        self.name_or_path = name_or_path
        self.revision = revision
        self.max_length = max_length
        self.local_files_only = local_files_only
        self.model_kwargs = model_kwargs
        self.tokenizer_kwargs = tokenizer_kwargs

    def _from_pretrained(self, auto_class, kwargs):
        transformers = import_optional("transformers", "transformers")
        logging = transformers.utils.logging
        # Offline, the Hub client retries each file for half a minute before
        # failing. Find out first, and then read the local cache only.
        offline = not self.local_files_only and not self._hub_reachable()
        # A "Loading weights" bar in every fit of a grid search is noise.
        bar_was_enabled = logging.is_progress_bar_enabled()
        logging.disable_progress_bar()
        try:
            return getattr(transformers, auto_class).from_pretrained(
                os.fspath(self.name_or_path),
                revision=self.revision,
                local_files_only=self.local_files_only or offline,
                **(kwargs or {}),
            )
        except OSError as exc:
            if not offline:
                raise
            from huggingface_hub import constants

            raise ConnectionError(
                f"Cannot download {os.fspath(self.name_or_path)!r}: the Hugging "
                f"Face Hub ({constants.ENDPOINT}) cannot be reached (offline?), "
                "and the model is not in the local cache "
                f"({constants.HF_HUB_CACHE}). Download it once with network "
                "access, or pass the folder of a model saved with "
                "save_pretrained (if the name is meant as such a folder: it "
                "does not exist)."
            ) from exc
        finally:
            if bar_was_enabled:
                logging.enable_progress_bar()

    def _hub_reachable(self):
        if os.path.isdir(self.name_or_path):
            return True  # a local folder needs no network
        from huggingface_hub import constants

        return not constants.is_offline_mode() and reachable(constants.ENDPOINT)

    def load(self):
        model = self._from_pretrained("AutoModel", self.model_kwargs)
        tokenizer = self._from_pretrained("AutoTokenizer", self.tokenizer_kwargs)
        return TextEncoder(model, tokenizer, max_length=self.max_length)

    def load_tokenizer(self):
        """The tokenizer, and the most tokens per text the model reads.

        Returns
        -------
        tokenizer : transformers tokenizer
        max_length : int or None
            ``max_length`` if set, else the smaller of the tokenizer's and the
            model's limits.
        """
        tokenizer = self._from_pretrained("AutoTokenizer", self.tokenizer_kwargs)
        config = self._from_pretrained("AutoConfig", None)
        return tokenizer, effective_max_length(tokenizer, config, self.max_length)

    def tokenize(self, texts):
        """Token ids of ``texts``, padded to the longest of them.

        The width depends on the texts given, so ids made by separate calls
        (training texts, new texts) differ in width, and a network fitted on
        one width cannot predict on another. To train and predict on raw
        text, put :class:`~sktransfer.sources.TextTokenizer` before the
        estimator in a pipeline instead: it pads every text to the width
        learned in ``fit``. Padding positions hold the tokenizer's pad id,
        which the network masks out.

        Parameters
        ----------
        texts : list, 1-d array or pandas Series of str

        Returns
        -------
        input_ids : ndarray of shape (n_samples, n_tokens), dtype int64
        """
        texts = check_texts(texts)
        tokenizer, max_length = self.load_tokenizer()
        encoded = tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="np",
        )
        return encoded["input_ids"].astype(np.int64)


def huggingface_model(
    name_or_path,
    *,
    revision=None,
    max_length=None,
    local_files_only=False,
    model_kwargs=None,
    tokenizer_kwargs=None,
):
    """Name a Hugging Face text encoder (with its tokenizer) as the source.

    Nothing is imported or loaded here: the estimator calls
    ``transformers.AutoModel.from_pretrained`` and
    ``AutoTokenizer.from_pretrained`` in ``fit``. The network is the encoder
    without any task head (BERT, RoBERTa, MiniLM, DistilBERT …); it reads
    token ids and returns one vector per text, pooled over the real tokens
    (padding is masked out). It has no head: fine-tuning adds a new one.

    :class:`~sktransfer.PretrainedFeatureTransformer` with this source takes
    raw strings and tokenizes them itself; the fine-tuning estimators take
    the token ids made by ``spec.tokenize(texts)``.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        A model id on the Hugging Face Hub (``"bert-base-uncased"``) or a
        local folder written by ``save_pretrained``.
    revision : str, default=None
        A branch, tag or commit of the Hub repository; None is ``"main"``.
    max_length : int, default=None
        Longest token sequence kept per text; longer texts are truncated.
        None: the smaller of the tokenizer's ``model_max_length`` and the
        model's ``max_position_embeddings``.
    local_files_only : bool, default=False
        Never download: use the local folder or the Hugging Face cache only.
    model_kwargs : dict, default=None
        Further keyword arguments of ``AutoModel.from_pretrained``
        (e.g. ``{"torch_dtype": torch.float32}``). ``trust_remote_code`` stays
        False unless you set it here: a model that needs its own code is
        refused.
    tokenizer_kwargs : dict, default=None
        Further keyword arguments of ``AutoTokenizer.from_pretrained``.

    Returns
    -------
    spec : HuggingFaceModel
        A small description to pass as ``source_module``.

    Raises
    ------
    ImportError
        In ``fit``, when transformers is not installed:
        ``pip install "sktransfer[transformers]"``.

    See Also
    --------
    torchvision_model, timm_model : image models by name.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sktransfer import PretrainedFeatureTransformer
    >>> from sktransfer.sources import huggingface_model
    >>> source = huggingface_model("sentence-transformers/all-MiniLM-L6-v2")
    >>> make_pipeline(PretrainedFeatureTransformer(source), LogisticRegression())
    Pipeline(steps=[('pretrainedfeaturetransformer',
                     PretrainedFeatureTransformer(source_module=huggingface_model('sentence-transformers/all-MiniLM-L6-v2'))),
                    ('logisticregression', LogisticRegression())])
    """
    return HuggingFaceModel(
        name_or_path,
        revision=revision,
        max_length=max_length,
        local_files_only=local_files_only,
        model_kwargs=model_kwargs,
        tokenizer_kwargs=tokenizer_kwargs,
    )


class TextEncoder(nn.Module):
    """A Hugging Face encoder that maps token ids to one vector per text.

    Parameters
    ----------
    model : torch.nn.Module
        The encoder; called as ``model(input_ids=..., attention_mask=...)``,
        its first output (``last_hidden_state``) holds one vector per token.
    tokenizer : transformers tokenizer
    max_length : int or None
        See :func:`huggingface_model`.
    pooling : {"avg", "max", "cls"}, default="avg"
        How token vectors become one vector: the mean or the maximum over the
        real tokens (the attention mask), or the first token's vector.
    """

    def __init__(self, model, tokenizer, max_length=None, pooling="avg"):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pooling = pooling

    @property
    def pad_token_id(self):
        pad_token_id = self.tokenizer.pad_token_id
        return 0 if pad_token_id is None else pad_token_id

    def get_classifier(self):
        """No head: the encoder's pooled output is its feature vector."""
        # timm's convention, which find_head_name reads: a classifier
        # without parameters means the network has no head.
        return nn.Identity()

    def forward(self, input_ids, attention_mask=None):
        if attention_mask is None:
            # Token ids alone (from HuggingFaceModel.tokenize): the padding
            # positions are those holding the pad id.
            attention_mask = (input_ids != self.pad_token_id).long()
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return pool_tokens(token_states(outputs), attention_mask, self.pooling)

    def load_tokenizer(self):
        """The tokenizer, and the most tokens per text the model reads.

        Returns
        -------
        tokenizer : transformers tokenizer
        max_length : int or None
        """
        config = getattr(self.model, "config", None)
        return self.tokenizer, effective_max_length(
            self.tokenizer, config, self.max_length
        )

    def tokenize(self, texts, device="cpu"):
        """``(input_ids, attention_mask)`` of a batch, padded to its longest text."""
        config = getattr(self.model, "config", None)
        encoded = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=effective_max_length(self.tokenizer, config, self.max_length),
            return_tensors="pt",
        )
        return (
            encoded["input_ids"].to(device),
            encoded["attention_mask"].to(device),
        )


def effective_max_length(tokenizer, config, max_length):
    if max_length is not None:
        return max_length
    # Tokenizers without a limit report a huge sentinel; the position
    # embeddings are the real limit.
    limits = [getattr(tokenizer, "model_max_length", None)]
    limits.append(getattr(config, "max_position_embeddings", None))
    limits = [limit for limit in limits if limit is not None and limit < 10**6]
    return min(limits) if limits else None


def token_states(outputs):
    """The per-token vectors ``(n_samples, n_tokens, width)`` of an output."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    last_hidden_state = getattr(outputs, "last_hidden_state", None)
    if last_hidden_state is not None:
        return last_hidden_state
    return outputs[0]


def pool_tokens(states, attention_mask, pooling):
    """One vector per text from ``(n_samples, n_tokens, width)`` token states.

    Parameters
    ----------
    states : Tensor of shape (n_samples, n_tokens, width)
    attention_mask : Tensor of shape (n_samples, n_tokens)
        1 for real tokens, 0 for padding; padding never reaches the result.
    pooling : {"avg", "max", "cls"}

    Returns
    -------
    pooled : Tensor of shape (n_samples, width)
    """
    if pooling == "cls":
        return states[:, 0]
    mask = attention_mask.to(torch.bool).unsqueeze(-1)
    if pooling == "max":
        return states.masked_fill(~mask, torch.finfo(states.dtype).min).amax(dim=1)
    if pooling == "avg":
        summed = states.masked_fill(~mask, 0).sum(dim=1)
        counts = mask.sum(dim=1).clamp(min=1).to(states.dtype)
        return summed / counts
    raise ValueError(
        f"pooling={pooling!r} cannot pool token vectors; use one of {TEXT_POOLING}."
    )


def holds_strings(X):
    """True when X (array-like, DataFrame, Series, list) holds text."""
    if isinstance(X, str):
        return True
    if hasattr(X, "dtypes") and not hasattr(X, "dtype"):  # DataFrame
        return any(dtype.kind in "OSU" for dtype in X.dtypes) and holds_strings(
            X.iloc[:1].to_numpy()
        )
    try:
        values = np.asarray(X[:1] if isinstance(X, (list, tuple)) else X)
    except (TypeError, ValueError):
        return False
    if values.dtype.kind in "SU":
        return True
    return (
        values.dtype.kind == "O" and values.size > 0 and isinstance(values.flat[0], str)
    )


def check_texts(X, name="X"):
    """Return X as a list of str, or say clearly why it is not text.

    Parameters
    ----------
    X : list, tuple, 1-d array or pandas Series of str

    Returns
    -------
    texts : list of str
    """
    if isinstance(X, (str, bytes)):
        raise ValueError(
            f"{name} is a single string; a text model needs one string per "
            f"sample: pass [{name}]."
        )
    if hasattr(X, "columns"):
        raise ValueError(
            f"{name} is a DataFrame; a text model reads one string per sample: "
            "pass the text column as a Series (df['text'])."
        )
    values = np.asarray(X, dtype=object)
    if values.ndim != 1:
        raise ValueError(
            f"{name} has shape {values.shape}; a text model reads a 1-d "
            "array-like of strings (one per sample)."
        )
    if values.shape[0] == 0:
        raise ValueError(f"Found array with 0 sample(s) in {name}.")
    not_text = [value for value in values if not isinstance(value, str)]
    if not_text:
        raise ValueError(
            f"The source network is a text model and reads strings, but {name} "
            f"holds {type(not_text[0]).__name__} values such as "
            f"{not_text[0]!r}. Pass raw text, one string per sample."
        )
    return values.tolist()

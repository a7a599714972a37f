"""The estimator core: a network built from the source, trained, and used.

:class:`SourceNetworkEstimator` knows the source network, the device, input
validation and prediction; :class:`NetworkEstimator` adds the training
settings and seeding. Neither knows heads or freezing: a strategy implements
one method, ``_plan(source_network, probe, rows, **fit_data)``, which returns
a :class:`~sktransfer._plan.TrainingPlan` (composing the head, freezing and
knowledge-term components it needs), and the core does the rest:

1. ``_validate_fit_input``: resolve the source (a private copy), check X, y
   and the weights, encode the targets;
2. a dry forward pass of one sample decides whether X fits the network;
3. the training rows (``TrainingRows``: arrays on the device, or a torch
   ``Dataset`` read in batches) and the validation split;
4. ``_plan``: the strategy;
5. the engine trains the plan (:mod:`sktransfer._engine`);
6. the fitted attributes, set here and nowhere else.
"""

import os
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch.history import History

from ._base import SourceModuleMixin, rolled_back_on_failure
from ._data import (
    InMemoryDataset,
    LabelledDataset,
    count_batches,
    dataset_inputs,
    dataset_targets,
    epochs_for,
    inputs_of,
    is_torch_dataset,
)
from ._dry_run import check_input_fits_network
from ._engine import TransferNet, build_net
from ._frozen_pass import FrozenSourceOutputs
from ._saved_attributes import FEATURE_NAMES, SHAPE, TEXT, TORCH_DTYPE, count, one_of
from ._seeding import draw_seed, seeded
from ._source import resolve_source
from ._training_checks import (
    check_batch_norm_batches,
    check_device,
    check_something_trains,
    check_validation_split,
)
from ._validation import (
    check_finite_outputs,
    check_input_values,
    check_no_text,
    check_object_values,
    check_sample_weight,
    check_token_width,
    network_dtype,
    positive_strides,
    reads_integers,
)
from ._weight_interpolation import interpolate_weights, snapshot_weights

__all__ = [
    "SOURCE_CONSTRAINTS",
    "TRAINING_CONSTRAINTS",
    "FitInput",
    "NetworkEstimator",
    "SourceNetworkEstimator",
    "TrainingRows",
    "set_targets",
    "validate_array_input",
]

# What every estimator that runs a network built from the source takes.
SOURCE_CONSTRAINTS = {
    "source_module": "no_validation",
    "source_weights": [str, os.PathLike, None],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "device": [str, torch.device],
}

# ... and every one that trains it.
TRAINING_CONSTRAINTS = {
    **SOURCE_CONSTRAINTS,
    "max_epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    "lr": [Interval(Real, 0, None, closed="neither")],
    "optimizer": [callable],
    "optimizer_kwargs": [dict, None],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "callbacks": [list, tuple, None],
    "net_params": [dict, None],
    "augmentation": [callable, None],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}


class FitInput(NamedTuple):
    """What validation makes of one fit's arguments."""

    network: torch.nn.Module
    X: object  # ndarray, or a torch Dataset
    y: object  # the validated targets (None for a Dataset: its samples hold them)
    y_encoded: np.ndarray
    sample_weight: np.ndarray
    input_dtype: torch.dtype
    sample_shape: tuple


def validate_array_input(estimator, network, X, y, sample_weight):
    """Check arrays (X, y, sample_weight) against ``network``; a :class:`FitInput`.

    The one input check of every estimator that fits arrays with a source
    network (the core's and ``AutoTransfer*``): text, strings, NaN and values
    beyond the network's dtype are refused, ``n_features_in_`` and the
    targets' fitted attributes (``classes_`` or ``n_outputs_``) are set. The
    estimator has a targets mixin (:mod:`sktransfer._targets`).
    """
    check_no_text(X, network)
    check_object_values(X)
    integer_input = reads_integers(network)
    estimator._check_targets(y)
    X, y = validate_data(
        estimator,
        X,
        y,
        dtype=None if integer_input else "numeric",
        allow_nd=True,
        ensure_all_finite=True,
        **estimator._y_validation_params(),
    )
    check_input_values(
        X, network, feature_names=getattr(estimator, "feature_names_in_", None)
    )
    sample_weight = check_sample_weight(sample_weight, X)
    y_encoded = set_targets(estimator, y)
    input_dtype = torch.long if integer_input else network_dtype(network)
    return FitInput(
        network,
        positive_strides(X),
        y,
        y_encoded,
        sample_weight,
        input_dtype,
        X.shape[1:],
    )


def set_targets(estimator, y):
    """Encode ``y`` and set the targets' fitted attributes; the encoded ``y``."""
    y_encoded, attributes = estimator._encode_targets(y)
    for name, value in attributes.items():
        setattr(estimator, name, value)
    return y_encoded


class TrainingRows:
    """The rows a fit trains on, and the frozen source's outputs on them.

    ``frozen_outputs`` runs the frozen source once, on first call, and every
    later call (the head decision, the linear probe) reuses that pass.

    Attributes
    ----------
    data : InMemoryDataset or LabelledDataset
        The training rows, on the training device.
    y : ndarray
        Their encoded targets.
    sample_weight : ndarray
        Their weights.
    """

    def __init__(
        self, data, y, sample_weight, *, frozen=None, batch_size=256, device="cpu"
    ):
        self.data = data
        self.y = y
        self.sample_weight = sample_weight
        self._frozen = frozen
        self._batch_size = batch_size
        self._device = device

    def frozen_outputs(self, body, head):
        """:class:`FrozenSourceOutputs` of ``body`` / ``head`` on these rows.

        The networks run on the training device, where the rows are, and go
        back where they were: strategies build their network on the CPU.
        """
        if self._frozen is None:
            places = [
                (module, next(module.parameters(), torch.empty(0)).device)
                for module in (body, head)
            ]
            try:
                self._frozen = FrozenSourceOutputs.compute(
                    body.to(self._device),
                    head.to(self._device),
                    self.data.input_batches(self._batch_size),
                    len(self.data),
                )
            finally:
                for module, device in places:
                    module.to(device)
        return self._frozen


class SourceNetworkEstimator(SourceModuleMixin, BaseEstimator):
    """Fit and predict with a network built from the source network.

    Subclasses implement ``_plan`` (the strategy) and a targets mixin
    (:mod:`sktransfer._targets`); this class does not train: see
    :class:`NetworkEstimator`.
    """

    _parameter_constraints = dict(SOURCE_CONSTRAINTS)

    # The fitted attributes save_fitted keeps, and their kinds (see
    # _saved_attributes): one line per attribute, in the class that sets it.
    _saved_attributes = {
        "n_features_in_": count(1),
        "feature_names_in_": FEATURE_NAMES,
        "head_choice_": one_of("reuse", "new"),
        "head_choice_reason_": TEXT,
        "n_iter_": count(0),
        "_input_dtype": TORCH_DTYPE,
        "_sample_shape": SHAPE,
    }

    # Whether fit trains the network (False: it is used as it is).
    _trains = False

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Fit the network on (X, y).

        Parameters
        ----------
        X : array-like, DataFrame or torch Dataset of shape (n_samples, ...)
            Inputs the source network accepts: 2-D tabular data, n-D data such
            as images ``(n_samples, channels, height, width)``, or a torch
            ``Dataset`` of ``(x, y)`` samples (then ``y`` is None), read in
            batches: the route for data that does not fit in memory.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target labels (classifier) or values (regressor).
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights of the loss; None weighs every sample equally.

        Returns
        -------
        self : object
        """
        return self._fit_guarded(X, y, sample_weight)

    def _fit_guarded(self, X, y, sample_weight, **fit_options):
        # A fit that fails or is interrupted leaves the estimator as it was
        # (unfitted, or fitted before), never half-updated.
        with rolled_back_on_failure(self):
            return self._fit(X, y, sample_weight, **fit_options)

    def _fit(
        self,
        X,
        y,
        sample_weight,
        *,
        frozen_outputs=None,
        after_training=None,
        **fit_data,
    ):
        # frozen_outputs: the frozen source's FrozenSourceOutputs on every row
        # of X, when the caller computed them already (AutoTransfer* shares
        # one pass between its candidates). after_training: called with the
        # trained network and the weights training started from (AutoTransfer*
        # interpolates them for its WiSE-FT candidates).
        fit_input = self._validate_fit_input(X, y, sample_weight)
        seed = draw_seed(getattr(self, "random_state", 0))
        with seeded(seed, self.device):
            probe = self._probe_sample(fit_input)
            # A dry pass decides whether X fits the whole network, and gives
            # lazy layers their (seeded) weights before anything is copied.
            check_input_fits_network(
                fit_input.network, probe.clone(), X_shape=_shape_of(fit_input.X)
            )
            data = self._training_data(fit_input)
            train_index, valid_index = self._split_validation(fit_input.y_encoded, seed)
            train_data = data if valid_index is None else data.take(train_index)
            valid_data = None if valid_index is None else data.take(valid_index)
            if frozen_outputs is not None and valid_index is not None:
                frozen_outputs = frozen_outputs.take(train_index)
            rows = TrainingRows(
                train_data,
                fit_input.y_encoded[train_index],
                fit_input.sample_weight[train_index],
                frozen=frozen_outputs,
                batch_size=max(self.batch_size, 256),
                device=self.device,
            )
            plan = self._plan(fit_input.network, probe, rows, **fit_data)
            del rows
            if self._trains:
                net = self._train(
                    plan, probe, train_data, valid_data, seed, after_training
                )
            else:
                net = self._prediction_net(plan.module.to(self.device))
        self._set_fitted(net, plan, fit_input)
        return self

    def _set_fitted(self, net, plan, fit_input):
        """Every fitted attribute of a fit besides the targets', in one place."""
        self.net_ = net
        self.module_ = net.module_
        self.history_ = net.history
        self.n_iter_ = len(net.history)
        self._input_dtype = fit_input.input_dtype
        self._sample_shape = fit_input.sample_shape
        for name, value in plan.fitted.items():
            setattr(self, name, value)

    def _plan(self, source_network, probe, rows, **fit_data):
        """The strategy: a :class:`TrainingPlan` for this fit.

        Parameters
        ----------
        source_network : nn.Module
            A private copy of the source network (it may be changed).
        probe : torch.Tensor
            One sample, to read the shapes of features and outputs.
        rows : TrainingRows or None
            The rows training fits on; None when :func:`load_fitted` rebuilds
            a fitted estimator's network, whose fitted attributes are set.
        **fit_data
            The extra data ``fit`` accepts (source data, unlabelled data).
        """
        raise NotImplementedError

    # --- input -------------------------------------------------------------

    def _validate_fit_input(self, X, y, sample_weight):
        """Resolve the source network and check (X, y, sample_weight) against it.

        Sets the targets' fitted attributes (``classes_`` or ``n_outputs_``,
        which the strategy needs) and ``n_features_in_``. Whether X fits the
        network is decided afterwards, by a dry forward pass.
        """
        check_device(self.device)
        network = resolve_source(self.source_module, self.source_weights)
        if is_torch_dataset(X):
            return self._validate_dataset_input(network, X, y, sample_weight)
        return validate_array_input(self, network, X, y, sample_weight)

    def _validate_dataset_input(self, network, dataset, y, sample_weight):
        if y is not None:
            raise ValueError(
                "X is a torch Dataset, whose samples carry their targets as "
                "(x, y) pairs: pass fit(dataset, None), without y."
            )
        if len(dataset) == 0:
            raise ValueError("The Dataset given as X holds no samples.")
        targets = dataset_targets(dataset)
        self._check_targets(targets)
        sample = torch.as_tensor(np.asarray(inputs_of(dataset[0])))
        sample_weight = check_sample_weight(sample_weight, np.empty((len(dataset), 1)))
        y_encoded = set_targets(self, targets)
        self.n_features_in_ = int(sample.shape[0]) if sample.ndim else 1
        self.__dict__.pop("feature_names_in_", None)
        input_dtype = torch.long if reads_integers(network) else network_dtype(network)
        return FitInput(
            network,
            dataset,
            None,
            y_encoded,
            sample_weight,
            input_dtype,
            tuple(sample.shape),
        )

    def _probe_sample(self, fit_input):
        X = fit_input.X
        if isinstance(X, np.ndarray):
            return torch.tensor(X[:1], dtype=fit_input.input_dtype)
        sample = torch.as_tensor(np.asarray(inputs_of(X[0])))
        return sample.unsqueeze(0).to(fit_input.input_dtype)

    def _training_data(self, fit_input):
        """Every row of the fit, on the device: tensors, or the Dataset."""
        if not isinstance(fit_input.X, np.ndarray):
            return LabelledDataset(
                fit_input.X,
                fit_input.y_encoded,
                fit_input.sample_weight,
                device=self.device,
            )
        # One copy per fit, on the training device: batches are slices of it,
        # and the user's X is never shared with the network.
        return InMemoryDataset(
            torch.tensor(fit_input.X, dtype=fit_input.input_dtype, device=self.device),
            torch.tensor(fit_input.y_encoded, device=self.device),
            torch.tensor(fit_input.sample_weight, device=self.device),
        )

    def _split_validation(self, y_encoded, seed):
        n_samples = y_encoded.shape[0]
        if not getattr(self, "early_stopping", False):
            return np.arange(n_samples), None
        stratify = y_encoded if self._stratify_validation(y_encoded) else None
        if stratify is not None:
            check_validation_split(
                n_samples, self.validation_fraction, np.unique(y_encoded).shape[0]
            )
        else:
            check_validation_split(n_samples, self.validation_fraction)
        return train_test_split(
            np.arange(n_samples),
            test_size=self.validation_fraction,
            random_state=seed,
            stratify=stratify,
        )

    def _stratify_validation(self, y_encoded):
        return False

    # --- networks without training -----------------------------------------

    def _prediction_net(self, module):
        """A net that predicts with ``module``; nothing about it is trained."""
        net = TransferNet(
            module,
            criterion=self._criterion(),
            optimizer=torch.optim.SGD,
            lr=0.0,
            max_epochs=1,
            batch_size=self.batch_size,
            device=self.device,
            train_split=None,
            verbose=0,
            callbacks__print_log=None,
            callbacks__train_loss=None,
            callbacks__valid_loss=None,
        )
        net.initialize()
        return net

    def _rebuild(self, source_network, probe, history):
        """The fitted network's architecture and a net for it (load_fitted).

        Called on an estimator whose fitted attributes are set; builds what
        ``fit`` built, untrained: the caller loads the weights.
        """
        module = self._plan(source_network, probe, None).module
        net = self._prediction_net(module.to(self.device))
        net.history = History(history or [])
        self.net_ = net
        self.module_ = net.module_
        self.history_ = net.history
        return module

    # --- prediction --------------------------------------------------------

    def _predict_outputs(self, X, reduce=None):
        check_is_fitted(self)
        if is_torch_dataset(X):
            return self._predict_dataset_outputs(X, reduce)
        check_no_text(X, getattr(self.module_, "body", self.module_))
        check_object_values(X)
        check_token_width(
            X,
            getattr(self.module_, "body", None),
            self.n_features_in_,
            type(self).__name__,
        )
        fitted_on = (
            f"{type(self).__name__} was fitted on samples of shape {self._sample_shape}"
        )
        # Before validate_data, whose message would count the channels of
        # an image as its "features" (1-D X gets its "Reshape your data").
        ndim = getattr(X, "ndim", 0)
        if ndim >= 2 and ndim != len(self._sample_shape) + 1:
            raise ValueError(f"X has samples of shape {X.shape[1:]}, but {fitted_on}.")
        X = validate_data(
            self,
            X,
            reset=False,
            dtype=None if self._input_dtype == torch.long else "numeric",
            allow_nd=True,
            ensure_all_finite=True,
        )
        check_input_values(
            X, self.module_, feature_names=getattr(self, "feature_names_in_", None)
        )
        if X.ndim != len(self._sample_shape) + 1:
            raise ValueError(f"X has samples of shape {X.shape[1:]}, but {fitted_on}.")
        # Never NaN probabilities or labels argmax'ed from NaN, silently.
        reduce = check_finite_outputs(X, reduce, self.module_)
        try:
            return self.net_.predict_outputs(X, self._input_dtype, reduce)
        except (RuntimeError, ValueError, TypeError) as exc:
            if X.shape[1:] == self._sample_shape:
                raise
            # Networks with adaptive pooling take other image sizes; the others
            # fail deep inside torch, with a message that does not name X.
            raise ValueError(
                f"The fitted network could not process samples of shape "
                f"{X.shape[1:]} ({fitted_on}): {exc}"
            ) from exc

    def _predict_dataset_outputs(self, dataset, reduce):
        inputs = dataset_inputs(dataset, self._input_dtype)
        sample = torch.as_tensor(np.asarray(inputs_of(dataset[0])))
        if tuple(sample.shape) != tuple(self._sample_shape):
            raise ValueError(
                f"The Dataset's samples have shape {tuple(sample.shape)}, but "
                f"{type(self).__name__} was fitted on samples of shape "
                f"{tuple(self._sample_shape)}."
            )
        return self.net_.predict_outputs(
            inputs, self._input_dtype, check_finite_outputs(None, reduce, self.module_)
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags


class NetworkEstimator(SourceNetworkEstimator):
    """A :class:`SourceNetworkEstimator` that trains its network.

    Knows the training settings, seeding, early stopping and the skorch
    passthrough (``callbacks``, ``net_params``, ``augmentation``); the
    strategy (``_plan``) decides what to train.
    """

    _parameter_constraints = dict(TRAINING_CONSTRAINTS)
    _trains = True

    def set_params(self, **params):
        """Set parameters; ``net_params__<name>`` sets one entry of ``net_params``.

        So that a grid search can vary one skorch option, e.g.
        ``{"net_params__iterator_train__num_workers": [0, 2]}``.
        """
        prefix = "net_params__"
        routed = {
            k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)
        }
        if routed:
            params = {k: v for k, v in params.items() if not k.startswith(prefix)}
            params["net_params"] = {**(self.net_params or {}), **routed}
        return super().set_params(**params)

    def _train(self, plan, probe, train_data, valid_data, seed, after_training):
        """Train ``plan`` through the engine; the trained net."""
        check_something_trains(
            plan.module,
            getattr(self, "freeze", None),
            plan.freeze_prefixes,
            plan.unfreeze_at,
        )
        check_batch_norm_batches(plan.module, probe, len(train_data), self.batch_size)
        plan.module.to(self.device)
        start_weights = (
            snapshot_weights(plan.module)
            if after_training is not None or plan.interpolation < 1
            else None
        )
        steps_per_epoch = plan.steps_per_epoch or count_batches(
            train_data, self.batch_size
        )
        net = build_net(
            plan,
            self,
            seed=seed,
            max_epochs=epochs_for(self.max_epochs, steps_per_epoch),
            task=self._task,
            validation_data=valid_data,
        )
        try:
            net.fit(train_data, None)
        finally:
            # Cached source quantities and the reference network are not
            # needed to predict.
            net.drop_training_parts()
        if not net.training_completed():
            # skorch ended training quietly on the user's Ctrl-C.
            raise KeyboardInterrupt
        if plan.interpolation < 1:
            interpolate_weights(net.module_, start_weights, plan.interpolation)
        if after_training is not None:
            after_training(net.module_, start_weights)
        return net


def _shape_of(X):
    if isinstance(X, np.ndarray):
        return X.shape
    return (len(X), *np.asarray(inputs_of(X[0])).shape)

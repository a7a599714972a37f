"""Front-end machinery shared by every estimator that trains a network.

An estimator here validates X and y, builds ``body + head`` from the source
network, hands it to the training engine, and predicts with the result.
Classification and regression differ only in how targets are encoded and
which loss is used; those live in the two small mixins at the bottom.
"""

import os
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from ._base import SourceModuleMixin, rolled_back_on_failure
from ._dry_run import check_input_fits_network
from ._engine import (
    BodyHeadModule,
    InMemoryDataset,
    TrainingInterrupted,
    build_net,
    count_batches,
    draw_seed,
    epochs_for,
    seeded,
)
from ._frozen_pass import FrozenSourceOutputs
from ._head_choice import (
    HeadDecision,
    classification_evidence,
    regression_evidence,
)
from ._linear_probe import fit_linear_probe
from ._saved_attributes import (
    FEATURE_NAMES,
    LABELS,
    SHAPE,
    TEXT,
    TORCH_DTYPE,
    count,
    one_of,
)
from ._source import resolve_source, split_body_head
from ._source_classes import select_head_rows
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
    "TRAINING_CONSTRAINTS",
    "BaseNetworkEstimator",
    "ClassifierTargetsMixin",
    "RegressorTargetsMixin",
    "check_numeric_targets",
    "encode_class_labels",
    "logits_head",
    "new_head",
]


# The source and the training settings: what every network estimator takes,
# whatever it builds from the source (fine-tuning adds the head and freezing
# parameters; distillation, fusion and joint training their own).
TRAINING_CONSTRAINTS = {
    "source_module": "no_validation",
    "source_weights": [str, os.PathLike, None],
    "max_epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    "lr": [Interval(Real, 0, None, closed="neither")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "optimizer": [callable],
    "optimizer_kwargs": [dict, None],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "device": [str, torch.device],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}


class BaseNetworkEstimator(SourceModuleMixin, BaseEstimator):
    """Fit ``head(body(x))`` built from the source network, through the engine.

    Subclasses provide the target handling (a mixin below) and may add a
    penalty by overriding :meth:`_make_penalty`.
    """

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

    _parameter_constraints = {
        **TRAINING_CONSTRAINTS,
        "head": [StrOptions({"auto", "reuse", "new"})],
        "freeze": [str, list, tuple, None],
        "unfreeze_at": [Interval(Integral, 1, None, closed="left"), None],
        "body_lr_ratio": [Interval(Real, 0, None, closed="left")],
        "reinitialize": ["boolean"],
        "head_init": [StrOptions({"linear_probe", "random"})],
        "interpolation": [Interval(Real, 0, 1, closed="both")],
    }

    # Attributes that _build_module sets for the rest of one fit only (e.g.
    # for _make_penalty), removed when the fit ends: they are not fitted
    # attributes, so they never reach a pickle or save_fitted's files.
    #
    # _head_rows: the rows of the source head a reused head keeps (see
    # _source_rows), for a penalty that compares with the source.
    _fit_scratch = ("_head_rows",)

    def _source_reference(self, source_network):
        """A pristine copy of the source network for the penalty, or None.

        Called before the source network is split into body and head.
        """
        return None

    def _source_rows(self, head_name, source_width, source_shape):
        """The source head's outputs that score the target's, by label.

        Returns ``(rows, missing)``: ``rows`` lists, in ``classes_`` order,
        the outputs a reused head keeps (None: every output, matched by
        position); ``missing`` the target classes the source head has no
        output for. The default matches by position; a classifier with
        ``source_classes`` (:class:`SourceClassesMixin`) matches by label.
        """
        return None, []

    def _make_penalty(self, source_reference, train_data, module, **fit_data):
        """The engine's penalty, or None (plain fine-tuning).

        Returns an object with ``__call__`` (see :class:`TransferNet`) and
        ``release()``, called once training has ended. ``fit_data`` holds the
        extra data a subclass's ``fit`` accepts (e.g. source data).
        """
        return None

    def _freeze_schedule(self, module):
        """``(freeze_prefixes, unfreeze_at, lr_groups)`` for the engine."""
        if self.unfreeze_at is not None and not self.freeze:
            raise ValueError(
                f"unfreeze_at={self.unfreeze_at} needs something to unfreeze; "
                "set freeze as well (e.g. freeze='body')."
            )
        lr_groups = (
            [(["body"], self.lr * self.body_lr_ratio)]
            if self.body_lr_ratio != 1
            else []
        )
        return _check_prefixes(module, self.freeze), self.unfreeze_at, lr_groups

    def _engine_options(self, train_data, penalty):
        """Extra keyword arguments of :func:`build_net` (default: none)."""
        return {}

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fine-tune the network on (X, y).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, ...)
            Inputs the source network accepts: 2-D tabular data, or n-D data
            such as images ``(n_samples, channels, height, width)``.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target labels (classifier) or values (regressor).
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights of the loss; None weighs every sample equally.

        Returns
        -------
        self : object
        """
        return self._fit_guarded(X, y, sample_weight)

    def _fit_guarded(self, X, y, sample_weight, **fit_data):
        try:
            with rolled_back_on_failure(self):
                return self._fit(X, y, sample_weight, **fit_data)
        except TrainingInterrupted as exc:
            raise KeyboardInterrupt from exc.__cause__
        finally:
            self._drop_fit_scratch()

    def _drop_fit_scratch(self):
        for name in self._fit_scratch:
            self.__dict__.pop(name, None)

    def _rebuild_module(self, source_network, probe):
        """The fitted network's architecture, untrained, for :func:`load_fitted`.

        Called on an estimator whose fitted attributes (``classes_``,
        ``head_choice_``, …) are already set; builds what ``fit`` built.
        """
        try:
            return self._build_module(source_network, probe)
        finally:
            self._drop_fit_scratch()

    def _fit(
        self,
        X,
        y,
        sample_weight,
        frozen_outputs=None,
        keep_start_weights=False,
        **fit_data,
    ):
        # frozen_outputs: the frozen source's FrozenSourceOutputs on every row
        # of X, when the caller computed them already (AutoTransfer* shares
        # one pass between its candidates). keep_start_weights: keep the
        # weights training started from in _start_weights, for a caller that
        # interpolates them itself (AutoTransfer*'s WiSE-FT candidates).
        source_network, X, y_encoded, sample_weight, input_dtype = (
            self._validate_fit_input(X, y, sample_weight)
        )
        seed = draw_seed(self.random_state)
        with seeded(seed, self.device):
            # A dry pass decides whether X fits the whole network, and gives
            # lazy layers their (seeded) weights before anything is copied.
            probe = torch.tensor(X[:1], dtype=input_dtype)
            check_input_fits_network(source_network, probe.clone(), X_shape=X.shape)
            source_reference = self._source_reference(source_network)
            train_index, valid_index = self._split_validation(y_encoded, seed)
            training_rows = _TrainingRows(
                X,
                y_encoded,
                sample_weight,
                None if valid_index is None else train_index,
                input_dtype=input_dtype,
                batch_size=max(self.batch_size, 256),
                device=self.device,
                frozen=frozen_outputs,
            )
            module = self._build_module(source_network, probe, training_rows)
            del training_rows
            # Before any training work: refuses a bad freeze schedule.
            schedule = self._freeze_schedule(module)
            check_something_trains(module, getattr(self, "freeze", None), *schedule[:2])
            check_batch_norm_batches(module, probe, len(train_index), self.batch_size)
            # One copy per fit, on the training device: batches are slices of
            # it, and the user's X is never shared with the network.
            X_all = torch.tensor(X, dtype=input_dtype, device=self.device)
            y_all = torch.tensor(y_encoded, device=self.device)
            w_all = torch.tensor(sample_weight, device=self.device)
            train_data = _subset(X_all, y_all, w_all, train_index)
            valid_data = (
                None
                if valid_index is None
                else _subset(X_all, y_all, w_all, valid_index)
            )
            module.to(self.device)
            interpolation = self._interpolation()
            start_weights = (
                snapshot_weights(module)
                if keep_start_weights or interpolation < 1
                else None
            )
            penalty = self._make_penalty(
                source_reference, train_data, module, **fit_data
            )
            engine_options = self._engine_options(train_data, penalty)
            steps_per_epoch = engine_options.get(
                "steps_per_epoch", count_batches(train_data, self.batch_size)
            )
            net = self._new_net(
                module,
                seed=seed,
                schedule=schedule,
                validation_data=valid_data,
                penalty=penalty,
                engine_options=engine_options,
                max_epochs=epochs_for(self.max_epochs, steps_per_epoch),
            )
            try:
                net.fit(train_data, None)
            finally:
                if penalty is not None:
                    penalty.release()
                    # Cached source quantities are not needed to predict.
                    net.penalty = None
            if interpolation < 1:
                interpolate_weights(net.module_, start_weights, interpolation)
        self.net_ = net
        self.module_ = net.module_
        self.history_ = net.history
        self.n_iter_ = len(net.history)
        self._input_dtype = input_dtype
        self._sample_shape = X.shape[1:]
        if keep_start_weights:
            self._start_weights = start_weights
        return self

    def _validate_fit_input(self, X, y, sample_weight):
        """Resolve the source network and check (X, y, sample_weight) against it.

        Returns ``(source_network, X, y_encoded, sample_weight, input_dtype)``:
        a private copy of the source, X as a numpy array, the encoded targets
        (``classes_`` or ``n_outputs_`` set), float32 weights, and the dtype
        of the tensors the network reads. Whether X fits the network is
        decided afterwards, by a dry forward pass.
        """
        check_device(self.device)
        source_network = resolve_source(self.source_module, self.source_weights)
        check_no_text(X, source_network)
        check_object_values(X)
        integer_input = reads_integers(source_network)
        self._check_targets(y)
        X, y = validate_data(
            self,
            X,
            y,
            dtype=None if integer_input else "numeric",
            allow_nd=True,
            ensure_all_finite=True,
            **self._y_validation_params(),
        )
        check_input_values(
            X, source_network, feature_names=getattr(self, "feature_names_in_", None)
        )
        sample_weight = check_sample_weight(sample_weight, X)
        y_encoded = self._encode_targets(y)
        if getattr(self, "early_stopping", False):
            stratified = self._stratify_validation(y_encoded)
            n_classes = np.unique(y_encoded).shape[0] if stratified else None
            check_validation_split(X.shape[0], self.validation_fraction, n_classes)
        input_dtype = torch.long if integer_input else network_dtype(source_network)
        X = positive_strides(X)
        return source_network, X, y_encoded, sample_weight, input_dtype

    def _interpolation(self):
        """WiSE-FT's weight of the fine-tuned weights (1: keep them as they are)."""
        if self.reinitialize:
            # Training started from random weights: nothing worth keeping.
            return 1.0
        return self.interpolation

    def _new_net(
        self,
        module,
        *,
        seed,
        schedule=None,
        validation_data=None,
        penalty=None,
        engine_options=None,
        max_epochs=1,
    ):
        """The engine's net for ``module``, configured from the parameters.

        ``schedule`` is ``_freeze_schedule(module)`` when already computed;
        ``max_epochs`` is resolved from the parameter by the caller (a rebuilt
        network for :func:`load_fitted` is not trained).
        """
        if schedule is None:
            schedule = self._freeze_schedule(module)
        freeze_prefixes, unfreeze_at, lr_groups = schedule
        return build_net(
            module,
            criterion=self._criterion(),
            optimizer=self.optimizer,
            optimizer_kwargs=self.optimizer_kwargs,
            lr=self.lr,
            max_epochs=max_epochs,
            batch_size=self.batch_size,
            device=self.device,
            verbose=self.verbose,
            seed=seed,
            freeze_prefixes=freeze_prefixes,
            unfreeze_at=unfreeze_at,
            lr_groups=lr_groups,
            validation_data=validation_data,
            n_iter_no_change=self.n_iter_no_change,
            penalty=penalty,
            **(engine_options or {}),
        )

    def _build_module(self, source_network, probe, training_rows=None):
        """``head(body(x))`` from the source network, ready to train.

        ``training_rows`` (a :class:`_TrainingRows`) holds the rows training
        fits on: they decide ``head="auto"`` and train a new head's linear
        probe. None when :func:`load_fitted` rebuilds a fitted estimator, whose
        ``head_choice_`` is already known.
        """
        body, source_head, head_name = split_body_head(source_network)
        features = _probe(body, probe.clone())
        n_outputs = self._n_outputs()
        if head_name is None:
            source_width, source_shape = None, None
        else:
            source_width, source_shape = _output_width(source_head, features)
        source_logits_head = logits_head(source_head)
        if training_rows is None:
            decision = self._saved_head_decision(head_name, source_width, source_shape)
        else:
            decision = self._decide_head(
                head_name,
                source_width,
                source_shape,
                lambda: training_rows.frozen_outputs(body, source_logits_head),
                training_rows,
            )
        self.head_choice_ = "reuse" if decision.reuse else "new"
        self.head_choice_reason_ = decision.reason
        self._head_rows = decision.rows if decision.reuse else None
        if decision.reuse:
            head = source_logits_head
            if decision.rows is not None:
                head = select_head_rows(head, decision.rows, head_name)
        else:
            head = new_head(features, n_outputs, network_dtype(body))
        module = BodyHeadModule(body, head)
        outputs = _probe(module, probe.clone())
        if tuple(outputs.shape) != (1, n_outputs):
            raise ValueError(
                f"The network gives outputs of shape {tuple(outputs.shape[1:])} "
                f"per sample, but the target needs {n_outputs} "
                f"({self._output_description()}). Check the shape of X "
                f"(samples of shape {tuple(probe.shape[1:])}) against what the "
                "source network reads."
            )
        if self.reinitialize:
            _reinitialize(module)
        elif (
            not decision.reuse
            and self.head_init == "linear_probe"
            and training_rows is not None
        ):
            frozen = training_rows.frozen_outputs(body, source_logits_head)
            fit_linear_probe(
                head,
                frozen.features,
                training_rows.y,
                training_rows.sample_weight,
                self._task,
            )
        module.train()
        return module

    def _decide_head(
        self, head_name, source_width, source_shape, frozen_outputs, training_rows
    ):
        """The :class:`HeadDecision` of ``head`` for this fit.

        ``frozen_outputs()`` returns the frozen source's outputs on the
        training rows (computed on first call): ``head="auto"`` reads them
        only when nothing else decides.
        """
        n_outputs = self._n_outputs()
        # First: it refuses source_classes that do not fit the source head.
        rows, missing = self._source_rows(head_name, source_width, source_shape)
        if head_name is None:
            # A headless source (a text encoder, a timm model made with
            # num_classes=0) gives features only: there is nothing to reuse.
            if self.head == "reuse":
                raise ValueError(
                    "head='reuse' needs the source network's head, but it has "
                    "none (its output is a feature vector). Use head='new' or "
                    "'auto'."
                )
            return HeadDecision(
                False, None, "the source network has no head (it gives features)"
            )
        width_described = (
            f"has {source_width} outputs"
            if source_width is not None
            else f"gives outputs of shape {source_shape} per sample"
        )
        if self.head == "reuse":
            if missing:
                raise ValueError(
                    f"head='reuse' keeps the source head {head_name!r}, but "
                    f"source_classes has no output for the classes {missing} of "
                    "y. Use head='new' or 'auto'."
                )
            if rows is None and source_width != n_outputs:
                raise ValueError(
                    f"head='reuse' keeps the source head {head_name!r}, which "
                    f"{width_described}, but the target needs {n_outputs} "
                    f"({self._output_description()}). Use head='new' or 'auto'."
                )
            return HeadDecision(True, rows, "head='reuse' was asked for")
        if self.head == "new":
            return HeadDecision(False, None, "head='new' was asked for")
        if missing:
            return HeadDecision(
                False,
                None,
                f"source_classes has no output for the classes {missing} of y",
            )
        if getattr(self, "source_classes", None) is not None:
            return HeadDecision(
                True, rows, "source_classes names an output for every class of y"
            )
        if source_width != n_outputs:
            return HeadDecision(
                False,
                None,
                f"the source head {width_described}, but the target needs "
                f"{n_outputs} ({self._output_description()})",
            )
        if self.reinitialize:
            # Fresh weights either way: the choice only sets the architecture.
            return HeadDecision(
                True, None, "reinitialize=True and the source head's width fits"
            )
        outputs = frozen_outputs().outputs
        if outputs is None:
            return HeadDecision(
                False, None, "the source head gives no vector of scores per sample"
            )
        agrees, _, description = self._head_evidence(outputs, training_rows.y)
        if agrees:
            return HeadDecision(True, None, f"reused: {description}")
        return HeadDecision(False, None, f"not reused: {description}")

    def _saved_head_decision(self, head_name, source_width, source_shape):
        """The decision a fitted estimator took, for :func:`load_fitted`."""
        reuse = self.head_choice_ == "reuse"
        rows = (
            self._source_rows(head_name, source_width, source_shape)[0]
            if reuse
            else None
        )
        return HeadDecision(reuse, rows, getattr(self, "head_choice_reason_", ""))

    def _split_validation(self, y_encoded, seed):
        n_samples = y_encoded.shape[0]
        if not self.early_stopping:
            return np.arange(n_samples), None
        stratify = y_encoded if self._stratify_validation(y_encoded) else None
        return train_test_split(
            np.arange(n_samples),
            test_size=self.validation_fraction,
            random_state=seed,
            stratify=stratify,
        )

    def _stratify_validation(self, y_encoded):
        return False

    def _predict_outputs(self, X, reduce=None):
        check_is_fitted(self)
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags


class ClassifierTargetsMixin:
    """Labels of any type → ``classes_`` and integer codes; softmax outputs."""

    _task = "classification"
    _saved_attributes = {"classes_": LABELS}

    def _head_evidence(self, source_outputs, y_encoded):
        return classification_evidence(
            source_outputs, y_encoded, self.classes_.shape[0]
        )

    def _y_validation_params(self):
        return {}

    def _check_targets(self, y):
        pass

    def _encode_targets(self, y):
        self.classes_, y_encoded = encode_class_labels(self, y)
        return y_encoded

    def _n_outputs(self):
        return self.classes_.shape[0]

    def _output_description(self):
        return f"one per class of {self.classes_.tolist()}"

    def _criterion(self):
        return nn.CrossEntropyLoss(reduction="none")

    def _stratify_validation(self, y_encoded):
        return np.bincount(y_encoded).min() >= 2

    def predict_proba(self, X):
        """Class probabilities: the softmax of the network's outputs.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``; rows sum to 1.
        """
        logits = torch.from_numpy(self._predict_outputs(X)).double()
        return torch.softmax(logits, dim=1).numpy()

    def predict(self, X):
        """Predict the class of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        # The argmax per batch: the scores of all rows are never held at once.
        best = self._predict_outputs(X, reduce=lambda scores: scores.argmax(dim=1))
        return self.classes_[best]


class RegressorTargetsMixin:
    """Real-valued targets, one or several outputs; mean squared error."""

    _task = "regression"
    _saved_attributes = {"n_outputs_": count(1), "_y_ndim": one_of(1, 2)}

    def _head_evidence(self, source_outputs, y_encoded):
        return regression_evidence(source_outputs, y_encoded)

    def _y_validation_params(self):
        return {"multi_output": True, "y_numeric": True}

    def _check_targets(self, y):
        check_numeric_targets(self, y)

    def _encode_targets(self, y):
        self._y_ndim = y.ndim
        self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
        return y.reshape(y.shape[0], -1).astype(np.float32)

    def _n_outputs(self):
        return self.n_outputs_

    def _output_description(self):
        return "one per target column"

    def _criterion(self):
        return nn.MSELoss(reduction="none")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def predict(self, X):
        """Predict target values.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        outputs = self._predict_outputs(X).astype(np.float64)
        return outputs.ravel() if self._y_ndim == 1 else outputs


def encode_class_labels(estimator, y):
    """``(classes, codes)`` of class labels of any one type; clear refusals."""
    try:
        check_classification_targets(y)
        classes, y_encoded = np.unique(y, return_inverse=True)
    except TypeError as exc:
        kinds = sorted({type(label).__name__ for label in y})
        if len(kinds) < 2:
            raise
        raise TypeError(
            f"y mixes labels of types {kinds}, which cannot be ordered; "
            "labels must be all strings or all numbers (e.g. y.astype(str))."
        ) from exc
    if classes.shape[0] < 2:
        raise ValueError(
            f"{type(estimator).__name__} needs samples of at least 2 classes; "
            f"y holds only one class: {classes[0].item()!r}."
        )
    return classes, y_encoded.astype(np.int64)


def check_numeric_targets(estimator, y):
    """Refuse non-numeric regression targets, naming the remedy."""
    # validate_data would only say "could not convert string to float".
    labels = np.asarray(y)
    if labels.dtype.kind in "OSU":
        try:
            labels.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{type(estimator).__name__} needs numeric targets, but y holds "
                f"non-numeric values: {exc}. For class labels, use a "
                "classifier."
            ) from exc


class _TrainingRows:
    """The rows a fit trains on, and the frozen source's outputs on them.

    ``frozen_outputs`` runs the frozen source once, on first call, and every
    later call (the head decision, the linear probe) reuses that pass.

    Parameters
    ----------
    X, y, sample_weight : ndarray
        Every row of the fit, validated and encoded.
    index : ndarray or None
        The training rows among them (None: all of them; the others are held
        out for early stopping).
    frozen : FrozenSourceOutputs or None
        Precomputed outputs on every row of ``X``.
    """

    def __init__(
        self, X, y, sample_weight, index, *, input_dtype, batch_size, device, frozen
    ):
        self.X = X if index is None else X[index]
        self.y = y if index is None else y[index]
        self.sample_weight = sample_weight if index is None else sample_weight[index]
        self._input_dtype = input_dtype
        self._batch_size = batch_size
        self._device = device
        if frozen is not None and index is not None:
            frozen = frozen.take(index)
        self._frozen = frozen

    def frozen_outputs(self, body, head):
        if self._frozen is None:
            self._frozen = FrozenSourceOutputs.compute(
                body,
                head,
                self.X,
                input_dtype=self._input_dtype,
                batch_size=self._batch_size,
                device=self._device,
            )
        return self._frozen


def new_head(features, n_outputs, dtype):
    """A freshly initialised linear layer reading ``features`` (flattened)."""
    head = nn.Linear(features[0].numel(), n_outputs)
    if features.ndim > 2:
        head = nn.Sequential(nn.Flatten(), head)
    return head.to(dtype)


def _subset(X, y, sample_weight, index):
    index = torch.as_tensor(index, device=X.device)
    return InMemoryDataset(X[index], y[index], sample_weight[index])


def _probe(body, probe):
    was_training = body.training
    body.eval()
    try:
        with torch.no_grad():
            features = body(probe)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(
            "The source network could not process samples of shape "
            f"{tuple(probe.shape[1:])}: {exc}"
        ) from exc
    finally:
        body.train(was_training)
    if isinstance(features, (tuple, list)):
        raise ValueError(
            "The body of the source network returns a "
            f"{type(features).__name__}; a tensor of features is needed."
        )
    return features


def logits_head(head):
    # Cross-entropy and predict_proba take logits: log-probabilities are
    # logits of the same distribution, so a trailing Softmax becomes LogSoftmax.
    if isinstance(head, nn.Sequential) and isinstance(head[-1], nn.Softmax):
        return nn.Sequential(*head[:-1], nn.LogSoftmax(dim=head[-1].dim))
    return head


def _output_width(head, features):
    """Outputs per sample of ``head``: (width or None, shape of one sample)."""
    was_training = head.training
    head.eval()
    try:
        with torch.no_grad():
            outputs = head(features)
    except (RuntimeError, ValueError, TypeError):
        outputs = None
    finally:
        head.train(was_training)
    if isinstance(outputs, torch.Tensor):
        shape = tuple(outputs.shape[1:])
        # More than one value per output (e.g. a linear head applied along the
        # last axis of 3-D features): the head cannot be reused as it is.
        return (shape[0] if len(shape) == 1 else None), shape
    width = _declared_width(head)
    return width, (width,)


def _declared_width(head):
    linear_layers = [m for m in head.modules() if isinstance(m, nn.Linear)]
    return linear_layers[-1].out_features if linear_layers else None


def _check_prefixes(module, freeze):
    if freeze is None:
        return []
    prefixes = [freeze] if isinstance(freeze, str) else list(freeze)
    names = [name for name, _ in module.named_parameters()]
    for prefix in prefixes:
        if not any(name == prefix or name.startswith(prefix + ".") for name in names):
            shown = sorted({name.rsplit(".", 1)[0] for name in names})
            raise ValueError(
                f"freeze={prefix!r} matches no parameter of the network. Names "
                "start with 'body.' (the source network without its head) or "
                f"'head.'; modules with parameters: {shown[:20]}."
            )
    return prefixes


def _reinitialize(module):
    """Fresh weights everywhere, for structure transfer (the baseline)."""
    kept = []
    for name, submodule in module.named_modules():
        own = [p for p, _ in submodule.named_parameters(recurse=False)]
        if hasattr(submodule, "reset_parameters"):
            submodule.reset_parameters()
        elif own:
            kept.extend(f"{name}.{p}" for p in own)
    if kept:
        warnings.warn(
            "reinitialize=True could not reset these parameters, whose modules "
            f"have no reset_parameters(); they keep the source weights: {kept}",
            UserWarning,
            stacklevel=3,
        )

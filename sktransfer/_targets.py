"""Targets: class labels or real values, and what each means for a network.

Classification and regression differ only in how targets are encoded, which
loss is used, how outputs become predictions and how a source head's
predictions are weighed as evidence: the two mixins here hold all of it, for
every estimator that trains or runs a network.
"""

import numpy as np
import torch
from sklearn.utils import check_array
from sklearn.utils.multiclass import check_classification_targets
from torch import nn

from ._head_choice import classification_evidence, regression_evidence
from ._saved_attributes import LABELS, count, one_of

__all__ = [
    "ClassifierTargetsMixin",
    "RegressorTargetsMixin",
    "check_numeric_targets",
    "encode_class_labels",
]


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
        """``(y_encoded, fitted attributes)``: integer codes and ``classes_``."""
        classes, y_encoded = encode_class_labels(self, y)
        return y_encoded, {"classes_": classes}

    def _encode_more_targets(self, y, n_rows, name):
        """``(labels, codes)`` of further labels, each one of ``classes_``."""
        y = _one_per_row(y, n_rows, name)
        if y.ndim == 2 and y.shape[1] == 1:  # a column, as y may be
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(
                f"{name} must hold one label per row; got shape {y.shape}."
            )
        known = np.isin(y, self.classes_)
        if not known.all():
            unknown = np.unique(y[~known]).tolist()
            raise ValueError(
                f"{name} holds the labels {unknown}, which y does not; "
                f"{type(self).__name__} predicts the classes of y "
                f"({self.classes_.tolist()}). Drop those rows or map their "
                "labels to those of y."
            )
        codes = np.searchsorted(self.classes_, y).astype(np.int64)
        return self.classes_[codes], codes

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
        """``(y_encoded, fitted attributes)``: one float32 column per output."""
        attributes = {"n_outputs_": 1 if y.ndim == 1 else y.shape[1], "_y_ndim": y.ndim}
        return y.reshape(y.shape[0], -1).astype(np.float32), attributes

    def _encode_more_targets(self, y, n_rows, name):
        """``(values, encoded)`` of further targets, with as many outputs."""
        check_numeric_targets(self, y)
        y = _one_per_row(y, n_rows, name, dtype="numeric")
        columns = y.reshape(n_rows, -1)
        if columns.shape[1] != self.n_outputs_:
            raise ValueError(
                f"{name} has shape {y.shape}, but y had {self.n_outputs_} "
                "output(s); they must match."
            )
        values = columns.ravel() if self._y_ndim == 1 else columns
        return values.astype(np.float64), columns.astype(np.float32)

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


def _one_per_row(y, n_rows, name, dtype=None):
    y = check_array(
        y, ensure_2d=False, dtype=dtype, ensure_all_finite=True, input_name=name
    )
    if y.ndim not in (1, 2) or y.shape[0] != n_rows:
        raise ValueError(
            f"{name} must hold one target per row of its X ({n_rows}); got "
            f"shape {y.shape}."
        )
    return y


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

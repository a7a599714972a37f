"""Self-training: confident predictions on unlabelled rows become labels."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    MetaEstimatorMixin,
    _fit_context,
    clone,
)
from sklearn.utils import _safe_indexing, check_array
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import (
    _check_sample_weight,
    _num_samples,
    check_is_fitted,
    has_fit_parameter,
)

from ._unlabeled import check_wrapped

__all__ = ["PseudoLabelingClassifier"]


def _frame_like(frame, X):
    """``X`` as a DataFrame with the columns of ``frame``."""
    if hasattr(X, "columns"):
        if list(X.columns) != list(frame.columns):
            raise ValueError(
                "UnlabeledData's X has columns unlike X's: "
                f"{list(X.columns)} instead of {list(frame.columns)}."
            )
        return X
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != frame.shape[1]:
        raise ValueError(
            f"UnlabeledData's X has shape {X.shape}; X is a DataFrame of "
            f"{frame.shape[1]} columns."
        )
    return type(frame)(X, columns=frame.columns)


def _stacked(X, rows):
    """X with ``rows`` (the same layout) appended."""
    if hasattr(X, "iloc"):
        import pandas as pd

        return pd.concat([X, rows], ignore_index=True)
    return np.concatenate([np.asarray(X), rows])


def _estimator_has(method):
    def check(self):
        if hasattr(self, "estimator_"):
            return hasattr(self.estimator_, method)
        return hasattr(self.estimator, method)

    return check


class PseudoLabelingClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Self-training of any classifier on unlabelled target rows.

    Fits ``estimator`` on the labelled rows, labels the unlabelled rows whose
    predicted probability reaches ``threshold`` with the predicted class, and
    fits a fresh clone on both; ``max_rounds`` times at most, or until no row
    is added. In the spirit of scikit-learn's ``SelfTrainingClassifier``, but
    the unlabelled rows come as ``unlabeled_data=UnlabeledData(X_target)``
    rather than as rows of X labelled ``-1``: cross-validation then scores
    on labelled rows only, labels of any type work, and ``sample_weight``
    keeps to the rows it belongs to.

    Pseudo-labels are the model's own guesses: they help when the classes
    are well separated in the target domain and the first model is mostly
    right on its confident rows, and they reinforce its mistakes otherwise.
    Raise ``threshold`` or lower ``pseudo_label_weight`` when in doubt, and
    compare with ``estimator`` alone.

    Parameters
    ----------
    estimator : classifier with ``predict_proba``
        Any classifier, e.g. :class:`FineTunedClassifier`; cloned for every
        round, never fitted itself.
    threshold : float in [0, 1], default=0.9
        Smallest predicted probability for an unlabelled row to be labelled.
    max_rounds : int, default=3
        Most rounds of labelling; 0 fits ``estimator`` on the labelled rows
        only.
    pseudo_label_weight : float, default=1.0
        Sample weight of a pseudo-labelled row, relative to a labelled row
        of weight 1.
    verbose : int, default=0
        Print how many rows each round labelled.

    Attributes
    ----------
    estimator_ : classifier
        The clone fitted last, on the labelled and pseudo-labelled rows.
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    n_features_in_ : int
        Number of features of X (when ``estimator`` records it).
    pseudo_labels_ : ndarray of shape (n_unlabeled_samples,)
        The label given to each unlabelled row (rows never labelled keep
        the label predicted last, see ``labeled_round_``); empty without
        ``unlabeled_data``.
    labeled_round_ : ndarray of int of shape (n_unlabeled_samples,)
        The round that labelled each unlabelled row; -1 for rows never
        confident enough.
    n_rounds_ : int
        Rounds run.
    termination_condition_ : {"max_rounds", "no_change", "all_labeled"}
        Why labelling stopped ("all_labeled" also without unlabelled rows).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sktransfer import PseudoLabelingClassifier, UnlabeledData
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 2))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> clf = PseudoLabelingClassifier(LogisticRegression(), threshold=0.8)
    >>> clf.fit(X[:10], y[:10], unlabeled_data=UnlabeledData(X[10:])).n_rounds_
    3
    >>> int((clf.labeled_round_ >= 0).sum())  # of 290 unlabelled rows
    223
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "predict_proba"])],
        "threshold": [Interval(Real, 0, 1, closed="both")],
        "max_rounds": [Interval(Integral, 0, None, closed="left")],
        "pseudo_label_weight": [Interval(Real, 0, None, closed="neither")],
        "verbose": ["verbose"],
    }

    # No other estimator consumes it: requested by default under routing.
    __metadata_request__fit = {"unlabeled_data": True}

    def __init__(
        self,
        estimator,
        *,
        threshold=0.9,
        max_rounds=3,
        pseudo_label_weight=1.0,
        verbose=0,
    ):
        self.estimator = estimator
        self.threshold = threshold
        self.max_rounds = max_rounds
        self.pseudo_label_weight = pseudo_label_weight
        self.verbose = verbose

    @_fit_context(
        # The estimator is validated when it is fitted.
        prefer_skip_nested_validation=False
    )
    def fit(self, X, y, sample_weight=None, unlabeled_data=None):
        """Fit on the labelled rows, then on the confident unlabelled ones too.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Labelled inputs.
        y : array-like of shape (n_samples,)
            Their labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the labelled rows.
        unlabeled_data : UnlabeledData, default=None
            Inputs without labels, shaped like X. Without them, this fits
            ``estimator`` on (X, y).

        Returns
        -------
        self : object
        """
        weighted = has_fit_parameter(self.estimator, "sample_weight")
        if not weighted and (
            sample_weight is not None or self.pseudo_label_weight != 1
        ):
            raise ValueError(
                f"{type(self.estimator).__name__}.fit takes no sample_weight, so "
                "neither sample_weight nor pseudo_label_weight != 1 can apply."
            )

        def fitted(X, y, sample_weight):
            weights = {"sample_weight": sample_weight} if weighted else {}
            return clone(self.estimator).fit(X, y, **weights)

        # The estimator validates X, y and the weights, with its own messages.
        estimator = fitted(X, y, sample_weight)
        # A column vector was accepted (with a warning) by the estimator.
        y = np.asarray(y)
        y = y.ravel() if y.ndim == 2 and y.shape[1] == 1 else y
        if weighted:
            sample_weight = _check_sample_weight(sample_weight, y)
        X_unlabeled = self._unlabeled_inputs(unlabeled_data, X)
        n_unlabeled = _num_samples(X_unlabeled)
        pseudo_labels = np.empty(n_unlabeled, dtype=y.dtype)
        labeled_round = np.full(n_unlabeled, -1)
        termination = "max_rounds"
        n_rounds = 0
        while n_rounds < self.max_rounds and (labeled_round < 0).any():
            n_rounds += 1
            probabilities = estimator.predict_proba(X_unlabeled)
            predicted = estimator.classes_[probabilities.argmax(axis=1)]
            waiting = labeled_round < 0
            pseudo_labels[waiting] = predicted[waiting]
            new = waiting & (probabilities.max(axis=1) >= self.threshold)
            if self.verbose:
                print(f"Round {n_rounds}: {int(new.sum())} rows pseudo-labelled.")
            if not new.any():
                termination = "no_change"
                break
            labeled_round[new] = n_rounds
            kept = labeled_round >= 0
            estimator = fitted(
                _stacked(X, _safe_indexing(X_unlabeled, np.flatnonzero(kept))),
                np.concatenate([y, pseudo_labels[kept]]),
                np.concatenate(
                    [sample_weight, np.full(kept.sum(), self.pseudo_label_weight)]
                )
                if weighted
                else None,
            )
        if (labeled_round >= 0).all():
            termination = "all_labeled"
        self.estimator_ = estimator
        self.classes_ = estimator.classes_
        if hasattr(estimator, "n_features_in_"):
            self.n_features_in_ = estimator.n_features_in_
        if hasattr(estimator, "feature_names_in_"):
            self.feature_names_in_ = estimator.feature_names_in_
        self.pseudo_labels_ = pseudo_labels
        self.labeled_round_ = labeled_round
        self.n_rounds_ = n_rounds
        self.termination_condition_ = termination
        return self

    def _unlabeled_inputs(self, unlabeled_data, X):
        """The unlabelled rows, in the layout of X (array or DataFrame)."""
        if unlabeled_data is None:
            return _safe_indexing(X, np.arange(0))
        check_wrapped(unlabeled_data)
        X_unlabeled = unlabeled_data.X
        if hasattr(X, "columns"):
            X_unlabeled = _frame_like(X, X_unlabeled)
        else:
            X_unlabeled = check_array(
                X_unlabeled,
                dtype=None,
                allow_nd=True,
                ensure_all_finite=False,
                input_name="UnlabeledData's X",
            )
            if X_unlabeled.shape[1:] != np.shape(X)[1:]:
                raise ValueError(
                    "UnlabeledData's X has samples of shape "
                    f"{X_unlabeled.shape[1:]}, X of shape {np.shape(X)[1:]}; both "
                    "feed the same estimator."
                )
        return X_unlabeled

    def predict(self, X):
        """The predicted class of each row of X."""
        check_is_fitted(self)
        return self.estimator_.predict(X)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of each row of X, in the order of ``classes_``."""
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    @available_if(_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`."""
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        """The fitted estimator's decision function on X."""
        check_is_fitted(self)
        return self.estimator_.decision_function(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = self.estimator.__sklearn_tags__()
        tags.input_tags = inner.input_tags
        return tags

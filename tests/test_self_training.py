"""PseudoLabelingClassifier: confident predictions on unlabelled rows become labels.

What a user relies on: only rows at or above ``threshold`` are labelled, with
the class the model of that round predicted; labelled rows stay labelled;
``max_rounds=0`` is the estimator alone; pseudo-labelled rows carry
``pseudo_label_weight``; the unlabelled rows reach every fit whole under
cross-validation; labels of any type work; the estimator passed is never
fitted.
"""

import numpy as np
import pytest
import sklearn
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from sktransfer import (
    FineTunedClassifier,
    PseudoLabelingClassifier,
    UnlabeledData,
)

X_ALL, Y_ALL = make_blobs(n_samples=400, centers=3, cluster_std=1.5, random_state=0)
LABELLED = np.concatenate([np.flatnonzero(c == Y_ALL)[:4] for c in range(3)])
UNLABELLED = np.setdiff1d(np.arange(400), LABELLED)
X, Y = X_ALL[LABELLED], Y_ALL[LABELLED]
X_UNLABELLED = X_ALL[UNLABELLED]


class RecordingClassifier(ClassifierMixin, BaseEstimator):
    """LogisticRegression that records the rows and weights of every fit."""

    fits = []

    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y, sample_weight=None):
        RecordingClassifier.fits.append((len(X), sample_weight))
        self.model_ = LogisticRegression(C=self.C).fit(X, y, sample_weight)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)

    def predict(self, X):
        return self.model_.predict(X)


@pytest.fixture
def recorded():
    RecordingClassifier.fits = []
    yield RecordingClassifier.fits
    RecordingClassifier.fits = []


def test_only_rows_at_the_threshold_are_labelled_with_the_rounds_prediction():
    clf = PseudoLabelingClassifier(LogisticRegression(), threshold=0.9, max_rounds=1)
    clf.fit(X, Y, unlabeled_data=UnlabeledData(X_UNLABELLED))

    first = LogisticRegression().fit(X, Y)
    probabilities = first.predict_proba(X_UNLABELLED)
    confident = probabilities.max(axis=1) >= 0.9
    assert 0 < confident.sum() < len(X_UNLABELLED)
    np.testing.assert_array_equal(clf.labeled_round_ == 1, confident)
    np.testing.assert_array_equal(
        clf.pseudo_labels_[confident], first.predict(X_UNLABELLED)[confident]
    )
    assert clf.n_rounds_ == 1
    assert clf.termination_condition_ == "max_rounds"


def test_labelled_rows_stay_labelled_and_rounds_add_rows():
    clf = PseudoLabelingClassifier(LogisticRegression(), threshold=0.8, max_rounds=4)
    clf.fit(X, Y, unlabeled_data=UnlabeledData(X_UNLABELLED))

    counts = [(clf.labeled_round_ == r).sum() for r in range(1, clf.n_rounds_ + 1)]
    assert all(count > 0 for count in counts[:-1])
    assert set(np.unique(clf.labeled_round_)) <= {-1, *range(1, clf.n_rounds_ + 1)}
    assert clf.estimator_.predict(X).shape == (len(X),)


def test_no_round_is_the_estimator_alone():
    clf = PseudoLabelingClassifier(LogisticRegression(), max_rounds=0)
    clf.fit(X, Y, unlabeled_data=UnlabeledData(X_UNLABELLED))

    alone = LogisticRegression().fit(X, Y)
    np.testing.assert_array_equal(
        clf.predict_proba(X_UNLABELLED), alone.predict_proba(X_UNLABELLED)
    )
    assert (clf.labeled_round_ == -1).all()


def test_a_threshold_nothing_reaches_stops_without_change():
    clf = PseudoLabelingClassifier(LogisticRegression(C=1e-3), threshold=1.0)
    clf.fit(X, Y, unlabeled_data=UnlabeledData(X_UNLABELLED))

    assert clf.termination_condition_ == "no_change"
    assert clf.n_rounds_ == 1


def test_pseudo_labelled_rows_carry_their_weight(recorded):
    clf = PseudoLabelingClassifier(
        RecordingClassifier(), threshold=0.8, max_rounds=1, pseudo_label_weight=0.25
    )
    weights = np.full(len(X), 2.0)
    clf.fit(X, Y, sample_weight=weights, unlabeled_data=UnlabeledData(X_UNLABELLED))

    (n_first, first_weight), (n_second, second_weight) = recorded
    assert n_first == len(X)
    np.testing.assert_array_equal(first_weight, weights)
    n_pseudo = (clf.labeled_round_ == 1).sum()
    assert n_second == len(X) + n_pseudo
    np.testing.assert_array_equal(second_weight[: len(X)], weights)
    np.testing.assert_array_equal(second_weight[len(X) :], np.full(n_pseudo, 0.25))


def test_an_estimator_without_sample_weight_works_unless_weights_are_asked_for():
    clf = PseudoLabelingClassifier(KNeighborsClassifier(3), threshold=0.9)
    clf.fit(X, Y, unlabeled_data=UnlabeledData(X_UNLABELLED))
    assert clf.n_rounds_ >= 1

    with pytest.raises(ValueError, match="takes no sample_weight"):
        clf.set_params(pseudo_label_weight=0.5).fit(
            X, Y, unlabeled_data=UnlabeledData(X_UNLABELLED)
        )


def test_string_labels_work():
    names = np.array(["ant", "bee", "cat"])[Y]
    clf = PseudoLabelingClassifier(LogisticRegression(), threshold=0.8)
    clf.fit(X, names, unlabeled_data=UnlabeledData(X_UNLABELLED))

    assert set(clf.predict(X_UNLABELLED)) <= {"ant", "bee", "cat"}
    assert set(clf.pseudo_labels_[clf.labeled_round_ >= 0]) <= {"ant", "bee", "cat"}


def test_unlabelled_rows_reach_every_fold_whole(recorded):
    X_many, y_many = X_ALL[:60], Y_ALL[:60]
    with sklearn.config_context(enable_metadata_routing=True):
        cross_val_score(
            PseudoLabelingClassifier(
                RecordingClassifier(), threshold=0.0, max_rounds=1
            ),
            X_many,
            y_many,
            cv=3,
            params={"unlabeled_data": UnlabeledData(X_UNLABELLED)},
        )
    # Per fold: the labelled fit (40 rows), then every unlabelled row added.
    assert [n for n, _ in recorded] == [40, 40 + len(X_UNLABELLED)] * 3


def test_bad_unlabelled_data_is_refused_clearly():
    clf = PseudoLabelingClassifier(LogisticRegression())
    with pytest.raises(TypeError, match=r"must be an UnlabeledData\(X_target\)"):
        clf.fit(X, Y, unlabeled_data=X_UNLABELLED)
    with pytest.raises(ValueError, match=r"samples of shape \(1,\), X of shape"):
        clf.fit(X, Y, unlabeled_data=UnlabeledData(X_UNLABELLED[:, :1]))


def test_the_estimator_passed_is_never_fitted():
    source = torch.nn.Sequential(
        torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
    )
    estimator = FineTunedClassifier(source, max_epochs=2, random_state=0)
    before = clone(estimator).get_params()
    PseudoLabelingClassifier(estimator, threshold=0.5, max_rounds=1).fit(
        X.astype(np.float32), Y, unlabeled_data=UnlabeledData(X_UNLABELLED[:50])
    )
    assert not hasattr(estimator, "module_")
    assert estimator.get_params().keys() == before.keys()

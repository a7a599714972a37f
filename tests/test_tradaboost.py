"""TrAdaBoost: scikit-learn's contract, and transfer past misleading source rows."""

import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from sktransfer import SourceData
from sktransfer.adaptation import TrAdaBoostClassifier, TrAdaBoostRegressor


@parametrize_with_checks(
    [
        TrAdaBoostClassifier(random_state=0),
        TrAdaBoostClassifier(LogisticRegression(), n_estimators=3, random_state=0),
        TrAdaBoostRegressor(n_stages=3, n_estimators=5, random_state=0),
    ]
)
def test_sklearn_contract(estimator, check):
    # The checks call fit(X, y) without source data: plain boosting on the
    # target rows, which must meet the whole contract on its own.
    check(estimator)


def _shifted_concept(seed):
    """Target: y = [x0 > 0]. 40% of the source rows follow y = [x1 > 0]."""
    rng = np.random.default_rng(seed)
    X_source = rng.normal(size=(300, 2))
    y_source = (X_source[:, 0] > 0).astype(int)
    other_concept = np.arange(300) < 120
    y_source[other_concept] = (X_source[other_concept, 1] > 0).astype(int)
    misleading = y_source != (X_source[:, 0] > 0)
    X = rng.normal(size=(20, 2))
    y = (X[:, 0] > 0).astype(int)
    X_test = rng.normal(size=(2000, 2))
    y_test = (X_test[:, 0] > 0).astype(int)
    return X_source, y_source, misleading, X, y, X_test, y_test


def test_classifier_beats_pooling_when_part_of_the_source_misleads():
    pooled_scores, boosted_scores = [], []
    for seed in range(3):
        X_source, y_source, misleading, X, y, X_test, y_test = _shifted_concept(seed)
        pooled = DecisionTreeClassifier(max_depth=3, random_state=0).fit(
            np.concatenate([X_source, X]), np.concatenate([y_source, y])
        )
        boosted = TrAdaBoostClassifier(random_state=0).fit(
            X, y, source_data=SourceData(X_source, y_source)
        )
        pooled_scores.append(pooled.score(X_test, y_test))
        boosted_scores.append(boosted.score(X_test, y_test))

        weights = boosted.source_weights_
        assert weights[misleading].mean() < 0.5 * weights[~misleading].mean()

    assert np.mean(boosted_scores) > np.mean(pooled_scores) + 0.03


def test_classifier_records_its_rounds():
    X_source, y_source, _, X, y, _, _ = _shifted_concept(0)
    clf = TrAdaBoostClassifier(n_estimators=6, random_state=0).fit(
        X, y, source_data=SourceData(X_source, y_source)
    )
    assert len(clf.estimators_) == 6
    assert clf.estimator_weights_.shape == clf.estimator_errors_.shape == (6,)
    assert (clf.estimator_weights_ >= 0).all()
    assert clf.source_weights_.shape == (300,)
    assert ((clf.source_weights_ > 0) & (clf.source_weights_ <= 1)).all()


def test_classifier_learns_source_classes_absent_from_the_target():
    X_source, y_source, _, X, y, _, _ = _shifted_concept(0)
    y_source = np.where(X_source[:, 0] > 2, 2, y_source)
    clf = TrAdaBoostClassifier(random_state=0).fit(
        X, y, source_data=SourceData(X_source, y_source)
    )
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.predict_proba(X).shape == (20, 3)


def test_classifier_votes_with_predictions_when_the_learner_has_no_probabilities():
    X_source, y_source, _, X, y, X_test, y_test = _shifted_concept(0)
    clf = TrAdaBoostClassifier(LinearSVC(), random_state=0).fit(
        X, y, source_data=SourceData(X_source, y_source)
    )
    proba = clf.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert clf.score(X_test, y_test) > 0.8


def _shifted_regression(seed):
    """Target: y = sin(x). Source rows with x > 0.5 are offset by 1.5."""
    rng = np.random.default_rng(seed)
    X_source = rng.uniform(-3, 3, size=(300, 1))
    y_source = np.sin(X_source[:, 0])
    shifted = X_source[:, 0] > 0.5
    y_source[shifted] += 1.5
    X = rng.uniform(-3, 3, size=(25, 1))
    y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=25)
    X_test = rng.uniform(-3, 3, size=(1000, 1))
    return X_source, y_source, shifted, X, y, X_test, np.sin(X_test[:, 0])


def test_regressor_beats_pooling_and_drops_the_offset_source_rows():
    X_source, y_source, shifted, X, y, X_test, y_test = _shifted_regression(1)
    pooled = DecisionTreeRegressor(max_depth=3, random_state=0).fit(
        np.concatenate([X_source, X]), np.concatenate([y_source, y])
    )

    reg = TrAdaBoostRegressor(random_state=0).fit(
        X, y, source_data=SourceData(X_source, y_source)
    )

    pooled_error = mean_squared_error(y_test, pooled.predict(X_test))
    assert mean_squared_error(y_test, reg.predict(X_test)) < 0.25 * pooled_error
    assert reg.cv_errors_.shape == (10,)
    # Neither all the source weight (pooling) nor none of it won.
    assert 0 < reg.best_stage_ < 9
    assert reg.best_stage_ == np.argmin(reg.cv_errors_)
    weights = reg.source_weights_
    assert weights[shifted].mean() < 0.5 * weights[~shifted].mean()


def test_regressor_takes_a_splitter_as_cv():
    X_source, y_source, _, X, y, _, _ = _shifted_regression(0)
    reg = TrAdaBoostRegressor(
        n_stages=3, n_estimators=3, cv=KFold(3), random_state=0
    ).fit(X, y, source_data=SourceData(X_source, y_source))
    assert np.isfinite(reg.cv_errors_).all()


def test_regressor_needs_two_target_rows_with_source_data():
    X_source, y_source, _, X, y, _, _ = _shifted_regression(0)
    with pytest.raises(ValueError, match="at least 2"):
        TrAdaBoostRegressor().fit(
            X[:1], y[:1], source_data=SourceData(X_source, y_source)
        )


@pytest.mark.parametrize(
    "estimator",
    [TrAdaBoostClassifier(n_estimators=2), TrAdaBoostRegressor(n_stages=2)],
    ids=["classifier", "regressor"],
)
def test_grid_search_passes_source_data_whole(estimator):
    # Source and target of equal length: routing must not cut the source
    # rows into the target's folds.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = (X[:, 0] > 0).astype(int)
    source = SourceData(rng.normal(size=(40, 2)), y[::-1].copy())
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(estimator, {"n_estimators": [2, 3]}, cv=2)
        search.fit(X, y, source_data=source)
    assert search.best_estimator_.source_weights_.shape == (40,)


def test_without_source_data_there_are_no_source_weights():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    y = (X[:, 0] > 0).astype(int)
    clf = TrAdaBoostClassifier(random_state=0).fit(X, y)
    assert clf.source_weights_.shape == (0,)
    assert clf.score(X, y) > 0.9


# --- bad input ------------------------------------------------------------------


@pytest.mark.parametrize(
    "estimator", [TrAdaBoostClassifier(), TrAdaBoostRegressor()], ids=["clf", "reg"]
)
def test_source_data_must_be_wrapped(estimator):
    X = np.zeros((10, 2))
    y = np.arange(10) % 2
    with pytest.raises(TypeError, match=r"SourceData\(X_source, y_source"):
        estimator.fit(X, y, source_data=(X, y))


@pytest.mark.parametrize(
    "estimator", [TrAdaBoostClassifier(), TrAdaBoostRegressor()], ids=["clf", "reg"]
)
def test_source_rows_must_have_the_targets_features(estimator):
    X = np.zeros((10, 2))
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match="has 3 features but X has 2"):
        estimator.fit(X, y, source_data=SourceData(np.zeros((10, 3)), y))


def test_source_labels_must_match_the_source_rows():
    X = np.zeros((10, 2))
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match="one value per row"):
        TrAdaBoostClassifier().fit(X, y, source_data=SourceData(X, y[:5]))


def test_a_learner_without_sample_weight_is_refused():
    X = np.zeros((10, 2))
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match="sample_weight"):
        TrAdaBoostClassifier(KNeighborsClassifier()).fit(X, y)

"""JointTrainingClassifier: a shared body trained on target and source data.

What a user relies on: ``source_weight=0`` *is* fine-tuning with a new head
and ignores source data; the source data reach every fit whole (never cut
into the target's folds, even when they have as many rows as the target
data) through ``fit``, ``Pipeline``, ``cross_val_score`` and ``GridSearchCV``
with metadata routing; the source head really learns from them, with their
sample weights; an epoch cycles the smaller data set; errors about missing
or mismatched source data are clear; nothing the user passed is modified.
"""

import pickle

import numpy as np
import pytest
import sklearn
import torch
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV, cross_val_score, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from torch import nn

from sktransfer import FineTunedClassifier, JointTrainingClassifier, SourceData

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_IRIS = ((X_IRIS - X_IRIS.mean(0)) / X_IRIS.std(0)).astype(np.float32)
FAST = {"max_epochs": 6, "lr": 0.02, "batch_size": 16, "random_state": 0}

# A related source task on the same inputs, with as many rows as the target
# data (150): the case in which cross-validation would wrongly cut it.
_RNG = np.random.RandomState(0)
X_SOURCE = (X_IRIS + 0.1 * _RNG.normal(size=X_IRIS.shape)).astype(np.float32)
Y_SOURCE = np.where(X_SOURCE[:, 2] > 0, "long", "short")


def _source(n_outputs=2, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(4, 16),
        nn.ReLU(),
        nn.Linear(16, 16),
        nn.ReLU(),
        nn.Linear(16, n_outputs),
    )


def _source_data(**kwargs):
    return SourceData(X_SOURCE, Y_SOURCE, **kwargs)


def _source_accuracy(estimator, X=X_SOURCE, y=Y_SOURCE):
    module = estimator.module_.eval()
    with torch.no_grad():
        codes = module.source_head(module.body(torch.as_tensor(X))).argmax(1)
    return np.mean(np.array(["long", "short"])[codes.numpy()] == y)


class Recording(JointTrainingClassifier):
    """Logs how many source rows each fit trained on (clones share the log)."""

    source_rows = []

    def fit(self, X, y, sample_weight=None, source_data=None):
        super().fit(X, y, sample_weight=sample_weight, source_data=source_data)
        Recording.source_rows.append((len(X), self.n_source_samples_))
        return self


@pytest.fixture
def recorded():
    Recording.source_rows = []
    yield Recording.source_rows
    Recording.source_rows = []


# --- source_weight = 0 is fine-tuning ------------------------------------------------


@pytest.mark.parametrize("with_source_data", [False, True])
def test_source_weight_zero_is_fine_tuning_with_a_new_head(with_source_data):
    source = _source()
    params = {"source_data": _source_data()} if with_source_data else {}

    joint = JointTrainingClassifier(source, source_weight=0, **FAST)
    joint.fit(X_IRIS, Y_IRIS, **params)
    fine_tuned = FineTunedClassifier(source, head="new", **FAST).fit(X_IRIS, Y_IRIS)

    np.testing.assert_array_equal(
        joint.predict_proba(X_IRIS), fine_tuned.predict_proba(X_IRIS)
    )
    assert joint.history_[:, "train_loss"] == fine_tuned.history_[:, "train_loss"]
    assert joint.n_source_samples_ == 0


def test_missing_source_data_is_refused_with_the_remedy():
    estimator = JointTrainingClassifier(_source(), **FAST)

    with pytest.raises(ValueError, match=r"source_data=SourceData\(X_source"):
        estimator.fit(X_IRIS, Y_IRIS)
    assert not hasattr(estimator, "module_")


def test_source_data_must_come_wrapped():
    estimator = JointTrainingClassifier(_source(), **FAST)

    with pytest.raises(TypeError, match="SourceData"):
        estimator.fit(X_IRIS, Y_IRIS, source_data=(X_SOURCE, Y_SOURCE))


def test_source_data_is_not_array_like_so_sklearn_never_slices_it():
    from sklearn.utils.validation import _check_method_params

    source_data = _source_data()
    params = _check_method_params(X_IRIS, {"source_data": source_data}, np.arange(10))

    assert params["source_data"] is source_data


# --- the source data are used -----------------------------------------------------


def test_the_source_head_learns_the_source_task_only_with_source_data():
    fitted = {
        weight: JointTrainingClassifier(_source(), source_weight=weight, **FAST).fit(
            X_IRIS, Y_IRIS, source_data=_source_data()
        )
        for weight in (0.0, 1.0)
    }

    assert _source_accuracy(fitted[1.0]) > 0.9
    assert _source_accuracy(fitted[1.0]) > _source_accuracy(fitted[0.0]) + 0.1
    assert fitted[1.0].n_source_samples_ == 150
    assert fitted[1.0].score(X_IRIS, Y_IRIS) > 0.8
    assert not np.array_equal(
        fitted[0.0].predict_proba(X_IRIS), fitted[1.0].predict_proba(X_IRIS)
    )


def test_source_rows_of_weight_zero_have_no_influence():
    # Two source data sets that differ only in the labels of rows of weight 0.
    weight = (np.arange(150) % 2).astype(float)
    scrambled = Y_SOURCE.copy()
    scrambled[weight == 0] = np.random.RandomState(5).permutation(
        scrambled[weight == 0]
    )
    estimator = JointTrainingClassifier(_source(), **FAST)

    def fit(y_source):
        source_data = SourceData(X_SOURCE, y_source, sample_weight=weight)
        return clone(estimator).fit(X_IRIS, Y_IRIS, source_data=source_data)

    np.testing.assert_array_equal(
        fit(Y_SOURCE).predict_proba(X_IRIS), fit(scrambled).predict_proba(X_IRIS)
    )
    unweighted = clone(estimator).fit(
        X_IRIS, Y_IRIS, source_data=SourceData(X_SOURCE, scrambled)
    )
    assert not np.array_equal(
        unweighted.predict_proba(X_IRIS), fit(scrambled).predict_proba(X_IRIS)
    )


def test_source_sample_weights_decide_which_rows_the_source_head_learns():
    # Weight only the rows of one half of the inputs, with their labels
    # flipped: the source head learns the flipped rule where it has weight.
    flipped = np.where(Y_SOURCE == "long", "short", "long")
    first_half = X_SOURCE[:, 0] < 0
    weight = first_half.astype(float)

    estimator = JointTrainingClassifier(_source(), **{**FAST, "max_epochs": 15})
    estimator.fit(
        X_IRIS,
        Y_IRIS,
        source_data=SourceData(X_SOURCE, flipped, sample_weight=weight),
    )

    accuracy = _source_accuracy(estimator, X_SOURCE[first_half], flipped[first_half])
    assert accuracy > 0.85


# --- batching: one target batch and one source batch per step -----------------------


@pytest.mark.parametrize(
    ("n_source", "steps"), [(600, 38), (40, 10)], ids=["source-larger", "smaller"]
)
def test_an_epoch_runs_as_many_steps_as_the_larger_data_set_needs(n_source, steps):
    rng = np.random.RandomState(1)
    X_source = rng.normal(size=(n_source, 4)).astype(np.float32)
    y_source = (X_source[:, 0] > 0).astype(int)

    estimator = JointTrainingClassifier(_source(), **{**FAST, "max_epochs": 2})
    estimator.fit(X_IRIS, Y_IRIS, source_data=SourceData(X_source, y_source))

    # 150 target rows in batches of 16 make 10 steps (a last batch of 6).
    assert [len(epoch["batches"]) for epoch in estimator.history_] == [steps, steps]


# --- the source data reach every fit whole ----------------------------------------


def test_cross_validation_passes_equal_length_source_data_whole(recorded):
    estimator = Recording(_source(), **FAST)
    source_data = _source_data()

    with sklearn.config_context(enable_metadata_routing=True):
        result = cross_validate(
            estimator,
            X_IRIS,
            Y_IRIS,
            cv=3,
            params={"source_data": source_data},
            return_estimator=True,
        )

    assert recorded == [(100, 150)] * 3
    assert [est.n_source_samples_ for est in result["estimator"]] == [150] * 3
    assert result["test_score"].mean() > 0.7


def test_cross_val_score_without_routing_passes_the_source_data_whole(recorded):
    scores = cross_val_score(
        Recording(_source(), **FAST),
        X_IRIS,
        Y_IRIS,
        cv=3,
        params={"source_data": _source_data()},
    )

    assert recorded == [(100, 150)] * 3
    assert np.isfinite(scores).all()


def test_pipeline_routes_the_source_data_to_the_estimator(recorded):
    pipeline = make_pipeline(
        FunctionTransformer(lambda X: X.astype(np.float32)),
        Recording(_source(), **FAST),
    )

    with sklearn.config_context(enable_metadata_routing=True):
        pipeline.fit(X_IRIS, Y_IRIS, source_data=_source_data())

    assert recorded == [(150, 150)]
    assert pipeline.score(X_IRIS, Y_IRIS) > 0.7


def test_grid_search_over_source_weight_sees_all_source_rows_in_every_fit(recorded):
    search = GridSearchCV(
        Recording(_source(), **FAST), {"source_weight": [0.0, 1.0]}, cv=3
    )

    with sklearn.config_context(enable_metadata_routing=True):
        search.fit(X_IRIS, Y_IRIS, source_data=_source_data())

    # Three folds per weight, then the refit on all 150 target rows; with
    # weight 0 the source data are ignored (0 rows trained on).
    fold_rows = sorted(rows for _, rows in recorded[:-1])
    assert fold_rows == [0, 0, 0, 150, 150, 150]
    assert all(n_target == 100 for n_target, _ in recorded[:-1])
    assert recorded[-1][0] == 150
    assert search.best_params_["source_weight"] in (0.0, 1.0)


# --- labels of the source task ----------------------------------------------------


def test_source_classes_maps_the_source_labels_to_the_source_outputs():
    # Output 0 means "short" here, the reverse of the sorted order.
    estimator = JointTrainingClassifier(
        _source(), source_classes=["short", "long"], **FAST
    ).fit(X_IRIS, Y_IRIS, source_data=_source_data())

    module = estimator.module_.eval()
    with torch.no_grad():
        codes = module.source_head(module.body(torch.as_tensor(X_SOURCE))).argmax(1)
    predicted = np.array(["short", "long"])[codes.numpy()]
    assert np.mean(predicted == Y_SOURCE) > 0.9


def test_source_labels_that_do_not_match_the_source_head_are_refused():
    three_labels = SourceData(X_SOURCE, np.arange(150) % 3)
    estimator = JointTrainingClassifier(_source(n_outputs=2), **FAST)

    with pytest.raises(
        ValueError, match="3 distinct labels but the source head '4' has 2 outputs"
    ):
        estimator.fit(X_IRIS, Y_IRIS, source_data=three_labels)
    with pytest.raises(ValueError, match=r"source labels \['long'\] are not among"):
        estimator.set_params(source_classes=["short", "medium"]).fit(
            X_IRIS, Y_IRIS, source_data=_source_data()
        )


def test_source_inputs_of_another_shape_are_refused():
    estimator = JointTrainingClassifier(_source(), **FAST)

    with pytest.raises(ValueError, match="samples of shape"):
        estimator.fit(X_IRIS, Y_IRIS, source_data=SourceData(X_SOURCE[:, :3], Y_SOURCE))


# --- reproducible, and the user's source is untouched -----------------------------


def test_joint_training_is_deterministic_pickles_and_leaves_the_source_intact():
    source = _source()
    before = {key: value.clone() for key, value in source.state_dict().items()}
    estimator = JointTrainingClassifier(source, source_weight=0.5, **FAST)

    first = estimator.fit(X_IRIS, Y_IRIS, source_data=_source_data())
    first_proba = first.predict_proba(X_IRIS)
    second = clone(estimator).fit(X_IRIS, Y_IRIS, source_data=_source_data())
    restored = pickle.loads(pickle.dumps(estimator))

    np.testing.assert_array_equal(second.predict_proba(X_IRIS), first_proba)
    np.testing.assert_array_equal(restored.predict_proba(X_IRIS), first_proba)
    for key, value in source.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_divergence_names_source_weight_among_the_remedies():
    from sktransfer import TrainingDivergedError

    estimator = JointTrainingClassifier(
        _source(), lr=1e12, optimizer=torch.optim.SGD, max_epochs=3
    )

    with pytest.raises(TrainingDivergedError, match="source_weight"):
        estimator.fit(X_IRIS * 1e6, Y_IRIS, source_data=_source_data())


# --- compared with other strategies ---------------------------------------------------


def test_compare_strategies_gives_source_data_to_the_joint_strategy_only(recorded):
    from sktransfer.model_selection import compare_strategies

    baseline = FineTunedClassifier(_source(), reinitialize=True, **FAST)
    strategies = {"joint": Recording(_source(), **FAST)}

    result = compare_strategies(
        strategies,
        X_IRIS,
        Y_IRIS,
        baseline=baseline,
        cv=3,
        scoring="accuracy",
        strategy_params={"joint": {"source_data": _source_data()}},
    )

    assert recorded == [(100, 150)] * 3
    assert np.isfinite(result.scores["joint"]["accuracy"]).all()
    with pytest.raises(ValueError, match=r"strategy_params names \['jiont'\]"):
        compare_strategies(
            strategies,
            X_IRIS,
            Y_IRIS,
            baseline=baseline,
            strategy_params={"jiont": {"source_data": _source_data()}},
        )


def test_parallel_grid_search_matches_a_sequential_one():
    # Workers receive the SourceData by pickling, under metadata routing.
    estimator = JointTrainingClassifier(_source(), **{**FAST, "max_epochs": 3})
    grid = {"source_weight": [0.0, 1.0]}

    with sklearn.config_context(enable_metadata_routing=True):
        sequential = GridSearchCV(estimator, grid, cv=3, scoring="neg_log_loss")
        parallel = GridSearchCV(estimator, grid, cv=3, scoring="neg_log_loss", n_jobs=2)
        sequential.fit(X_IRIS, Y_IRIS, source_data=_source_data())
        parallel.fit(X_IRIS, Y_IRIS, source_data=_source_data())

    np.testing.assert_allclose(
        parallel.cv_results_["mean_test_score"],
        sequential.cv_results_["mean_test_score"],
        rtol=1e-6,
    )
    assert parallel.best_estimator_.n_source_samples_ in (0, 150)

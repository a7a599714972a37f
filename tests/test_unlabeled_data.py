"""Unlabelled target data through ``fit``: the wrapper, its routing, distillation.

What a user relies on: ``UnlabeledData`` reaches every fit whole, through
Pipeline, cross_val_score and GridSearchCV under metadata routing; a knowledge
term finds it in ``context.unlabeled_data`` on the training device; bad
unlabelled input is refused naming it; and a distilled student learns from
the teacher on unlabelled inputs, which is where distillation helps.
"""

import numpy as np
import pytest
import sklearn
import torch
from _factories import EmbeddingSource, TrainingRowsSpy
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from torch import nn

from sktransfer import (
    AutoTransferClassifier,
    DistilledClassifier,
    DistilledRegressor,
    DomainAdaptationClassifier,
    JointTrainingClassifier,
    KnowledgeRegularizedClassifier,
    SourceData,
    UnlabeledData,
)
from sktransfer.knowledge import KnowledgeTerm

FAST = {"max_epochs": 2, "lr": 0.01, "batch_size": 16, "random_state": 0}
RNG = np.random.default_rng(0)
X = RNG.normal(size=(60, 4)).astype(np.float32)
Y = (X[:, 0] > 0).astype(int)
X_UNLABELLED = RNG.normal(size=(37, 4)).astype(np.float32) + 1.0


def _source(n_outputs=2, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, n_outputs))


class RecordingTerm(KnowledgeTerm):
    """Records what it is given of the unlabelled rows (class attribute)."""

    seen = []

    def prepare(self, context):
        data = context.unlabeled_data
        RecordingTerm.seen.append(None if data is None else data.X.cpu().numpy())

    def __call__(self, module, inputs, features, outputs, index):
        return outputs.sum() * 0.0


@pytest.fixture
def seen():
    RecordingTerm.seen = []
    yield RecordingTerm.seen
    RecordingTerm.seen = []


def _recording_estimator():
    return KnowledgeRegularizedClassifier(
        _source(), knowledge=RecordingTerm(), lam=1.0, **FAST
    )


def test_a_knowledge_term_gets_the_unlabelled_rows_exactly(seen):
    _recording_estimator().fit(X, Y, unlabeled_data=UnlabeledData(X_UNLABELLED))
    _recording_estimator().fit(X, Y)

    np.testing.assert_array_equal(seen[0], X_UNLABELLED)
    assert seen[1] is None


def test_unlabelled_rows_reach_every_fold_and_candidate_whole(seen):
    with sklearn.config_context(enable_metadata_routing=True):
        pipeline = make_pipeline(FunctionTransformer(), _recording_estimator())
        cross_val_score(
            pipeline,
            X,
            Y,
            cv=3,
            params={"unlabeled_data": UnlabeledData(X_UNLABELLED)},
        )
        assert len(seen) == 3
        search = GridSearchCV(_recording_estimator(), {"lam": [0.5, 1.0]}, cv=2)
        search.fit(X, Y, unlabeled_data=UnlabeledData(X_UNLABELLED))
    # 3 folds, then 2 candidates x 2 folds and the refit.
    assert len(seen) == 3 + 5
    for rows in seen:
        np.testing.assert_array_equal(rows, X_UNLABELLED)


@pytest.mark.parametrize(
    ("unlabeled_data", "error", "message"),
    [
        (X_UNLABELLED, TypeError, r"must be an UnlabeledData\(X_target\); got ndarray"),
        (
            UnlabeledData(X_UNLABELLED[:, :3]),
            ValueError,
            r"UnlabeledData's X has samples of shape \(3,\), the X given to fit "
            r"of shape \(4,\)",
        ),
        (
            UnlabeledData(np.where(X_UNLABELLED > 2, np.nan, X_UNLABELLED)),
            ValueError,
            r"Input UnlabeledData's X contains NaN",
        ),
        (
            UnlabeledData(X_UNLABELLED.astype(np.float64) * 1e39),
            ValueError,
            r"UnlabeledData's X holds values up to .* beyond the range of float32",
        ),
    ],
    ids=["not wrapped", "other width", "NaN", "overflow"],
)
@pytest.mark.parametrize(
    "make",
    [
        _recording_estimator,
        lambda: DistilledClassifier(_source(), _source(seed=1), **FAST),
        lambda: AutoTransferClassifier(
            _source(), strategies=["fine_tune", "adaptation"], max_epochs=1, cv=2
        ),
    ],
    ids=["knowledge term", "distillation", "auto transfer"],
)
def test_bad_unlabelled_data_is_refused_naming_it(
    make, unlabeled_data, error, message, seen
):
    with pytest.raises(error, match=message):
        make().fit(X, Y, unlabeled_data=unlabeled_data)


def _routed_cross_val_score(estimator, **params):
    """3-fold ``cross_val_score`` of ``estimator`` in a Pipeline, ``params`` routed."""
    with sklearn.config_context(enable_metadata_routing=True):
        return cross_val_score(
            make_pipeline(FunctionTransformer(), estimator),
            X,
            Y,
            cv=3,
            params=params,
        )


def test_auto_transfer_gets_the_unlabelled_rows_through_cross_validation():
    auto = AutoTransferClassifier(
        _source(),
        strategies=["fine_tune", "adaptation"],
        adaptation_lams=(0.1,),
        max_epochs=1,
        cv=2,
        random_state=0,
    )
    scores = _routed_cross_val_score(auto, unlabeled_data=UnlabeledData(X_UNLABELLED))

    assert scores.shape == (3,)
    fitted = auto.fit(X, Y, unlabeled_data=UnlabeledData(X_UNLABELLED))
    assert "adaptation(method=entropy, lam=0.1)" in fitted.cv_results_["strategy"]


def test_auto_transfer_gets_source_data_whole_through_cross_validation(
    monkeypatch,
):
    monkeypatch.setattr("sktransfer._auto.FineTunedClassifier", TrainingRowsSpy)
    monkeypatch.setattr(TrainingRowsSpy, "fits", [])
    # As many source rows as X: unwrapped, cross_val_score would cut them.
    auto = AutoTransferClassifier(
        _source(),
        strategies=["linear", "features", "fine_tune"],
        max_epochs=1,
        cv=2,
        random_state=0,
    )
    scores = _routed_cross_val_score(auto, source_data=SourceData(X + 0.5, Y))

    assert scores.shape == (3,)
    # Each of the 3 fits: 40 rows of X split in 2 halves, with the 60 source
    # rows in both; fine-tuning trains on 20 + 60 rows per split, and on all
    # 100 when it is chosen.
    assert set(TrainingRowsSpy.fits) <= {80, 100}
    assert TrainingRowsSpy.fits.count(80) == 6


def _distillation_task():
    X, y = make_classification(
        n_samples=3000,
        n_features=10,
        n_informative=8,
        n_redundant=0,
        n_classes=4,
        n_clusters_per_class=2,
        class_sep=1.5,
        random_state=0,
    )
    X = X.astype(np.float32)
    torch.manual_seed(0)
    teacher = nn.Sequential(
        nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4)
    )
    optimizer = torch.optim.Adam(teacher.parameters(), 1e-2)
    inputs, targets = torch.tensor(X[:1500]), torch.tensor(y[:1500])
    for _ in range(300):
        optimizer.zero_grad()
        nn.functional.cross_entropy(teacher(inputs), targets).backward()
        optimizer.step()
    return teacher, X[1500:], y[1500:]


def test_a_student_learns_the_teacher_on_unlabelled_inputs():
    # 5 labels per class and 1000 unlabelled rows: on the labels alone the
    # small student stays near 0.5; with the teacher's outputs on the
    # unlabelled rows it comes close to the teacher (0.93).
    teacher, X_rest, y_rest = _distillation_task()
    X_test, y_test = X_rest[1000:], y_rest[1000:]
    gains = []
    for seed in range(2):
        rng = np.random.default_rng(seed)
        labelled = np.concatenate(
            [
                rng.choice(np.flatnonzero(y_rest[:1000] == c), 5, replace=False)
                for c in range(4)
            ]
        )
        scores = []
        for unlabeled_data in (None, UnlabeledData(X_rest[:1000])):
            torch.manual_seed(1)
            student = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 4))
            clf = DistilledClassifier(teacher, student, alpha=0.5, random_state=0)
            clf.fit(X_rest[labelled], y_rest[labelled], unlabeled_data=unlabeled_data)
            scores.append(clf.score(X_test, y_test))
        gains.append(scores[1] - scores[0])
    assert min(gains) > 0.15, gains


def test_the_regressor_student_distils_on_unlabelled_inputs_too():
    teacher = _source(n_outputs=1)
    with torch.no_grad():
        expected = teacher(torch.tensor(X_UNLABELLED)).numpy().ravel()
    y = teacher(torch.tensor(X)).detach().numpy().ravel()
    # alpha=1: the labels do not count; only the teacher's outputs do.
    settings = {"alpha": 1.0, "max_epochs": 30, "lr": 0.01, "random_state": 0}
    with_unlabelled = DistilledRegressor(teacher, _source(1, seed=3), **settings).fit(
        X, y, unlabeled_data=UnlabeledData(X_UNLABELLED)
    )
    without = DistilledRegressor(teacher, _source(1, seed=3), **settings).fit(X, y)

    def error(model):
        return np.mean((model.predict(X_UNLABELLED) - expected) ** 2)

    assert error(with_unlabelled) < 0.5 * error(without)


@pytest.mark.parametrize(
    ("make", "fit_params"),
    [
        (
            lambda: DomainAdaptationClassifier(EmbeddingSource(), **FAST),
            lambda ids, y: {"unlabeled_data": UnlabeledData(ids + 20)},
        ),
        (
            lambda: KnowledgeRegularizedClassifier(EmbeddingSource(), **FAST),
            lambda ids, y: {"unlabeled_data": UnlabeledData(ids + 20)},
        ),
        (
            lambda: DistilledClassifier(EmbeddingSource(), EmbeddingSource(), **FAST),
            lambda ids, y: {"unlabeled_data": UnlabeledData(ids + 20)},
        ),
        (
            lambda: JointTrainingClassifier(EmbeddingSource(), **FAST),
            lambda ids, y: {"source_data": SourceData(ids + 20, y)},
        ),
    ],
    ids=["domain adaptation", "knowledge term", "distillation", "joint training"],
)
def test_extra_ids_a_token_network_cannot_read_are_refused_naming_them(
    make, fit_params
):
    # Without the check, torch's "index out of range in self" names nothing.
    ids = np.random.default_rng(0).integers(0, 10, size=(30, 5))
    y = np.arange(30) % 3
    params = fit_params(ids, y)
    name = "UnlabeledData's X" if "unlabeled_data" in params else "SourceData's X"

    with pytest.raises(ValueError, match=rf"{name} .*integer ids from 0 to 9"):
        make().fit(ids, y, **params)

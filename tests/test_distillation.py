"""DistilledClassifier: a student trained on the source's softened outputs.

What a user relies on: ``alpha=0`` *is* plain training of the student on the
labels (the source is not even run); the source's outputs are computed once
per fit whatever the number of epochs; the fitted model is the student alone;
a larger ``alpha`` brings the student closer to the source; the source's
outputs are matched to the target's classes as documented (by position, by
``source_classes``, or through an auxiliary head); width mismatches of the
student fail clearly; nothing the user passed is modified.
"""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.utils._param_validation import InvalidParameterError
from torch import nn

from sktransfer import DistilledClassifier, FineTunedClassifier

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_IRIS = ((X_IRIS - X_IRIS.mean(0)) / X_IRIS.std(0)).astype(np.float32)
FAST = {"max_epochs": 8, "lr": 0.02, "batch_size": 16, "random_state": 0}


def _teacher(n_outputs=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(4, 32),
        nn.ReLU(),
        nn.Linear(32, 32),
        nn.ReLU(),
        nn.Linear(32, n_outputs),
    )


def _student(n_outputs=3, seed=1):
    """A smaller network with dropout, so any change of the random stream shows."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, n_outputs)
    )


class CountingTeacher(nn.Module):
    """Records the rows of every forward pass (class attribute: copies share it)."""

    rows = []

    def __init__(self, n_outputs=3):
        super().__init__()
        torch.manual_seed(0)
        self.hidden = nn.Linear(4, 16)
        self.out = nn.Linear(16, n_outputs)

    def forward(self, inputs):
        CountingTeacher.rows.append(inputs.shape[0])
        return self.out(torch.relu(self.hidden(inputs)))


@pytest.fixture
def counted():
    CountingTeacher.rows = []
    yield CountingTeacher.rows
    CountingTeacher.rows = []


def _snapshot(module):
    return {key: value.clone() for key, value in module.state_dict().items()}, [
        m.training for m in module.modules()
    ]


def _assert_unchanged(module, snapshot):
    state, training = snapshot
    for key, value in module.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert [m.training for m in module.modules()] == training


def _mean_kl_to(teacher_logits, estimator, temperature=1.0):
    """KL(softmax(teacher / T) ‖ student's predict_proba), mean over iris."""
    target = torch.softmax(torch.as_tensor(teacher_logits) / temperature, 1)
    proba = torch.as_tensor(estimator.predict_proba(X_IRIS)).float()
    return (target * (target.log() - proba.clamp_min(1e-12).log())).sum(1).mean()


def _teacher_logits(teacher):
    with torch.no_grad():
        return teacher(torch.as_tensor(X_IRIS)).numpy()


# --- alpha = 0 is plain training of the student -----------------------------------


def test_alpha_zero_equals_training_the_student_on_the_labels_and_never_runs_source(
    counted,
):
    student = _student()
    distilled = DistilledClassifier(CountingTeacher(), student, alpha=0, **FAST)
    distilled.fit(X_IRIS, Y_IRIS)
    plain = FineTunedClassifier(student, head="reuse", body_lr_ratio=1.0, **FAST).fit(
        X_IRIS, Y_IRIS
    )

    np.testing.assert_array_equal(
        distilled.predict_proba(X_IRIS), plain.predict_proba(X_IRIS)
    )
    assert distilled.history_[:, "train_loss"] == plain.history_[:, "train_loss"]
    assert distilled.distilled_into_ is None
    # Only the one-sample probes that check X fits the source ran.
    assert set(counted) == {1}


# --- the source runs once per fit, and not at all to predict -----------------------


def test_source_runs_once_over_the_training_rows_whatever_the_number_of_epochs(
    counted,
):
    rows_per_fit = {}
    for max_epochs in (2, 6):
        counted.clear()
        DistilledClassifier(
            CountingTeacher(), _student(), **{**FAST, "max_epochs": max_epochs}
        ).fit(X_IRIS, Y_IRIS)
        rows_per_fit[max_epochs] = list(counted)

    assert rows_per_fit[2] == rows_per_fit[6]
    # One-row probes, then the 150 training rows in one large batch.
    assert [rows for rows in rows_per_fit[6] if rows > 1] == [150]


def test_predict_runs_the_student_only(counted):
    teacher = CountingTeacher()
    estimator = DistilledClassifier(teacher, _student(), alpha=0.7, **FAST)
    estimator.fit(X_IRIS, Y_IRIS)
    expected = estimator.predict_proba(X_IRIS)
    counted.clear()

    # Poison the source the estimator was given: predicting must not notice.
    with torch.no_grad():
        for parameter in teacher.parameters():
            parameter.fill_(float("nan"))
    estimator.source_module = None

    np.testing.assert_array_equal(estimator.predict_proba(X_IRIS), expected)
    assert counted == []
    n_student = sum(p.numel() for p in _student().parameters())
    assert sum(p.numel() for p in estimator.module_.parameters()) == n_student
    restored = pickle.loads(pickle.dumps(estimator))
    np.testing.assert_array_equal(restored.predict_proba(X_IRIS), expected)


# --- alpha and temperature ------------------------------------------------------------


def test_larger_alpha_brings_the_student_closer_to_the_source():
    teacher = _teacher()
    logits = _teacher_logits(teacher)

    distances = [
        _mean_kl_to(
            logits,
            DistilledClassifier(
                teacher, _student(), alpha=alpha, temperature=1.0, **FAST
            ).fit(X_IRIS, Y_IRIS),
        )
        for alpha in (0.0, 0.5, 1.0)
    ]

    assert distances[0] > distances[1] > distances[2]


def test_alpha_one_ignores_the_labels():
    teacher = _teacher()
    y_shuffled = np.random.RandomState(0).permutation(Y_IRIS)

    def fit(y):
        return DistilledClassifier(teacher, _student(), alpha=1.0, **FAST).fit(
            X_IRIS, y
        )

    np.testing.assert_allclose(
        fit(Y_IRIS).predict_proba(X_IRIS),
        fit(y_shuffled).predict_proba(X_IRIS),
        atol=1e-6,
    )


def test_temperature_changes_what_the_student_learns():
    def fit(temperature):
        return DistilledClassifier(
            _teacher(), _student(), temperature=temperature, **FAST
        ).fit(X_IRIS, Y_IRIS)

    assert not np.allclose(
        fit(1.0).predict_proba(X_IRIS), fit(5.0).predict_proba(X_IRIS)
    )


def test_rows_of_weight_zero_count_in_neither_term():
    # Change the inputs and labels of the rows of weight 0: the source's soft
    # targets for them change too, and neither may reach the student (its
    # rows do not interact: no batch norm).
    weight = (np.arange(150) % 3 != 0).astype(float)
    X_changed, y_changed = X_IRIS.copy(), Y_IRIS.copy()
    rng = np.random.RandomState(0)
    X_changed[weight == 0] = rng.normal(size=(50, 4))
    y_changed[weight == 0] = rng.randint(3, size=50)
    estimator = DistilledClassifier(_teacher(), _student(), alpha=0.5, **FAST)

    original = clone(estimator).fit(X_IRIS, Y_IRIS, sample_weight=weight)
    changed = clone(estimator).fit(X_changed, y_changed, sample_weight=weight)
    unweighted = clone(estimator).fit(X_changed, y_changed)

    np.testing.assert_allclose(
        original.predict_proba(X_IRIS), changed.predict_proba(X_IRIS), atol=1e-6
    )
    assert not np.allclose(
        original.predict_proba(X_IRIS), unweighted.predict_proba(X_IRIS), atol=1e-3
    )


@pytest.mark.parametrize(
    "parameter", [{"alpha": -0.1}, {"alpha": 1.5}, {"temperature": 0}]
)
def test_out_of_range_alpha_and_temperature_are_refused(parameter):
    estimator = DistilledClassifier(_teacher(), _student(), **parameter, **FAST)

    with pytest.raises(InvalidParameterError, match=next(iter(parameter))):
        estimator.fit(X_IRIS, Y_IRIS)


# --- which outputs are matched ---------------------------------------------------


def test_source_classes_picks_the_source_outputs_of_the_target_classes():
    # The teacher scores five labels; the target task has three of them.
    teacher = _teacher(n_outputs=5)
    source_classes = ["a", "b", "c", "d", "e"]
    keep = Y_IRIS >= 0
    y = np.array(["b", "d", "e"])[Y_IRIS[keep]]
    logits = _teacher_logits(teacher)
    settings = {**FAST, "max_epochs": 40, "lr": 0.02}

    estimator = DistilledClassifier(
        teacher,
        _teacher(n_outputs=3, seed=2),
        source_classes=source_classes,
        alpha=1.0,
        temperature=1.0,
        **settings,
    ).fit(X_IRIS, y)

    assert estimator.distilled_into_ == "head"
    np.testing.assert_array_equal(estimator.classes_, ["b", "d", "e"])
    right = _mean_kl_to(logits[:, [1, 3, 4]], estimator)
    wrong = _mean_kl_to(logits[:, [0, 1, 2]], estimator)
    assert right < 0.05
    assert right < wrong / 5


@pytest.mark.parametrize(
    "source_classes", [[10, 11, 12], [0, 1, 7]], ids=["disjoint", "overlapping"]
)
def test_source_of_other_classes_of_the_same_width_uses_the_auxiliary_head(
    source_classes,
):
    # Same width as the target: without source_classes, the outputs would be
    # matched by position. Naming the source's labels prevents that.
    estimator = DistilledClassifier(
        _teacher(n_outputs=3), _student(), source_classes=source_classes, **FAST
    )

    assert estimator.fit(X_IRIS, Y_IRIS).distilled_into_ == "auxiliary"
    assert estimator.set_params(source_classes=None).fit(
        X_IRIS, Y_IRIS
    ).distilled_into_ == ("head")


def test_source_classes_must_name_every_source_output():
    estimator = DistilledClassifier(
        _teacher(n_outputs=5), _student(), source_classes=[0, 1, 2], **FAST
    )

    with pytest.raises(ValueError, match="3 labels, but the source network has 5"):
        estimator.fit(X_IRIS, Y_IRIS)


def test_source_of_other_classes_is_distilled_through_an_auxiliary_head():
    teacher = _teacher(n_outputs=5)
    logits = torch.as_tensor(_teacher_logits(teacher))

    estimator = DistilledClassifier(
        teacher, _student(), alpha=0.9, temperature=1.0, **{**FAST, "max_epochs": 30}
    ).fit(X_IRIS, Y_IRIS)

    assert estimator.distilled_into_ == "auxiliary"
    assert estimator.predict_proba(X_IRIS).shape == (150, 3)
    assert estimator.score(X_IRIS, Y_IRIS) > 0.6
    module = estimator.module_.eval()
    with torch.no_grad():
        auxiliary = module.auxiliary_head(module.body(torch.as_tensor(X_IRIS)))
    target = torch.softmax(logits, 1)

    def kl(student_logits):
        log_proba = torch.log_softmax(student_logits, 1)
        return (target * (target.log() - log_proba)).sum(1).mean()

    # The auxiliary head learned the source's distribution over its 5 classes.
    assert kl(auxiliary) < 0.2
    assert kl(auxiliary) < kl(torch.zeros_like(logits)) / 3


# --- the student's width ----------------------------------------------------------


def test_student_with_the_wrong_number_of_outputs_is_refused_clearly():
    estimator = DistilledClassifier(_teacher(), _student(n_outputs=5), **FAST)

    with pytest.raises(ValueError, match=r"student network's final layer '3' has 5"):
        estimator.fit(X_IRIS, Y_IRIS)


def test_student_with_one_row_of_outputs_per_position_is_refused_naming_its_shape():
    # A Linear student on (n, 2, 4) input scores each of the 2 positions.
    X = np.concatenate([X_IRIS, X_IRIS[::-1]], axis=1).reshape(-1, 2, 4)
    estimator = DistilledClassifier(_teacher(), _student(), alpha=0, **FAST)

    with pytest.raises(
        ValueError,
        match=r"student network's final layer '3' gives outputs of shape \(2, 3\) "
        r"per sample, but the target needs 3 \(one per class of \[0, 1, 2\]\)",
    ):
        estimator.fit(X, Y_IRIS)
    estimator.set_params(head="new").fit(X, Y_IRIS)
    assert estimator.predict_proba(X).shape == (150, 3)


def test_head_new_replaces_the_students_final_layer():
    estimator = DistilledClassifier(
        _teacher(), _student(n_outputs=5), head="new", **FAST
    ).fit(X_IRIS, Y_IRIS)

    assert estimator.head_choice_ == "new"
    assert estimator.predict_proba(X_IRIS).shape == (150, 3)
    assert estimator.score(X_IRIS, Y_IRIS) > 0.6


def test_a_single_linear_layer_is_a_valid_student():
    estimator = DistilledClassifier(_teacher(), nn.Linear(4, 3), **FAST)

    assert estimator.fit(X_IRIS, Y_IRIS).score(X_IRIS, Y_IRIS) > 0.7


def test_student_that_cannot_read_x_is_refused_naming_the_student():
    estimator = DistilledClassifier(_teacher(), nn.Linear(5, 3), **FAST)

    with pytest.raises(ValueError, match="student_module"):
        estimator.fit(X_IRIS, Y_IRIS)


# --- reproducible, and nothing the user passed changes -----------------------------


def test_fit_is_deterministic_and_leaves_teacher_and_student_untouched():
    teacher, student = _teacher(), _student()
    before = _snapshot(teacher), _snapshot(student)
    estimator = DistilledClassifier(teacher, student, **FAST)

    first = estimator.fit(X_IRIS, Y_IRIS).predict_proba(X_IRIS)
    second = clone(estimator).fit(X_IRIS, Y_IRIS).predict_proba(X_IRIS)

    np.testing.assert_array_equal(first, second)
    _assert_unchanged(teacher, before[0])
    _assert_unchanged(student, before[1])
    assert estimator.source_module is teacher
    assert estimator.student_module is student


def test_early_stopping_monitors_the_label_loss():
    estimator = DistilledClassifier(
        _teacher(),
        _student(),
        alpha=1.0,
        early_stopping=True,
        n_iter_no_change=2,
        **{**FAST, "max_epochs": 30},
    ).fit(X_IRIS, Y_IRIS)

    valid_loss = estimator.history_[:, "valid_loss"]
    # With alpha=1 the training loss is the distillation term alone; the
    # validation loss is still the cross-entropy, never zero.
    assert np.isfinite(valid_loss).all()
    assert min(valid_loss) > 0

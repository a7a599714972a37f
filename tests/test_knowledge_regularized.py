"""KnowledgeRegularizedClassifier / Regressor: fine-tuning plus ``lam · K(θ)``.

The estimators fine-tune like ``FineTuned*`` while a knowledge term keeps the
network close to its source: its weights (``"l2sp"``), its features
(``"features"``), its outputs (``"outputs"``) or whatever a user's term
measures. These tests pin down what a user relies on: ``lam=0`` *is*
fine-tuning, a larger ``lam`` stays measurably closer to the source, whatever
the source contributes is computed once per fit, ``lam`` tunes with
``GridSearchCV``, and the user's source network and term are never modified.
"""

import math
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_iris, make_regression
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError
from torch import nn

from sktransfer import (
    FineTunedClassifier,
    FineTunedRegressor,
    KnowledgeRegularizedClassifier,
    KnowledgeRegularizedRegressor,
)
from sktransfer.datasets import load_digits_transfer, pretrain_source_network
from sktransfer.knowledge import KnowledgeTerm, SourceContext

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_REG, Y_REG = make_regression(
    n_samples=120, n_features=4, n_informative=4, noise=1.0, random_state=0
)
Y_REG = Y_REG / Y_REG.std()
Y_REG_2D = np.column_stack([Y_REG, -0.5 * Y_REG + X_REG[:, 0]])

KNOWLEDGE = ["l2sp", "features", "outputs"]
# Few epochs with a rate that learns iris in them.
FAST = {"max_epochs": 8, "lr": 0.02, "batch_size": 16, "random_state": 0}


# --- sources -------------------------------------------------------------------


def _mlp(n_outputs=3, seed=0):
    """Two hidden layers, named "0" and "2" as feature layers."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, n_outputs)
    )


def _train_mode_source(n_outputs=3):
    """A source whose state would show any eval() / requires_grad_ / training leak."""
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Linear(4, 8),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(8, n_outputs),
    )
    return module.train().requires_grad_(True)


class CountingNet(nn.Module):
    """Counts its forward passes in a class attribute (shared by deep copies)."""

    calls = []  # (id of the instance, rows in the batch)

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, inputs):
        CountingNet.calls.append((id(self), inputs.shape[0]))
        return self.head(torch.relu(self.hidden(inputs)))


@pytest.fixture(scope="module")
def digits():
    """A related source and a small target task (source digits 0-4, target 5-9)."""
    task = load_digits_transfer(n_target_per_class=15, random_state=0)
    source = pretrain_source_network(
        task.X_source,
        task.y_source,
        hidden_layer_sizes=(32, 16),
        max_epochs=4,
        batch_size=64,
        random_state=0,
    )
    return source, task.X_target, task.y_target


def _snapshot(module):
    return {
        "state": {key: value.clone() for key, value in module.state_dict().items()},
        "training": [submodule.training for submodule in module.modules()],
        "requires_grad": [param.requires_grad for param in module.parameters()],
        "hooks": [
            len(submodule._forward_hooks) + len(submodule._forward_pre_hooks)
            for submodule in module.modules()
        ],
    }


def _assert_unchanged(module, snapshot):
    after = _snapshot(module)
    assert after["state"].keys() == snapshot["state"].keys()
    for key, before in snapshot["state"].items():
        assert after["state"][key].dtype == before.dtype, key
        assert torch.equal(after["state"][key], before), key
    assert after["training"] == snapshot["training"]
    assert after["requires_grad"] == snapshot["requires_grad"]
    assert after["hooks"] == snapshot["hooks"]


def _body_distance(estimator, source):
    """‖θ_body − θ_body⁰‖² between a fitted network and its source."""
    source_parameters = dict(source.named_parameters())
    return sum(
        (parameter.detach() - source_parameters[name.removeprefix("body.")])
        .pow(2)
        .sum()
        .item()
        for name, parameter in estimator.module_.named_parameters()
        if name.startswith("body.")
    )


def _fit_to_the_end(estimator, X, y):
    """Fit; an early stop surfacing as a KeyboardInterrupt fails the test only.

    skorch's EarlyStopping ends training by raising KeyboardInterrupt, which
    must stay inside the engine: a leaked one would abort the whole session.
    """
    try:
        return estimator.fit(X, y)
    except KeyboardInterrupt:
        pytest.fail("fit raised KeyboardInterrupt: early stopping escaped skorch")


def _finite_losses(estimator):
    return np.isfinite(estimator.history_[:, "train_loss"]).all()


# --- lam=0 is fine-tuning -------------------------------------------------------


@pytest.mark.parametrize("knowledge", KNOWLEDGE)
@pytest.mark.parametrize("n_outputs", [3, 5], ids=["head-reused", "head-new"])
def test_lam_zero_reproduces_fine_tuned_classifier_exactly(knowledge, n_outputs):
    # Dropout and batch norm make any extra draw from the random stream or
    # any change of the training path show in the predictions.
    source = _train_mode_source(n_outputs)

    regularized = KnowledgeRegularizedClassifier(
        source, knowledge=knowledge, lam=0, beta=0, **FAST
    ).fit(X_IRIS, Y_IRIS)
    fine_tuned = FineTunedClassifier(source, **FAST).fit(X_IRIS, Y_IRIS)

    assert regularized.head_choice_ == fine_tuned.head_choice_
    np.testing.assert_array_equal(
        regularized.predict_proba(X_IRIS), fine_tuned.predict_proba(X_IRIS)
    )
    assert regularized.history_[:, "train_loss"] == fine_tuned.history_[:, "train_loss"]


@pytest.mark.parametrize("knowledge", KNOWLEDGE)
@pytest.mark.parametrize("y", [Y_REG, Y_REG_2D], ids=["1d", "2d"])
def test_lam_zero_reproduces_fine_tuned_regressor_exactly(knowledge, y):
    source = _train_mode_source(1)

    regularized = KnowledgeRegularizedRegressor(
        source, knowledge=knowledge, lam=0, **FAST
    ).fit(X_REG, y)
    fine_tuned = FineTunedRegressor(source, **FAST).fit(X_REG, y)

    np.testing.assert_array_equal(regularized.predict(X_REG), fine_tuned.predict(X_REG))


# --- larger lam stays closer to the source ----------------------------------------


def _fit_digits(digits, lam, **params):
    # A new head starts random here: the drift of plain fine-tuning (lam=0)
    # is then large, and how much each lam holds it back shows clearly.
    source, X, y = digits
    settings = {
        "max_epochs": 10,
        "lr": 0.01,
        "batch_size": 16,
        "random_state": 0,
        "head_init": "random",
    }
    return KnowledgeRegularizedClassifier(source, lam=lam, **settings, **params).fit(
        X, y
    )


def test_larger_lam_keeps_l2sp_weights_closer_to_the_source(digits):
    source = digits[0]

    distances = [
        _body_distance(_fit_digits(digits, lam, knowledge="l2sp"), source)
        for lam in (0, 0.1, 10)
    ]

    assert distances[0] > distances[1] > distances[2]
    assert distances[2] < distances[0] / 10


def test_larger_lam_keeps_body_features_closer_to_the_source_features(digits):
    source, X, _ = digits
    inputs = torch.as_tensor(X)
    with torch.no_grad():
        source_features = source[:-1](inputs)

    distances = []
    for lam in (0, 0.1, 10):
        estimator = _fit_digits(digits, lam, knowledge="features")
        with torch.no_grad():
            features = estimator.module_.body(inputs)
        distances.append((features - source_features).pow(2).mean().item())

    assert distances[0] > distances[1] > distances[2]
    assert distances[2] < distances[0] / 10


@pytest.mark.parametrize("head", ["new", "reuse"])
def test_larger_lam_keeps_the_source_heads_outputs_closer_to_the_source(digits, head):
    # With a new head, the source head reads the target body (Learning without
    # Forgetting); with a reused head, that is the target network itself.
    source, X, _ = digits
    inputs = torch.as_tensor(X)
    with torch.no_grad():
        source_outputs = source(inputs)

    distances = []
    for lam in (0, 0.1, 10):
        estimator = _fit_digits(digits, lam, knowledge="outputs", head=head)
        assert estimator.head_choice_ == head
        source_head = source[-1] if head == "new" else estimator.module_.head
        with torch.no_grad():
            outputs = source_head(estimator.module_.body(inputs))
        distances.append((outputs - source_outputs).pow(2).mean().item())

    assert distances[0] > distances[1] > distances[2]
    assert distances[2] < distances[0] / 10


# --- beta: L2 toward zero on a new head ----------------------------------------


def _head_norm(estimator):
    return sum(
        p.detach().pow(2).sum().item() for p in estimator.module_.head.parameters()
    )


@pytest.mark.parametrize("lam", [0.0, 0.1])
def test_beta_shrinks_the_weights_of_a_new_head(lam):
    settings = {**FAST, "max_epochs": 15}
    without = KnowledgeRegularizedClassifier(_mlp(5), lam=lam, beta=0, **settings)
    with_beta = KnowledgeRegularizedClassifier(_mlp(5), lam=lam, beta=1.0, **settings)

    without.fit(X_IRIS, Y_IRIS)
    with_beta.fit(X_IRIS, Y_IRIS)

    assert with_beta.head_choice_ == "new"
    assert _head_norm(with_beta) < 0.8 * _head_norm(without)


@pytest.mark.parametrize("lam", [0.0, 0.1])
def test_beta_has_no_effect_when_the_source_head_is_reused(lam):
    settings = {"head": "reuse", "lam": lam, **FAST}
    without = KnowledgeRegularizedClassifier(_mlp(3), beta=0, **settings)
    with_beta = KnowledgeRegularizedClassifier(_mlp(3), beta=10.0, **settings)

    without.fit(X_IRIS, Y_IRIS)
    with_beta.fit(X_IRIS, Y_IRIS)

    assert with_beta.head_choice_ == "reuse"
    np.testing.assert_array_equal(
        with_beta.predict_proba(X_IRIS), without.predict_proba(X_IRIS)
    )


# --- feature layers -----------------------------------------------------------------


def _forward_hooks(module):
    return [
        name
        for name, submodule in module.named_modules()
        if submodule._forward_hooks or submodule._forward_pre_hooks
    ]


def test_feature_layers_hold_the_named_layers_close_to_the_source():
    source = _mlp()
    inputs = torch.as_tensor(X_IRIS, dtype=torch.float32)
    with torch.no_grad():
        source_hidden = source[:3](inputs)

    def hidden_distance(lam):
        estimator = KnowledgeRegularizedClassifier(
            source, knowledge="features", feature_layers=["0", "2"], lam=lam, **FAST
        ).fit(X_IRIS, Y_IRIS)
        with torch.no_grad():
            hidden = estimator.module_.body[:3](inputs)
        return (hidden - source_hidden).pow(2).mean().item()

    assert hidden_distance(10.0) < hidden_distance(0.0) / 5


def test_feature_layers_leave_no_hooks_and_the_fitted_estimator_pickles():
    estimator = KnowledgeRegularizedClassifier(
        _mlp(), knowledge="features", feature_layers=["0", "2"], lam=1.0, **FAST
    ).fit(X_IRIS, Y_IRIS)

    assert _forward_hooks(estimator.module_) == []
    restored = pickle.loads(pickle.dumps(estimator))
    np.testing.assert_array_equal(
        restored.predict_proba(X_IRIS), estimator.predict_proba(X_IRIS)
    )


def test_unknown_feature_layer_is_refused_naming_it():
    estimator = KnowledgeRegularizedClassifier(
        _mlp(), knowledge="features", feature_layers=["0", "nope"], lam=1.0, **FAST
    )

    with pytest.raises(ValueError, match="nope"):
        estimator.fit(X_IRIS, Y_IRIS)


# --- output distillation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_outputs", "head_choice"), [(3, "reuse"), (5, "new")], ids=["reuse", "new"]
)
def test_output_distillation_trains_with_a_reused_or_a_new_head(n_outputs, head_choice):
    estimator = KnowledgeRegularizedClassifier(
        _mlp(n_outputs), knowledge="outputs", lam=1.0, head=head_choice, **FAST
    ).fit(X_IRIS, Y_IRIS)

    assert estimator.head_choice_ == head_choice
    assert estimator.predict_proba(X_IRIS).shape == (150, 3)
    assert _finite_losses(estimator)
    assert estimator.score(X_IRIS, Y_IRIS) > 0.6


def test_temperature_changes_what_output_distillation_learns():
    def fit(temperature):
        return KnowledgeRegularizedClassifier(
            _mlp(), knowledge="outputs", lam=1.0, temperature=temperature, **FAST
        ).fit(X_IRIS, Y_IRIS)

    assert not np.array_equal(
        fit(1.0).predict_proba(X_IRIS), fit(4.0).predict_proba(X_IRIS)
    )


@pytest.mark.parametrize("temperature", [0, -1.0])
def test_temperature_must_be_positive(temperature):
    estimator = KnowledgeRegularizedClassifier(
        _mlp(), knowledge="outputs", temperature=temperature, **FAST
    )

    with pytest.raises(InvalidParameterError, match="temperature"):
        estimator.fit(X_IRIS, Y_IRIS)


@pytest.mark.parametrize("parameter", [{"lam": -0.1}, {"beta": -1.0}])
def test_negative_weights_are_refused(parameter):
    estimator = KnowledgeRegularizedClassifier(_mlp(), **parameter, **FAST)

    with pytest.raises(InvalidParameterError, match=next(iter(parameter))):
        estimator.fit(X_IRIS, Y_IRIS)


@pytest.mark.parametrize("knowledge", ["l2", "Features", 3])
def test_unknown_knowledge_is_refused(knowledge):
    estimator = KnowledgeRegularizedClassifier(_mlp(), knowledge=knowledge, **FAST)

    with pytest.raises(InvalidParameterError, match="knowledge"):
        estimator.fit(X_IRIS, Y_IRIS)


# --- custom knowledge terms ---------------------------------------------------------


def _n_batches(n_rows, batch_size=FAST["batch_size"]):
    return math.ceil(n_rows / batch_size)


def test_plain_function_is_a_knowledge_term_called_on_every_batch():
    batch_rows = []

    def shrink_features(module, inputs, features, outputs, index):
        batch_rows.append(inputs.shape[0])
        assert features.shape == (inputs.shape[0], 8)
        assert outputs.shape == (inputs.shape[0], 3)
        return features.pow(2).mean()

    estimator = KnowledgeRegularizedClassifier(
        _mlp(), knowledge=shrink_features, lam=10.0, **FAST
    ).fit(X_IRIS, Y_IRIS)
    baseline = KnowledgeRegularizedClassifier(_mlp(), lam=0.0, **FAST)
    baseline.fit(X_IRIS, Y_IRIS)

    assert len(batch_rows) == FAST["max_epochs"] * _n_batches(150)
    assert sum(batch_rows) == FAST["max_epochs"] * 150
    inputs = torch.as_tensor(X_IRIS, dtype=torch.float32)
    with torch.no_grad():
        shrunk = estimator.module_.body(inputs).pow(2).mean()
        free = baseline.module_.body(inputs).pow(2).mean()
    assert shrunk < free / 2


class RecordingTerm(KnowledgeTerm):
    """Logs the calls it gets in a class attribute (the estimator copies it)."""

    log = []

    def __init__(self, scale=1.0):
        self.scale = scale

    def prepare(self, context):
        RecordingTerm.log.append(("prepare", context))
        self._hook = context.source_module.body.register_forward_hook(
            lambda module, args, output: RecordingTerm.log.append(
                ("source", args[0].shape[0])
            )
        )
        self._inputs = context.inputs
        self._source_features = context.map_batches(context.source_module.body)

    def release(self):
        self._hook.remove()
        RecordingTerm.log.append(("release", None))

    def __call__(self, module, inputs, features, outputs, index):
        # The contract of ``index``: the batch's rows in ``context.inputs``.
        consistent = torch.equal(self._inputs[index], inputs)
        RecordingTerm.log.append(("call", consistent))
        reference = self._source_features[index]
        return self.scale * (features - reference).pow(2).mean()


@pytest.fixture
def recording_log():
    RecordingTerm.log = []
    yield RecordingTerm.log
    RecordingTerm.log = []


def _events(log, kind):
    return [value for event, value in log if event == kind]


def test_knowledge_term_is_prepared_once_per_fit_and_released_once(recording_log):
    estimator = KnowledgeRegularizedClassifier(
        _mlp(5), knowledge=RecordingTerm(), lam=1.0, **FAST
    )

    estimator.fit(X_IRIS, Y_IRIS)

    (context,) = _events(recording_log, "prepare")
    assert isinstance(context, SourceContext)
    assert context.inputs.shape == (150, 4)
    assert context.task == "classification"
    assert context.head_is_new
    assert context.target_module is estimator.module_
    assert context.source_module is not estimator.source_module
    # The source is a frozen reference: evaluation mode, no gradients.
    assert not any(module.training for module in context.source_module.modules())
    assert not any(p.requires_grad for p in context.source_module.parameters())
    assert len(_events(recording_log, "release")) == 1
    assert recording_log[-1][0] == "release"
    calls = _events(recording_log, "call")
    assert len(calls) == FAST["max_epochs"] * _n_batches(150)
    assert all(calls), "a batch's index did not point at its rows in context.inputs"

    estimator.fit(X_IRIS, Y_IRIS)
    assert len(_events(recording_log, "prepare")) == 2
    assert len(_events(recording_log, "release")) == 2


def test_source_network_runs_only_before_training_once_over_the_inputs(
    recording_log,
):
    KnowledgeRegularizedClassifier(
        _mlp(), knowledge=RecordingTerm(), lam=1.0, **FAST
    ).fit(X_IRIS, Y_IRIS)

    events = [event for event, _ in recording_log]
    first_call = events.index("call")
    assert "source" not in events[first_call:]
    assert sum(_events(recording_log, "source")) == 150
    assert events.count("call") == FAST["max_epochs"] * _n_batches(150)


def test_users_knowledge_term_is_not_modified_by_fit(recording_log):
    term = RecordingTerm(scale=2.0)
    estimator = KnowledgeRegularizedClassifier(_mlp(), knowledge=term, lam=1.0, **FAST)

    first = estimator.fit(X_IRIS, Y_IRIS).predict_proba(X_IRIS)

    assert vars(term) == {"scale": 2.0}
    assert estimator.knowledge is term
    assert len(_events(recording_log, "prepare")) == 1
    np.testing.assert_array_equal(
        estimator.fit(X_IRIS, Y_IRIS).predict_proba(X_IRIS), first
    )


# --- no repeated work ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("knowledge", "feature_layers"),
    [("features", None), ("features", ["hidden"]), ("outputs", None), ("l2sp", None)],
    ids=["features", "feature-layers", "outputs", "l2sp"],
)
def test_source_network_runs_once_per_fit_whatever_the_number_of_epochs(
    knowledge, feature_layers
):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(600, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    torch.manual_seed(0)
    source = CountingNet()

    source_rows = {}
    for max_epochs in (2, 5):
        CountingNet.calls.clear()
        estimator = KnowledgeRegularizedClassifier(
            source,
            knowledge=knowledge,
            feature_layers=feature_layers,
            lam=1.0,
            max_epochs=max_epochs,
            batch_size=64,
            random_state=0,
        ).fit(X, y)
        trained = id(estimator.module_.body)
        # Every forward pass on another instance than the trained network is
        # a pass of (a copy of) the source network.
        source_rows[max_epochs] = [
            rows for instance, rows in CountingNet.calls if instance != trained
        ]
        training_rows = sum(
            rows for instance, rows in CountingNet.calls if instance == trained
        )
        assert training_rows >= max_epochs * 600

    assert source_rows[2] == source_rows[5]
    # "l2sp" needs no forward pass of the source; the others one over X.
    assert sum(source_rows[5]) == (0 if knowledge == "l2sp" else 600)
    assert len(source_rows[5]) <= math.ceil(600 / 64)


# --- lam is a plain hyper-parameter ------------------------------------------------


def test_grid_search_over_lam_fits_and_picks_one_of_the_grid():
    estimator = KnowledgeRegularizedClassifier(_mlp(), knowledge="l2sp", **FAST)

    search = GridSearchCV(estimator, {"lam": [0, 0.1, 1]}, cv=3).fit(X_IRIS, Y_IRIS)

    assert search.best_params_["lam"] in (0, 0.1, 1)
    assert search.best_estimator_.lam == search.best_params_["lam"]
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_score_ > 0.5


def test_clone_keeps_lam_and_every_knowledge_setting():
    estimator = KnowledgeRegularizedClassifier(
        _mlp(),
        knowledge="features",
        lam=0.37,
        beta=0.2,
        temperature=3.0,
        feature_layers=["0", "2"],
        **FAST,
    )

    cloned = clone(estimator)

    params = cloned.get_params(deep=False)
    expected = estimator.get_params(deep=False)
    assert params.keys() == expected.keys()
    for name in ("knowledge", "lam", "beta", "temperature", "feature_layers"):
        assert params[name] == expected[name], name
    assert cloned.source_module is not estimator.source_module
    for name, value in estimator.source_module.state_dict().items():
        assert torch.equal(cloned.source_module.state_dict()[name], value), name


def test_get_params_and_set_params_round_trip():
    estimator = KnowledgeRegularizedRegressor(_mlp(1), **FAST)
    other = KnowledgeRegularizedRegressor(
        _mlp(1), knowledge="outputs", lam=2.5, beta=0.5, temperature=1.5
    )

    assert estimator.set_params(lam=0.5) is estimator
    assert estimator.get_params()["lam"] == 0.5
    estimator.set_params(**other.get_params(deep=False))
    assert estimator.get_params(deep=False) == other.get_params(deep=False)


def test_parallel_grid_search_matches_a_sequential_one_and_leaves_the_source_intact():
    source = _train_mode_source()
    before = _snapshot(source)
    estimator = KnowledgeRegularizedClassifier(
        source, knowledge="outputs", **{**FAST, "max_epochs": 4}
    )
    grid = {"lam": [0, 0.1, 1]}

    sequential = GridSearchCV(estimator, grid, cv=3, scoring="neg_log_loss")
    parallel = GridSearchCV(estimator, grid, cv=3, scoring="neg_log_loss", n_jobs=2)
    sequential.fit(X_IRIS, Y_IRIS)
    parallel.fit(X_IRIS, Y_IRIS)

    np.testing.assert_allclose(
        parallel.cv_results_["mean_test_score"],
        sequential.cv_results_["mean_test_score"],
        rtol=1e-6,
    )
    assert parallel.best_params_ == sequential.best_params_
    _assert_unchanged(source, before)
    assert estimator.source_module is source


# --- the user's source network is never modified -------------------------------------


@pytest.mark.parametrize(
    ("knowledge", "feature_layers", "n_outputs"),
    [
        ("l2sp", None, 3),
        ("l2sp", None, 5),
        ("features", None, 3),
        ("features", ["0", "1"], 3),
        ("outputs", None, 3),
        ("outputs", None, 5),
    ],
    ids=[
        "l2sp",
        "l2sp-new-head",
        "features",
        "feature-layers",
        "outputs",
        "outputs-new-head",
    ],
)
def test_users_source_is_bit_identical_after_fit(knowledge, feature_layers, n_outputs):
    source = _train_mode_source(n_outputs)
    before = _snapshot(source)

    estimator = KnowledgeRegularizedClassifier(
        source,
        knowledge=knowledge,
        feature_layers=feature_layers,
        lam=1.0,
        beta=0.5,
        **{**FAST, "max_epochs": 3},
    ).fit(X_IRIS, Y_IRIS)
    estimator.predict_proba(X_IRIS)

    _assert_unchanged(source, before)
    assert estimator.source_module is source


# --- early stopping ----------------------------------------------------------------


def test_early_stopping_prepares_the_term_on_the_training_split_only(recording_log):
    estimator = KnowledgeRegularizedClassifier(
        _mlp(),
        knowledge=RecordingTerm(),
        lam=1.0,
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=3,
        **FAST,
    )
    _fit_to_the_end(estimator, X_IRIS, Y_IRIS)

    (context,) = _events(recording_log, "prepare")
    assert context.inputs.shape[0] == 150 - 30
    calls = _events(recording_log, "call")
    assert len(calls) == estimator.n_iter_ * _n_batches(120)
    assert all(calls)
    assert np.isfinite(estimator.history_[:, "valid_loss"]).all()


@pytest.mark.parametrize("knowledge", KNOWLEDGE)
def test_early_stopping_stops_a_knowledge_regularized_fit(knowledge, monkeypatch):
    prepared_rows = []
    map_batches = SourceContext.map_batches

    def recording_map_batches(self, function):
        prepared_rows.append(self.inputs.shape[0])
        return map_batches(self, function)

    monkeypatch.setattr(SourceContext, "map_batches", recording_map_batches)

    estimator = KnowledgeRegularizedClassifier(
        _mlp(),
        knowledge=knowledge,
        lam=1.0,
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=1,
        **{**FAST, "max_epochs": 40, "lr": 0.1},
    )
    _fit_to_the_end(estimator, X_IRIS, Y_IRIS)

    assert 1 <= estimator.n_iter_ < 40
    assert np.isfinite(estimator.history_[:, "valid_loss"]).all()
    assert _finite_losses(estimator)
    # The source quantities are computed on the training part only.
    assert prepared_rows == ([] if knowledge == "l2sp" else [120])
    assert _forward_hooks(estimator.module_) == []


# --- regression ----------------------------------------------------------------------


@pytest.mark.parametrize("knowledge", KNOWLEDGE)
@pytest.mark.parametrize("y", [Y_REG, Y_REG_2D], ids=["1d", "2d"])
def test_regressor_trains_with_each_knowledge_on_1d_and_2d_targets(knowledge, y):
    # head="auto" keeps the (untrained) source head only for y of its width
    # and only on evidence; "reuse" for one column exercises the reused head.
    estimator = KnowledgeRegularizedRegressor(
        _mlp(1),
        knowledge=knowledge,
        lam=0.1,
        beta=0.1,
        head="reuse" if y.ndim == 1 else "auto",
        **FAST,
    ).fit(X_REG, y)

    assert estimator.predict(X_REG).shape == y.shape
    assert estimator.head_choice_ == ("reuse" if y.ndim == 1 else "new")
    assert _finite_losses(estimator)
    assert estimator.score(X_REG, y) > 0.3


def test_regressor_output_distillation_keeps_the_predictions_near_the_source():
    # A single output has no softmax distribution: the term is a squared
    # difference, which must still pull the outputs toward the source's.
    source = _mlp(1)
    with torch.no_grad():
        source_outputs = source(torch.as_tensor(X_REG, dtype=torch.float32))
    source_outputs = source_outputs.numpy().ravel()

    def distance(lam):
        estimator = KnowledgeRegularizedRegressor(
            source, knowledge="outputs", lam=lam, head="reuse", **FAST
        ).fit(X_REG, Y_REG)
        return np.mean((estimator.predict(X_REG) - source_outputs) ** 2)

    assert distance(100.0) < distance(0.0) / 10


@pytest.mark.parametrize("knowledge", KNOWLEDGE)
def test_pickle_round_trip_of_a_fitted_regressor_predicts_identically(knowledge):
    estimator = KnowledgeRegularizedRegressor(
        _mlp(1), knowledge=knowledge, lam=0.1, **FAST
    ).fit(X_REG, Y_REG_2D)

    restored = pickle.loads(pickle.dumps(estimator))

    np.testing.assert_array_equal(restored.predict(X_REG), estimator.predict(X_REG))
    assert _forward_hooks(estimator.module_) == []

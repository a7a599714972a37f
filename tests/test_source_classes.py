"""``source_classes``: a reused head keeps the rows of the classes of ``y``.

FineTunedClassifier and KnowledgeRegularizedClassifier match the source
head's outputs to ``classes_`` by label when ``source_classes`` names the
label of each output, so a training set that lacks some source classes (a
cross-validation fold, a learning-curve point) still reuses the head. Heads
are checked with ``freeze="head"``, which keeps them at their initial values.
"""

import re

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from torch import nn

from sktransfer import (
    FineTunedClassifier,
    FineTunedRegressor,
    KnowledgeRegularizedClassifier,
    KnowledgeRegularizedRegressor,
    load_fitted,
    save_fitted,
)

CLASSIFIERS = [FineTunedClassifier, KnowledgeRegularizedClassifier]
FAST = {"max_epochs": 3, "lr": 0.01, "batch_size": 16, "random_state": 0}
N_SOURCE = 5


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


def _source(n_outputs=N_SOURCE, softmax=False):
    torch.manual_seed(0)
    layers = [nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, n_outputs)]
    return nn.Sequential(*layers, *([nn.Softmax(dim=1)] if softmax else []))


def _data(labels, n_per_class=8, seed=0):
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_per_class * len(labels), 4)).astype(np.float32)
    return X, np.repeat(labels, n_per_class)


@pytest.mark.parametrize("estimator_class", CLASSIFIERS)
@pytest.mark.parametrize(
    ("source_classes", "labels", "rows"),
    [
        ([0, 1, 2, 3, 4], [1, 3, 4], [1, 3, 4]),
        ([4, 3, 2, 1, 0], [1, 3, 4], [3, 1, 0]),
        (["a", "b", "c", "d", "e"], ["e", "b"], [1, 4]),
    ],
    ids=["in-order", "reversed", "strings"],
)
@pytest.mark.parametrize("head", ["reuse", "auto"])
def test_reused_head_starts_from_the_source_rows_of_the_classes_present(
    estimator_class, source_classes, labels, rows, head
):
    source = _source()
    X, y = _data(labels)
    estimator = estimator_class(
        source, head=head, source_classes=source_classes, freeze="head", **FAST
    ).fit(X, y)

    assert estimator.head_choice_ == "reuse"
    assert estimator.classes_.tolist() == sorted(labels)
    assert torch.equal(estimator.module_.head.weight, source[2].weight[rows])
    assert torch.equal(estimator.module_.head.bias, source[2].bias[rows])
    proba = estimator.predict_proba(X)
    assert proba.shape == (X.shape[0], len(labels))
    assert set(estimator.predict(X)) <= set(labels)


def test_the_subset_head_computes_the_source_logits_of_those_classes():
    source = _source()
    X, y = _data([0, 2, 3])
    estimator = FineTunedClassifier(
        source, head="reuse", source_classes=range(N_SOURCE), freeze="head", **FAST
    ).fit(X, y)
    module = estimator.module_.eval()
    with torch.no_grad():
        features = module.body(torch.from_numpy(X))
        expected = source[2](features)[:, [0, 2, 3]]
        assert torch.equal(module.head(features), expected)


def test_a_head_ending_in_softmax_keeps_it_on_the_selected_rows():
    source = _source(softmax=True)
    X, y = _data([1, 4])
    estimator = FineTunedClassifier(
        source, head="reuse", source_classes=range(N_SOURCE), freeze="head", **FAST
    ).fit(X, y)
    head = estimator.module_.head
    assert isinstance(head[1], nn.LogSoftmax)
    assert torch.equal(head[0].weight, source[2].weight[[1, 4]])


def test_source_classes_naming_every_class_in_order_changes_nothing():
    X, y = _data(range(N_SOURCE))
    plain = FineTunedClassifier(_source(), head="reuse", **FAST).fit(X, y)
    labelled = FineTunedClassifier(
        _source(), head="reuse", source_classes=np.arange(N_SOURCE), **FAST
    ).fit(X, y)
    np.testing.assert_array_equal(labelled.predict_proba(X), plain.predict_proba(X))


@pytest.mark.parametrize("estimator_class", CLASSIFIERS)
def test_cross_validation_with_folds_that_lack_a_class_reuses_the_head(
    estimator_class,
):
    # Unshuffled folds of label-sorted data: each training set lacks a class.
    X, y = _data(range(N_SOURCE), n_per_class=6)
    cv = KFold(n_splits=N_SOURCE)
    estimator = estimator_class(_source(), head="reuse", **FAST)
    with pytest.raises(ValueError, match="has 5 outputs, but the target needs 4"):
        cross_val_score(estimator, X, y, cv=cv, error_score="raise")

    estimator.set_params(source_classes=list(range(N_SOURCE)))
    scores = cross_val_score(estimator, X, y, cv=cv, error_score="raise")
    assert scores.shape == (N_SOURCE,)
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("estimator_class", CLASSIFIERS)
def test_reuse_refuses_classes_the_source_has_no_output_for_naming_them(
    estimator_class,
):
    X, y = _data([0, 1, 7, 9])
    estimator = estimator_class(
        _source(), head="reuse", source_classes=range(N_SOURCE), **FAST
    )
    with pytest.raises(ValueError, match=re.escape("[7, 9]")):
        estimator.fit(X, y)
    assert not hasattr(estimator, "classes_")


@pytest.mark.parametrize("estimator_class", CLASSIFIERS)
def test_auto_puts_a_new_head_when_a_class_has_no_source_output(estimator_class):
    X, y = _data([0, 1, 7])
    estimator = estimator_class(
        _source(), head="auto", source_classes=range(N_SOURCE), **FAST
    ).fit(X, y)
    assert estimator.head_choice_ == "new"
    assert estimator.module_.head.out_features == 3


@pytest.mark.parametrize("head", ["reuse", "auto", "new"])
@pytest.mark.parametrize(
    ("source_classes", "message"),
    [
        ([0, 1, 2, 3], "names 4 labels, but the source head '2' has 5 outputs"),
        ([[0, 1, 2, 3, 4]], "names 5 labels, but the source head '2' has 5"),
        ([0, 1, 2, 1, 0], re.escape("the labels [0, 1] more than once")),
    ],
    ids=["too-short", "2-D", "repeated"],
)
def test_source_classes_must_label_each_output_once(head, source_classes, message):
    X, y = _data([0, 1, 2])
    estimator = FineTunedClassifier(
        _source(), head=head, source_classes=source_classes, **FAST
    )
    with pytest.raises(ValueError, match=message):
        estimator.fit(X, y)


def test_a_head_whose_final_layer_is_not_linear_cannot_keep_rows():
    torch.manual_seed(0)
    source = nn.Sequential(  # (n, 1, 8, 8) -> (n, 5)
        nn.Conv2d(1, 2, kernel_size=3), nn.ReLU(), nn.Conv2d(2, 5, 6), nn.Flatten()
    )
    X = np.random.RandomState(0).normal(size=(12, 1, 8, 8)).astype(np.float32)
    labels = np.arange(12) % N_SOURCE
    estimator = FineTunedClassifier(
        source, head="reuse", source_classes=range(N_SOURCE), **FAST
    )
    # Every class, in order: the head is kept whole.
    assert estimator.fit(X, labels).head_choice_ == "reuse"
    with pytest.raises(ValueError, match="ends in a Conv2d"):
        estimator.fit(X, labels % 3)


def test_a_headless_source_refuses_source_classes():
    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(4, 6)

        def forward(self, inputs):
            return self.layer(inputs)

        def get_classifier(self):
            return nn.Identity()

    X, y = _data([0, 1])
    estimator = FineTunedClassifier(Encoder(), source_classes=[0, 1], **FAST)
    with pytest.raises(ValueError, match="source network has no head"):
        estimator.fit(X, y)


@pytest.mark.parametrize("estimator_class", CLASSIFIERS)
def test_clone_and_grid_search_keep_source_classes(estimator_class):
    source_classes = ["a", "b", "c", "d", "e"]
    estimator = estimator_class(_source(), source_classes=source_classes, **FAST)
    assert clone(estimator).get_params()["source_classes"] == source_classes

    X, y = _data(["a", "c", "d"], n_per_class=6)
    search = GridSearchCV(
        estimator, {"head": ["reuse", "new"]}, cv=2, error_score="raise"
    ).fit(X, y)
    assert search.best_estimator_.source_classes == source_classes
    assert search.best_estimator_.head_choice_ == search.best_params_["head"]


@pytest.mark.parametrize(
    "estimator_class", [FineTunedRegressor, KnowledgeRegularizedRegressor]
)
def test_regressors_do_not_take_source_classes(estimator_class):
    assert "source_classes" not in estimator_class(_source()).get_params()


def _head_distance(estimator, source, rows):
    return (estimator.module_.head.weight - source[2].weight[rows]).norm().item()


def test_l2sp_ties_the_kept_head_rows_to_their_source_values():
    # The body is frozen: only the head's tie to the source can make lam count.
    source = _source()
    X, y = _data([0, 3, 4])
    distances = [
        _head_distance(
            KnowledgeRegularizedClassifier(
                source,
                knowledge="l2sp",
                lam=lam,
                head="reuse",
                source_classes=range(N_SOURCE),
                freeze="body",
                **{**FAST, "max_epochs": 20, "lr": 0.05},
            ).fit(X, y),
            source,
            [0, 3, 4],
        )
        for lam in (0.0, 10.0)
    ]
    assert distances[1] < 0.5 * distances[0]


def test_output_distillation_keeps_the_source_distribution_over_the_classes():
    source = _source()
    X, y = _data([1, 2, 4])
    with torch.no_grad():
        logits = source(torch.from_numpy(X))[:, [1, 2, 4]]
    target = torch.softmax(logits, dim=1).numpy()

    def divergence(lam):
        proba = (
            KnowledgeRegularizedClassifier(
                source,
                knowledge="outputs",
                lam=lam,
                temperature=1.0,
                head="reuse",
                source_classes=range(N_SOURCE),
                **{**FAST, "max_epochs": 20, "lr": 0.05},
            )
            .fit(X, y)
            .predict_proba(X)
        )
        return (target * np.log(target / proba)).sum(axis=1).mean()

    assert divergence(10.0) < 0.5 * divergence(0.0)


@pytest.mark.parametrize("estimator_class", CLASSIFIERS)
@pytest.mark.parametrize(
    "source_classes",
    [np.array([4, 3, 2, 1, 0]), ["a", "b", "c", "d", "e"]],
    ids=["array", "strings"],
)
def test_an_estimator_fitted_with_source_classes_round_trips(
    estimator_class, source_classes, tmp_path
):
    labels = np.asarray(source_classes)[[0, 2, 3]]
    X, y = _data(labels)
    estimator = estimator_class(
        _source(), head="reuse", source_classes=source_classes, **FAST
    ).fit(X, y)
    save_fitted(estimator, tmp_path)
    # Which rows were kept is scratch of the fit: the parameter rebuilds it.
    assert not hasattr(estimator, "_head_rows")

    loaded = load_fitted(tmp_path, source_module=_source())

    np.testing.assert_array_equal(loaded.source_classes, source_classes)
    assert loaded.head_choice_ == "reuse"
    assert loaded.module_.head.out_features == 3
    np.testing.assert_array_equal(loaded.predict_proba(X), estimator.predict_proba(X))

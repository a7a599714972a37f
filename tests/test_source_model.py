"""SourceModelClassifier / SourceModelRegressor: the source used as it is."""

import copy

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.model_selection import StratifiedKFold, cross_val_score
from torch import nn

from sktransfer import (
    FineTunedClassifier,
    SourceModelClassifier,
    SourceModelRegressor,
    load_fitted,
    save_fitted,
)
from sktransfer.model_selection import compare_strategies, transfer_learning_curve

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_IRIS = ((X_IRIS - X_IRIS.mean(0)) / X_IRIS.std(0)).astype(np.float32)


@pytest.fixture(scope="module")
def iris_source():
    torch.manual_seed(0)
    architecture = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    return (
        FineTunedClassifier(
            architecture,
            head="reuse",
            reinitialize=True,
            max_epochs=40,
            lr=0.01,
            random_state=0,
        )
        .fit(X_IRIS, Y_IRIS)
        .module_.eval()
    )


def _source_probabilities(source, X):
    with torch.no_grad():
        return torch.softmax(source(torch.as_tensor(X)).double(), dim=1).numpy()


def test_predictions_are_the_source_softmax_and_nothing_is_trained(iris_source):
    before = copy.deepcopy(iris_source.state_dict())

    model = SourceModelClassifier(iris_source).fit(X_IRIS, Y_IRIS)

    np.testing.assert_allclose(
        model.predict_proba(X_IRIS),
        _source_probabilities(iris_source, X_IRIS),
        rtol=1e-6,
    )
    assert model.n_iter_ == 0
    for name, tensor in iris_source.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_source_classes_keep_the_outputs_of_the_classes_of_y(iris_source):
    # The source's outputs are labelled 10, 11, 12; y holds 12 and 10 only.
    keep = Y_IRIS != 1
    y = np.where(Y_IRIS == 0, 10, 12)[keep]

    model = SourceModelClassifier(iris_source, source_classes=[10, 11, 12]).fit(
        X_IRIS[keep], y
    )

    assert model.classes_.tolist() == [10, 12]
    expected = _source_probabilities(iris_source, X_IRIS[keep])[:, [0, 2]]
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict_proba(X_IRIS[keep]), expected, rtol=1e-6)


def test_a_class_without_a_source_output_is_refused_naming_it(iris_source):
    with pytest.raises(ValueError, match=r"no output for the classes \[3\]"):
        SourceModelClassifier(iris_source, source_classes=[0, 1, 2]).fit(
            X_IRIS, np.where(Y_IRIS == 2, 3, Y_IRIS)
        )


def test_a_width_that_does_not_match_asks_for_source_classes(iris_source):
    with pytest.raises(ValueError, match="source_classes"):
        SourceModelClassifier(iris_source).fit(X_IRIS[Y_IRIS < 2], Y_IRIS[Y_IRIS < 2])


class _Encoder(nn.Module):
    """A headless network, by timm's convention: its classifier is empty."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, 8)
        self.classifier = nn.Identity()

    def get_classifier(self):
        return self.classifier

    def forward(self, inputs):
        return self.classifier(self.layer(inputs))


def test_a_headless_source_is_refused():
    encoder = _Encoder()

    with pytest.raises(ValueError, match=r"no head|has none"):
        SourceModelClassifier(encoder).fit(X_IRIS, Y_IRIS)


def test_outputs_that_do_not_mean_the_classes_are_flagged(iris_source):
    with pytest.warns(UserWarning, match="may not mean these targets"):
        SourceModelClassifier(iris_source).fit(X_IRIS, (Y_IRIS + 1) % 3)


def test_a_final_softmax_is_read_as_probabilities(iris_source):
    with_softmax = nn.Sequential(iris_source.body, iris_source.head, nn.Softmax(dim=1))

    model = SourceModelClassifier(with_softmax).fit(X_IRIS, Y_IRIS)

    np.testing.assert_allclose(
        model.predict_proba(X_IRIS),
        _source_probabilities(iris_source, X_IRIS),
        rtol=1e-5,
    )


def test_it_is_a_strategy_and_a_curve_like_any_other(iris_source):
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    source_model = SourceModelClassifier(iris_source, source_classes=[0, 1, 2])

    scores = cross_val_score(source_model, X_IRIS, Y_IRIS, cv=cv)
    comparison = compare_strategies(
        {"source as is": source_model},
        X_IRIS,
        Y_IRIS,
        baseline=FineTunedClassifier(
            iris_source, reinitialize=True, max_epochs=5, random_state=0
        ),
        cv=cv,
        scoring="accuracy",
    )
    curve = transfer_learning_curve(
        {"source as is": source_model},
        X_IRIS,
        Y_IRIS,
        baseline="source as is",
        train_sizes=[6, 30],
        cv=cv,
        scoring="accuracy",
    )

    assert scores.mean() > 0.9
    assert "source as is" in comparison.scores
    # The source learns nothing: its score is the same at every size.
    np.testing.assert_allclose(
        curve.test_scores["source as is"][0], curve.test_scores["source as is"][1]
    )


def test_save_and_load_predict_the_same(iris_source, tmp_path):
    model = SourceModelClassifier(iris_source).fit(X_IRIS, Y_IRIS)

    save_fitted(model, tmp_path / "model")
    restored = load_fitted(tmp_path / "model", source_module=iris_source)

    np.testing.assert_array_equal(
        restored.predict_proba(X_IRIS), model.predict_proba(X_IRIS)
    )


def test_the_regressor_returns_the_source_outputs():
    torch.manual_seed(0)
    source = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    with torch.no_grad():
        y = source(torch.as_tensor(X_IRIS)).numpy()

    model = SourceModelRegressor(source).fit(X_IRIS, y)

    np.testing.assert_allclose(model.predict(X_IRIS), y, rtol=1e-6)
    assert model.score(X_IRIS, y) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="has 2 outputs"):
        SourceModelRegressor(source).fit(X_IRIS, y[:, 0])

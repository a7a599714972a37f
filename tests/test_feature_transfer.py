"""PretrainedFeatureTransformer: a frozen pretrained network as a transformer."""

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import torch
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.utils._param_validation import InvalidParameterError
from torch import nn

from sktransfer import PretrainedFeatureTransformer

X_IRIS, Y_IRIS = load_iris(return_X_y=True)


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def _conv2d_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 5, kernel_size=3),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(5, 2),
    )


def _conv1d_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(2, 3, kernel_size=3),
        nn.ReLU(),
        nn.AdaptiveMaxPool1d(1),
        nn.Flatten(),
        nn.Linear(3, 2),
    )


def _images(n=7):
    return np.random.RandomState(0).normal(size=(n, 3, 8, 8))


def _sequences(n=7):
    return np.random.RandomState(0).normal(size=(n, 2, 12))


def _run(module, X):
    with torch.no_grad():
        return module(torch.as_tensor(X, dtype=torch.float32)).numpy()


class NestedNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 6))
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


class ScalesInputInPlace(nn.Module):
    """A source that normalizes its input in place, as some forwards do."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.hidden = nn.Linear(4, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        x /= 10.0
        return self.head(torch.relu(self.hidden(x)))


# --- input validation ----------------------------------------------------------


def test_wrong_width_error_names_both_widths():
    X = np.zeros((10, 5))

    with pytest.raises(ValueError, match=r"X has 5 features.*expects 4 input features"):
        PretrainedFeatureTransformer(_mlp()).fit(X)


def test_conv_net_given_2d_input_names_the_dimensions():
    X = np.zeros((10, 3))

    with pytest.raises(ValueError, match=r"X has 2 dimensions.*expects 4-D input"):
        PretrainedFeatureTransformer(_conv2d_net()).fit(X)


def test_conv_net_given_wrong_channels_names_both_counts():
    X = np.zeros((10, 2, 8, 8))

    with pytest.raises(
        ValueError, match=r"X has 2 channels \(axis 1\).*expects 3 input channels"
    ):
        PretrainedFeatureTransformer(_conv2d_net()).fit(X)


def test_wrong_width_at_transform_is_refused():
    transformer = PretrainedFeatureTransformer(_mlp()).fit(X_IRIS)

    with pytest.raises(ValueError, match=r"X has 5 features.*expecting 4 features"):
        transformer.transform(np.zeros((3, 5)))


def test_other_image_size_at_transform_is_refused_when_flattening():
    transformer = PretrainedFeatureTransformer(_conv2d_net(), feature_layer="3")
    transformer.fit(_images())

    with pytest.raises(
        ValueError,
        match=r"samples of shape \(3, 6, 6\).*fitted on samples of shape \(3, 8, 8\)",
    ):
        transformer.transform(np.zeros((2, 3, 6, 6)))


@pytest.mark.parametrize(
    ("value", "message"),
    [(np.nan, "Input X contains NaN"), (np.inf, "Input X contains infinity")],
)
@pytest.mark.parametrize("method", ["fit", "transform"])
def test_non_finite_input_is_refused(value, message, method):
    X = X_IRIS.copy()
    X[3, 2] = value
    transformer = PretrainedFeatureTransformer(_mlp())
    if method == "transform":
        transformer.fit(X_IRIS)

    with pytest.raises(ValueError, match=message):
        getattr(transformer, method)(X)


def test_sparse_input_is_refused_with_a_clear_message():
    X = scipy.sparse.csr_matrix(X_IRIS)

    with pytest.raises(
        TypeError, match=r"Sparse data was passed.*dense data is required"
    ):
        PretrainedFeatureTransformer(_mlp()).fit(X)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_X_is_not_modified_even_by_a_network_that_changes_its_input(dtype):
    X = X_IRIS.astype(dtype)
    X_before = X.copy()

    transformer = PretrainedFeatureTransformer(ScalesInputInPlace(), batch_size=32)
    transformer.fit(X)
    transformer.transform(X)

    np.testing.assert_array_equal(X, X_before)


def test_batch_size_below_one_is_refused():
    # By the parameter constraints, as for every estimator (and at load time).
    with pytest.raises(
        ValueError, match=r"'batch_size' parameter .* must be an int in the range "
    ):
        PretrainedFeatureTransformer(_mlp(), batch_size=0).fit(X_IRIS)


# --- which features ----------------------------------------------------------


@pytest.mark.parametrize("feature_layer", [None, "body"])
def test_default_features_are_the_input_of_the_final_layer(feature_layer):
    source = _mlp()

    transformer = PretrainedFeatureTransformer(source, feature_layer=feature_layer)
    features = transformer.fit_transform(X_IRIS)

    assert transformer.feature_layer_ == "2"
    np.testing.assert_allclose(features, _run(source[:2], X_IRIS), rtol=1e-6, atol=1e-6)


def test_named_layer_gives_that_layers_output():
    source = _mlp()

    features = PretrainedFeatureTransformer(source, feature_layer="0").fit_transform(
        X_IRIS
    )

    np.testing.assert_allclose(features, _run(source[0], X_IRIS), rtol=1e-6, atol=1e-6)
    assert (features < 0).any()  # before the ReLU


@pytest.mark.parametrize(
    ("feature_layer", "expected_layer", "expected"),
    [
        ("body.1", "body.1", lambda net, x: torch.tanh(net.body[0](x))),
        ("body", "body", lambda net, x: net.body(x)),
        (None, "head", lambda net, x: torch.relu(net.body(x))),
    ],
)
def test_nested_layers_are_read_by_dotted_name(feature_layer, expected_layer, expected):
    source = NestedNet()

    transformer = PretrainedFeatureTransformer(source, feature_layer=feature_layer)
    features = transformer.fit_transform(X_IRIS)

    assert transformer.feature_layer_ == expected_layer
    with torch.no_grad():
        manual = expected(source, torch.as_tensor(X_IRIS, dtype=torch.float32))
    np.testing.assert_allclose(features, manual.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("make_source", "make_X", "feature_layer", "shape_after_layer"),
    [
        (_conv2d_net, _images, "3", (5, 6, 6)),
        (_conv1d_net, _sequences, "1", (3, 10)),
    ],
    ids=["conv2d", "conv1d"],
)
@pytest.mark.parametrize(
    ("pooling", "pool"),
    [
        ("flatten", lambda out: out.flatten(start_dim=1)),
        ("avg", lambda out: out.mean(dim=tuple(range(2, out.ndim)))),
        ("max", lambda out: out.amax(dim=tuple(range(2, out.ndim)))),
    ],
)
def test_pooling_makes_channels_first_outputs_2d(
    make_source, make_X, feature_layer, shape_after_layer, pooling, pool
):
    source, X = make_source(), make_X()
    n_layers = int(feature_layer) + 1
    with torch.no_grad():
        layer_output = source[:n_layers](torch.as_tensor(X, dtype=torch.float32))
    assert layer_output.shape[1:] == shape_after_layer

    features = PretrainedFeatureTransformer(
        source, feature_layer=feature_layer, pooling=pooling
    ).fit_transform(X)

    np.testing.assert_allclose(
        features, pool(layer_output).numpy(), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_pooling_leaves_2d_outputs_as_they_are(pooling):
    source = _mlp()

    features = PretrainedFeatureTransformer(source, pooling=pooling).fit_transform(
        X_IRIS
    )

    np.testing.assert_allclose(features, _run(source[:2], X_IRIS), rtol=1e-6, atol=1e-6)


def test_unknown_pooling_is_refused():
    transformer = PretrainedFeatureTransformer(_mlp(), pooling="mean")

    with pytest.raises(InvalidParameterError, match="'pooling' parameter"):
        transformer.fit(X_IRIS)


# --- batching ------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 3, 1000])
def test_batch_size_does_not_change_the_features(batch_size):
    source = _mlp()

    features = PretrainedFeatureTransformer(
        source, batch_size=batch_size
    ).fit_transform(X_IRIS)

    assert features.dtype == np.float32
    assert features.shape == (150, 8)
    np.testing.assert_allclose(features, _run(source[:2], X_IRIS), rtol=1e-5, atol=1e-6)


def test_network_sees_batches_of_at_most_batch_size_rows():
    source = _conv2d_net()
    X = _images(n=10)
    transformer = PretrainedFeatureTransformer(source, batch_size=3).fit(X)
    rows_per_call = []
    transformer.module_.register_forward_pre_hook(
        lambda module, args: rows_per_call.append(args[0].shape[0])
    )

    features = transformer.transform(X)

    assert rows_per_call == [3, 3, 3, 1]
    np.testing.assert_allclose(features, _run(source[:-1], X), rtol=1e-5, atol=1e-6)


def test_double_precision_network_gives_double_features():
    features = PretrainedFeatureTransformer(_mlp().double()).fit_transform(X_IRIS)

    assert features.dtype == np.float64


# --- pandas ----------------------------------------------------------------------


def _iris_frame():
    return pd.DataFrame(
        X_IRIS, columns=["a", "b", "c", "d"], index=np.arange(1000, 1150)
    )


def test_dataframe_input_records_feature_names():
    transformer = PretrainedFeatureTransformer(_mlp()).fit(_iris_frame())

    np.testing.assert_array_equal(transformer.feature_names_in_, ["a", "b", "c", "d"])
    np.testing.assert_array_equal(
        transformer.get_feature_names_out(),
        [f"pretrainedfeaturetransformer{i}" for i in range(8)],
    )


def test_pandas_output_has_feature_names_and_the_input_index():
    frame = _iris_frame()
    transformer = PretrainedFeatureTransformer(_mlp()).set_output(transform="pandas")

    features = transformer.fit(frame).transform(frame)

    assert isinstance(features, pd.DataFrame)
    assert list(features.columns) == [
        f"pretrainedfeaturetransformer{i}" for i in range(8)
    ]
    pd.testing.assert_index_equal(features.index, frame.index)
    np.testing.assert_allclose(
        features.to_numpy(), _run(_mlp()[:2], X_IRIS), rtol=1e-6, atol=1e-6
    )


# --- where users put it --------------------------------------------------------


def _feature_pipeline(source, memory=None):
    return make_pipeline(
        PretrainedFeatureTransformer(source),
        LogisticRegression(max_iter=1000),
        memory=memory,
    )


def test_pipeline_in_cross_val_score_learns_from_the_features():
    scores = cross_val_score(_feature_pipeline(_mlp()), X_IRIS, Y_IRIS, cv=3)

    assert scores.shape == (3,)
    assert scores.mean() > 0.8


def test_pipeline_in_grid_search_over_C():
    search = GridSearchCV(
        _feature_pipeline(_mlp()), {"logisticregression__C": [0.1, 1]}, cv=3
    ).fit(X_IRIS, Y_IRIS)

    assert search.best_params_["logisticregression__C"] in (0.1, 1)
    assert search.best_score_ > 0.8
    assert search.best_estimator_.predict(X_IRIS[:5]).shape == (5,)


class RowCountingNet(nn.Module):
    rows_seen = 0

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.hidden = nn.Linear(4, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        type(self).rows_seen += x.shape[0]
        return self.head(torch.relu(self.hidden(x)))


def _rows_seen_in_grid_search(memory):
    RowCountingNet.rows_seen = 0
    GridSearchCV(
        _feature_pipeline(RowCountingNet(), memory=memory),
        {"logisticregression__C": [0.1, 1, 10]},
        cv=StratifiedKFold(3),
        n_jobs=1,
    ).fit(X_IRIS, Y_IRIS)
    return RowCountingNet.rows_seen


def test_pipeline_memory_computes_training_features_once_per_fold(tmp_path):
    # n = 150 rows, 3 folds (100 train / 50 test rows each), 3 values of C.
    # A fit runs a 1-row probe, fit_transform then transforms the training
    # rows; scoring transforms the test rows. The final refit on all rows is
    # one more fit_transform: 1 + n.
    n, n_folds, n_candidates = 150, 3, 3
    n_train, n_test = n * (n_folds - 1) // n_folds, n // n_folds
    refit = 1 + n
    # Without memory every (candidate, fold) fits and scores:
    without_memory = n_candidates * n_folds * (1 + n_train + n_test) + refit
    # With memory the fitted transformer and training features of a fold are
    # computed for the first candidate and loaded from the cache for the other
    # two; the test rows are still transformed once per candidate.
    with_memory = n_folds * (1 + n_train) + n_candidates * n_folds * n_test + refit
    assert (without_memory, with_memory) == (1510, 904)

    assert _rows_seen_in_grid_search(memory=None) == without_memory
    memory = joblib.Memory(location=tmp_path, verbose=0)
    assert _rows_seen_in_grid_search(memory=memory) == with_memory


# --- the network is frozen -----------------------------------------------------


def test_features_are_deterministic_for_a_source_in_train_mode():
    torch.manual_seed(0)
    source = nn.Sequential(
        nn.Linear(4, 16),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(16, 3),
    )
    with torch.no_grad():  # give BatchNorm running statistics unlike batch ones
        source(torch.as_tensor(X_IRIS[:50], dtype=torch.float32))
    source.train()

    transformer = PretrainedFeatureTransformer(source).fit(X_IRIS)
    first, second = transformer.transform(X_IRIS), transformer.transform(X_IRIS)

    np.testing.assert_array_equal(first, second)
    assert not any(module.training for module in transformer.module_.modules())
    assert not any(p.requires_grad for p in transformer.module_.parameters())
    np.testing.assert_allclose(
        first, _run(source.eval()[:4], X_IRIS), rtol=1e-5, atol=1e-6
    )

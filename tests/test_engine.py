"""The engine on skorch: its speed-ups change nothing, and skorch's options pass.

The engine overrides four methods of skorch's loop for speed (see
``sktransfer/_engine.py``). The first test runs one fit through them and one
through skorch's originals: the same weights and batch losses, or an
incompatible skorch release (a changed loop, new bookkeeping) fails it.
"""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV
from skorch import NeuralNet
from skorch.callbacks import Callback, LRScheduler
from torch import nn
from torch.utils.data import TensorDataset

from sktransfer import FineTunedClassifier, FineTunedRegressor
from sktransfer._engine import TransferNet

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_IRIS = ((X_IRIS - X_IRIS.mean(0)) / X_IRIS.std(0)).astype(np.float32)
FAST = {"max_epochs": 4, "lr": 0.02, "batch_size": 16, "random_state": 0}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


def _source():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


def _batch_losses(estimator):
    return [
        batch["train_loss"]
        for epoch in estimator.history_
        for batch in epoch["batches"]
    ]


@pytest.mark.parametrize("verbose", [0, 1])
def test_the_engines_speed_ups_give_what_skorchs_own_loop_gives(
    monkeypatch, verbose, capsys
):
    fast = FineTunedClassifier(_source(), verbose=verbose, **FAST).fit(X_IRIS, Y_IRIS)
    for name in ("notify", "run_single_epoch", "train_step", "_set_training"):
        monkeypatch.setattr(TransferNet, name, getattr(NeuralNet, name))
    plain = FineTunedClassifier(_source(), verbose=verbose, **FAST).fit(X_IRIS, Y_IRIS)

    for (name, fast_value), plain_value in zip(
        fast.module_.state_dict().items(),
        plain.module_.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(fast_value, plain_value), name
    assert _batch_losses(fast) == pytest.approx(_batch_losses(plain))
    assert len(fast.history_) == len(plain.history_) == FAST["max_epochs"]
    if verbose:
        # The epoch table's columns are skorch's own.
        assert fast.history_[-1].keys() == plain.history_[-1].keys()


class _Recorder(Callback):
    def __init__(self):
        self.epochs = 0

    def on_epoch_end(self, net, **kwargs):
        self.epochs += 1


def test_callbacks_are_skorchs_and_the_users_objects_stay_as_they_were():
    recorder = _Recorder()
    scheduler = LRScheduler(policy="StepLR", step_size=1, gamma=0.5)

    estimator = FineTunedClassifier(
        _source(), callbacks=[recorder, ("halving", scheduler)], **FAST
    ).fit(X_IRIS, Y_IRIS)

    callbacks = dict(estimator.net_.callbacks_)
    assert callbacks["_Recorder"].epochs == FAST["max_epochs"]
    assert recorder.epochs == 0
    learning_rate = estimator.net_.optimizer_.param_groups[0]["lr"]
    assert learning_rate == pytest.approx(FAST["lr"] * 0.5 ** FAST["max_epochs"])


def test_net_params_reach_the_skorch_net_and_one_entry_can_be_set():
    estimator = FineTunedClassifier(
        _source(), net_params={"iterator_valid__num_workers": 0}, **FAST
    )

    estimator.set_params(net_params__iterator_train__num_workers=0)

    assert estimator.net_params == {
        "iterator_valid__num_workers": 0,
        "iterator_train__num_workers": 0,
    }
    estimator.fit(X_IRIS, Y_IRIS)
    assert estimator.net_.iterator_train__num_workers == 0


def test_a_net_param_skorch_does_not_know_is_refused_by_skorch():
    estimator = FineTunedClassifier(
        _source(), net_params={"iterator_train__no_such_option": 1}, **FAST
    )

    with pytest.raises(TypeError):
        estimator.fit(X_IRIS, Y_IRIS)


def test_net_params_are_grid_searchable():
    search = GridSearchCV(
        FineTunedClassifier(_source(), **FAST),
        {"net_params__iterator_train__num_workers": [0]},
        cv=2,
    ).fit(X_IRIS, Y_IRIS)

    assert search.best_estimator_.net_params == {"iterator_train__num_workers": 0}


def test_augmentation_changes_training_batches_only():
    seen = []

    def add_noise(inputs):
        seen.append(inputs.shape[0])
        return inputs + 0.1 * torch.randn_like(inputs)

    augmented = FineTunedClassifier(_source(), augmentation=add_noise, **FAST)
    augmented.fit(X_IRIS, Y_IRIS)
    plain = FineTunedClassifier(_source(), **FAST).fit(X_IRIS, Y_IRIS)
    n_training_batches = sum(len(epoch["batches"]) for epoch in augmented.history_)

    assert len(seen) == n_training_batches
    augmented.predict(X_IRIS)
    assert len(seen) == n_training_batches
    assert not np.allclose(augmented.predict_proba(X_IRIS), plain.predict_proba(X_IRIS))


def test_a_random_augmentation_is_seeded_with_the_fit():
    def add_noise(inputs):
        return inputs + 0.1 * torch.randn_like(inputs)

    first, second = (
        FineTunedClassifier(_source(), augmentation=add_noise, **FAST).fit(
            X_IRIS, Y_IRIS
        )
        for _ in range(2)
    )
    np.testing.assert_array_equal(
        first.predict_proba(X_IRIS), second.predict_proba(X_IRIS)
    )


def test_early_stopping_reports_the_held_out_score_in_the_epoch_table(capsys):
    estimator = FineTunedClassifier(
        _source(), early_stopping=True, verbose=1, **FAST
    ).fit(X_IRIS, Y_IRIS)

    assert all(0.0 <= epoch["valid_acc"] <= 1.0 for epoch in estimator.history_)
    assert "valid_acc" in capsys.readouterr().out


def test_the_regressor_reports_r2_on_the_held_out_part():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 4)).astype(np.float32)
    y = X @ np.array([1.0, -1.0, 0.5, 0.0])

    estimator = FineTunedRegressor(
        _source(), head="new", early_stopping=True, verbose=1, **FAST
    ).fit(X, y)

    assert all(np.isfinite(epoch["valid_r2"]) for epoch in estimator.history_)


# --- a torch Dataset as X --------------------------------------------------------


def _iris_dataset():
    return TensorDataset(torch.as_tensor(X_IRIS), torch.as_tensor(Y_IRIS))


def test_a_dataset_of_pairs_fits_and_predicts_like_arrays():
    from_dataset = FineTunedClassifier(_source(), **{**FAST, "max_epochs": 30})
    from_dataset.fit(_iris_dataset(), None)
    from_arrays = FineTunedClassifier(_source(), **{**FAST, "max_epochs": 30})
    from_arrays.fit(X_IRIS, Y_IRIS)

    assert from_dataset.classes_.tolist() == [0, 1, 2]
    assert from_dataset.n_features_in_ == 4
    predicted = from_dataset.predict(_iris_dataset())
    assert predicted.shape == (150,)
    np.testing.assert_array_equal(predicted, from_dataset.predict(X_IRIS))
    # Another batch order, the same learning.
    assert (
        abs(from_dataset.score(X_IRIS, Y_IRIS) - from_arrays.score(X_IRIS, Y_IRIS))
        < 0.05
    )


def test_a_dataset_takes_its_targets_from_its_samples_not_from_y():
    with pytest.raises(ValueError, match=r"fit\(dataset, None\)"):
        FineTunedClassifier(_source(), **FAST).fit(_iris_dataset(), Y_IRIS)


def test_a_dataset_with_early_stopping_and_sample_weight_trains():
    estimator = FineTunedClassifier(_source(), early_stopping=True, **FAST)

    estimator.fit(_iris_dataset(), None, sample_weight=np.ones(150))

    assert estimator.predict_proba(_iris_dataset()).shape == (150, 3)

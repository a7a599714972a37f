"""Behaviour shared by every sktransfer estimator."""

import contextlib
import copy
import io

import torch
from torch import nn

__all__ = ["SourceModuleMixin", "rolled_back_on_failure"]


@contextlib.contextmanager
def rolled_back_on_failure(estimator):
    """Restore the estimator's attributes when the block fails or is interrupted.

    A fit that fails leaves the estimator as it was (unfitted, or fitted
    before), never half-updated.
    """
    state_before = dict(estimator.__dict__)
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(state_before)
        raise


class _ModuleBytes:
    """A module serialized with ``torch.save``, as it travels inside a pickle."""

    def __init__(self, module):
        buffer = io.BytesIO()
        torch.save(module, buffer)
        self.payload = buffer.getvalue()

    def load(self):
        # Unpickling an estimator already runs arbitrary code, and these bytes
        # only ever come from ``__getstate__`` below: loading them in full is no
        # wider a trust boundary. Weights *files* go through
        # ``load_state_dict_file``, which refuses anything but tensors.
        return torch.load(io.BytesIO(self.payload), weights_only=False)


class SourceModuleMixin:
    """Pickle ``nn.Module`` parameters deterministically.

    torch pickles a tensor's storage under its memory address, so two equal
    copies of a module pickle to different bytes. joblib hashes estimators by
    pickling them, so ``Pipeline(memory=...)`` would never find a cached step:
    every ``clone`` of the estimator holds a copy of the source module at a new
    address. ``torch.save`` numbers storages instead, which makes equal modules
    serialize to equal bytes.
    """

    def __sklearn_clone__(self):
        # sklearn's clone rebuilds a skorch net from its parameters, which
        # drops its fitted module: the pretrained source would be lost in
        # cross_val_score and GridSearchCV. Deep-copy such a net instead.
        from sklearn.base import clone
        from skorch import NeuralNet

        params = self.get_params(deep=False)
        for name, value in params.items():
            if isinstance(value, NeuralNet):
                params[name] = copy.deepcopy(value)
            else:
                params[name] = clone(value, safe=False)
        return type(self)(**params)

    def __getstate__(self):
        # object.__getstate__ returns the live __dict__: copy before replacing.
        state = dict(super().__getstate__())
        for name, value in self.get_params(deep=False).items():
            if isinstance(value, nn.Module):
                state[name] = _ModuleBytes(value)
        return state

    def __setstate__(self, state):
        state = {
            name: value.load() if isinstance(value, _ModuleBytes) else value
            for name, value in state.items()
        }
        super().__setstate__(state)

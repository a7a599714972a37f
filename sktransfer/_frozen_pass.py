"""The frozen source network's features and outputs on the training inputs.

Deciding whether the source head can be reused, and fitting a new head on the
source features before the body moves (linear probe), both read the *frozen*
source network on the training inputs. One batched, gradient-free pass gives
both; :class:`~sktransfer.AutoTransferClassifier` computes it once for all its
candidates and cross-validation splits and hands each fit the rows it needs.
"""

import numpy as np
import torch

from ._validation import to_batch_tensor

__all__ = ["FrozenSourceOutputs", "array_batches"]


def array_batches(X, input_dtype, device, batch_size):
    """Tensors of ``batch_size`` rows of the array ``X``, on ``device``."""
    for start in range(0, X.shape[0], batch_size):
        yield to_batch_tensor(X[start : start + batch_size], input_dtype, device)


class FrozenSourceOutputs:
    """Source features (``body(x)``) and outputs (``head(body(x))``) per row.

    Parameters
    ----------
    features : ndarray of shape (n_samples, ...)
        The output of the source body, the input of its head.
    outputs : ndarray of shape (n_samples, n_source_outputs) or None
        The source head's logits (a final ``Softmax`` already turned into
        log-probabilities); None for a source without a head, or a head that
        does not give one vector per sample.
    """

    def __init__(self, features, outputs):
        self.features = features
        self.outputs = outputs

    @classmethod
    def compute(cls, body, head, batches, n_rows):
        """Run ``body`` and ``head`` over ``batches`` of inputs, in eval mode.

        ``batches`` yields input tensors on the network's device, in row order
        (``n_rows`` in all). Memory is bounded by one batch of activations
        plus what is kept. Training modes are restored afterwards.
        """
        modes = [(module, module.training) for module in (body, head)]
        body.eval()
        head.eval()
        features = outputs = None
        head_fits = True
        start = 0
        try:
            with torch.inference_mode():
                for batch in batches:
                    stop = start + batch.shape[0]
                    batch_features = body(batch)
                    if features is None:
                        features = np.empty(
                            (n_rows, *batch_features.shape[1:]),
                            dtype=_numpy_dtype(batch_features.dtype),
                        )
                    features[start:stop] = batch_features.cpu().numpy()
                    if head_fits:
                        try:
                            batch_outputs = head(batch_features)
                        except (RuntimeError, ValueError, TypeError):
                            batch_outputs = None
                        head_fits = (
                            isinstance(batch_outputs, torch.Tensor)
                            and batch_outputs.ndim == 2
                        )
                    if head_fits:
                        if outputs is None:
                            outputs = np.empty(
                                (n_rows, batch_outputs.shape[1]),
                                dtype=_numpy_dtype(batch_outputs.dtype),
                            )
                        outputs[start:stop] = batch_outputs.cpu().numpy()
                    start = stop
        finally:
            for module, mode in modes:
                module.train(mode)
        return cls(features, outputs if head_fits else None)

    def take(self, rows):
        """The same quantities for the rows ``rows`` only."""
        return FrozenSourceOutputs(
            self.features[rows], None if self.outputs is None else self.outputs[rows]
        )

    def __len__(self):
        return self.features.shape[0]


def _numpy_dtype(torch_dtype):
    return torch.empty((), dtype=torch_dtype).numpy().dtype

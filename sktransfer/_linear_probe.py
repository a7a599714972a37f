"""Train a new head on the frozen source features before the body moves.

A freshly initialised head sends random gradients into the pretrained body in
the first steps of fine-tuning, and with little data the body never recovers
what they destroyed. Fitting the head first, as a linear model on the frozen
body's features, then fine-tuning everything (LP-FT) keeps the features the
source learned (Kumar et al., "Fine-Tuning can Distort Pretrained Features
and Underperform Out-of-Distribution", ICLR 2022).

The linear model is scikit-learn's: a logistic regression (classification)
or a ridge regression (regression) on centred features divided by one common
scale, so that its regularisation means the same whatever the scale of the
source's features. The centring and scaling are folded into the head's
weights afterwards: the network computes exactly the probe's scores. One
common scale, not one per feature: dividing each feature by its own spread
would give features that barely vary (nearly dead units) the largest weights,
and through them the largest gradients into the body once it trains.
"""

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, Ridge
from torch import nn

__all__ = ["PROBE_ALPHA", "PROBE_C", "fit_linear_probe", "probe_layer"]

# Inverse regularisation of the logistic-regression probe, on scaled features
# (scikit-learn's default).
PROBE_C = 1.0
# Regularisation of the ridge probe, on scaled features.
PROBE_ALPHA = 1.0
# A class absent from the training rows gets no weights and a bias this far
# below the lowest bias of the classes present: it is never predicted until
# fine-tuning sees it.
_ABSENT_CLASS_MARGIN = 10.0


def probe_layer(head):
    """The ``nn.Linear`` of a new head (``Linear`` or ``Flatten → Linear``)."""
    if isinstance(head, nn.Linear):
        return head
    linear_layers = [layer for layer in head.modules() if isinstance(layer, nn.Linear)]
    if len(linear_layers) != 1:
        raise TypeError(
            "A linear probe initialises a head with exactly one Linear layer; "
            f"got {type(head).__name__}."
        )
    return linear_layers[0]


def fit_linear_probe(head, features, y, sample_weight, task):
    """Set the weights of ``head`` to a linear model fitted on ``features``.

    Parameters
    ----------
    head : nn.Module
        A new head: ``nn.Linear``, or ``nn.Sequential(nn.Flatten(), nn.Linear)``
        for n-D features. Its weights are overwritten.
    features : ndarray of shape (n_samples, ...)
        The frozen body's features on the training rows.
    y : ndarray
        Encoded class labels ``0 .. n_outputs - 1`` (classification), or
        targets of shape (n_samples, n_outputs) (regression).
    sample_weight : ndarray of shape (n_samples,)
    task : {"classification", "regression"}

    Returns
    -------
    fitted : bool
        False when the rows hold a single class, which no probe can separate,
        or when the features are not finite (inputs that overflow the source
        network: training then stops on its first batch, naming them); the
        head then keeps its initial weights.
    """
    linear = probe_layer(head)
    features = np.asarray(features, dtype=np.float64).reshape(features.shape[0], -1)
    if not np.isfinite(features).all():
        return False
    mean, scale = _center_and_scale(features, sample_weight)
    standardized = (features - mean) / scale
    if task == "classification":
        present = np.unique(y)
        if present.shape[0] < 2:
            return False
        model = LogisticRegression(C=PROBE_C, max_iter=1000)
        model.fit(standardized, y, sample_weight=sample_weight)
        weight, bias = _class_scores(model, linear.out_features)
    else:
        model = Ridge(alpha=PROBE_ALPHA)
        model.fit(standardized, y, sample_weight=sample_weight)
        weight = np.atleast_2d(model.coef_)
        bias = np.atleast_1d(model.intercept_)
    # scores = W (f − μ) / s + b  =  (W / s) f + (b − (W / s) μ)
    weight = weight / scale
    bias = bias - weight @ mean
    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(weight, dtype=linear.weight.dtype))
        if linear.bias is not None:
            linear.bias.copy_(torch.as_tensor(bias, dtype=linear.bias.dtype))
    return True


def _center_and_scale(features, sample_weight):
    """Weighted column means, and the root mean square of centred values."""
    total = sample_weight.sum()
    weight = (
        np.full(features.shape[0], 1.0 / features.shape[0])
        if total <= 0
        else sample_weight / total
    )
    mean = weight @ features
    scale = float(np.sqrt(weight @ np.square(features - mean).mean(axis=1)))
    return mean, (scale if scale > 0 else 1.0)


def _class_scores(model, n_classes):
    """One row of weights and one bias per class, from a fitted logistic model."""
    n_features = model.coef_.shape[1]
    weight = np.zeros((n_classes, n_features))
    bias = np.zeros(n_classes)
    present = model.classes_
    if present.shape[0] == 2:
        # A binary model scores the second class against the first; split
        # the score symmetrically: the softmax of (−s/2, s/2) is sigmoid(s).
        weight[present[0]], weight[present[1]] = -model.coef_[0] / 2, model.coef_[0] / 2
        bias[present[0]] = -model.intercept_[0] / 2
        bias[present[1]] = model.intercept_[0] / 2
    else:
        weight[present] = model.coef_
        bias[present] = model.intercept_
    absent = np.setdiff1d(np.arange(n_classes), present)
    if absent.size:
        bias[absent] = bias[present].min() - _ABSENT_CLASS_MARGIN
    return weight, bias

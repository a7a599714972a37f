"""``source_classes``: reuse a source head whose outputs are labelled.

Without labels, a reused head's output ``i`` is taken to mean ``classes_[i]``,
so the target must have exactly the source's classes. With the label of each
source output, the target keeps the rows of the head that score its own
classes, in ``classes_`` order: a training subset that lacks some of the
source's classes (a small cross-validation fold, a learning-curve point) still
reuses the head.
"""

import numpy as np
import torch
from torch import nn

__all__ = [
    "SourceClassesMixin",
    "check_source_classes",
    "rows_of_classes",
    "select_head_rows",
]


def check_source_classes(source_classes, n_source_outputs, where):
    """The labels of the source outputs, as a list; refused when they cannot be.

    The one check of ``source_classes``, for every estimator that takes it:
    one label per output, in output order, each label once.

    Parameters
    ----------
    source_classes : array-like
        What the user passed.
    n_source_outputs : int or None
        The width of the source's outputs; None when they are not one vector
        per sample.
    where : str
        Names the outputs in messages, e.g. ``"the source head '2'"``.
    """
    labels = np.asarray(source_classes)
    if n_source_outputs is None:
        raise ValueError(
            f"source_classes needs one output per class, but {where} does not "
            "give one vector of scores per sample."
        )
    if labels.ndim != 1 or labels.shape[0] != n_source_outputs:
        raise ValueError(
            f"source_classes names {labels.size} labels, but {where} has "
            f"{n_source_outputs} outputs: give one label per output, in output "
            "order."
        )
    labels = labels.tolist()
    if len(set(labels)) != len(labels):
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        raise ValueError(
            f"source_classes holds the labels {repeated} more than once; "
            "each source output has its own label."
        )
    return labels


def rows_of_classes(labels, classes):
    """``(rows, missing)``: the source outputs of ``classes``, in their order.

    ``rows`` is None when some class has no output (then ``missing`` lists
    them), or when the outputs are exactly ``classes`` in order (nothing to
    select).
    """
    lookup = {label: row for row, label in enumerate(labels)}
    missing = [label for label in classes if label not in lookup]
    if missing:
        return None, missing
    rows = [lookup[label] for label in classes]
    return (None if rows == list(range(len(labels))) else rows), []


class SourceClassesMixin:
    """Which rows of the source head score the target's classes, by label.

    For the classifiers with the parameter ``source_classes``.
    """

    def _source_rows(self, head_name, source_width, source_shape):
        """``(rows, missing)`` of the source head for ``classes_``.

        ``rows`` lists, in ``classes_`` order, the outputs a reused head
        keeps (None: every output, matched by position); ``missing`` the
        classes the source has no output for.
        """
        if self.source_classes is None:
            return None, []
        if head_name is None:
            raise ValueError(
                "source_classes names the labels of the source head's outputs, "
                "but the source network has no head (its output is a feature "
                "vector). Pass source_classes=None."
            )
        labels = check_source_classes(
            self.source_classes, source_width, f"the source head {head_name!r}"
        )
        return rows_of_classes(labels, self.classes_.tolist())


def select_head_rows(head, rows, head_name):
    """``head`` scoring only the outputs ``rows``, in that order.

    The head's final ``Linear`` layer is replaced by one that holds the
    selected rows of its weight and bias (copies, with the same
    ``requires_grad``); parameter-free layers after it (a ``LogSoftmax``, a
    dropout) are kept and act on the selected outputs.
    """
    if isinstance(head, nn.Linear):
        return _linear_rows(head, rows)
    if isinstance(head, nn.Sequential):
        layers = list(head)
        with_parameters = [
            index
            for index, layer in enumerate(layers)
            if next(layer.parameters(), None) is not None
        ]
        if with_parameters and isinstance(layers[with_parameters[-1]], nn.Linear):
            last = with_parameters[-1]
            layers[last] = _linear_rows(layers[last], rows)
            return nn.Sequential(*layers)
    final = (
        [layer for layer in head if next(layer.parameters(), None) is not None][-1:]
        if isinstance(head, nn.Sequential)
        else [head]
    )
    described = type(final[0]).__name__ if final else type(head).__name__
    raise ValueError(
        f"source_classes keeps the rows of the source head's classes, which "
        f"needs a head whose final layer is a torch.nn.Linear; the source head "
        f"{head_name!r} ends in a {described}. Use head='new', or "
        "source_classes=None with a target that has every source class."
    )


def _linear_rows(linear, rows):
    index = torch.as_tensor(rows, device=linear.weight.device)
    selected = torch.nn.utils.skip_init(
        nn.Linear,
        linear.in_features,
        len(rows),
        bias=linear.bias is not None,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
    )
    selected.weight = nn.Parameter(
        linear.weight.detach().index_select(0, index).clone(),
        requires_grad=linear.weight.requires_grad,
    )
    if linear.bias is not None:
        selected.bias = nn.Parameter(
            linear.bias.detach().index_select(0, index).clone(),
            requires_grad=linear.bias.requires_grad,
        )
    return selected

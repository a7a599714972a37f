"""Declared fitted attributes: what ``save_fitted`` writes, ``load_fitted`` accepts.

Each estimator class declares, in a class attribute ``_saved_attributes``,
the fitted attributes it keeps besides its network (which is rebuilt), each
with its *kind*::

    _saved_attributes = {
        "classes_": LABELS,
        "head_choice_": one_of("reuse", "new"),
    }

A class declares only the attributes it adds: the declarations of its
bases are merged in (:func:`saved_attributes`), so adding a fitted attribute
is one line next to the code that sets it. ``save_fitted`` refuses an
estimator holding an undeclared attribute (so that none is silently
dropped), and ``load_fitted`` refuses a file naming an undeclared attribute
(a method name, a parameter) or a value not of its declared kind.
"""

from numbers import Integral

import numpy as np
import torch

__all__ = [
    "FEATURE_NAMES",
    "LABELS",
    "SHAPE",
    "TEXT",
    "TORCH_DTYPE",
    "AttributeKind",
    "check_saved_attributes",
    "count",
    "one_of",
    "optional",
    "saved_attributes",
]


class AttributeKind:
    """What values a fitted attribute may hold.

    Parameters
    ----------
    description : str
        Says the kind in an error message ("an int >= 1").
    accepts : callable
        ``accepts(value) -> bool``.
    required : bool, default=True
        Whether every fitted estimator of the class has the attribute.
    """

    def __init__(self, description, accepts, required=True):
        self.description = description
        self.accepts = accepts
        self.required = required


def count(minimum=0):
    """An int (not a bool) of at least ``minimum``."""
    return AttributeKind(
        f"an int >= {minimum}",
        lambda value: _is_int(value) and value >= minimum,
    )


def one_of(*options):
    """One of ``options`` (compared by equality and type)."""
    return AttributeKind(
        f"one of {list(options)}",
        lambda value: any(
            type(value) is type(option) and value == option for option in options
        ),
    )


def optional(kind):
    """``kind``, for an attribute that only some fits set."""
    return AttributeKind(kind.description, kind.accepts, required=False)


def _is_int(value):
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_labels(value):
    return (
        isinstance(value, np.ndarray)
        and value.ndim == 1
        and value.shape[0] >= 1
        and (
            value.dtype.kind in "biufU"
            or (
                value.dtype.kind == "O"
                and all(isinstance(item, (str, int, float)) for item in value)
            )
        )
    )


def _is_feature_names(value):
    return (
        isinstance(value, np.ndarray)
        and value.ndim == 1
        and all(isinstance(item, str) for item in value)
    )


def _is_shape(value):
    return isinstance(value, tuple) and all(
        _is_int(size) and size >= 1 for size in value
    )


#: Class labels: a non-empty 1-d array of strings or numbers.
LABELS = AttributeKind(
    "a non-empty 1-d array of class labels (strings or numbers)", _is_labels
)
#: Column names: a 1-d array of strings (only set for DataFrame input).
FEATURE_NAMES = AttributeKind(
    "a 1-d array of column names (strings)", _is_feature_names, required=False
)
#: The shape of one sample: a tuple of positive ints.
SHAPE = AttributeKind("a tuple of positive ints", _is_shape)
#: A torch dtype a network reads (floating point, or int64 token ids).
TORCH_DTYPE = AttributeKind(
    "a floating-point torch dtype or torch.int64",
    lambda value: (
        isinstance(value, torch.dtype)
        and (value.is_floating_point or value == torch.int64)
    ),
)
#: Any string.
TEXT = AttributeKind("a string", lambda value: isinstance(value, str))


def saved_attributes(estimator_class):
    """The declared fitted attributes of ``estimator_class``, bases included.

    Returns
    -------
    declared : dict of str to AttributeKind
    """
    declared = {}
    for klass in reversed(estimator_class.__mro__):
        declared.update(vars(klass).get("_saved_attributes", {}))
    return declared


def check_saved_attributes(values, estimator_class, source="params.json"):
    """``values``, once each is declared by the class and of its declared kind.

    Parameters
    ----------
    values : dict of str to object
        Fitted attributes read from a file.
    estimator_class : type
    source : str
        Names the file in messages.

    Returns
    -------
    values : dict of str to object
    """
    declared = saved_attributes(estimator_class)
    attributes = {}
    for name, value in values.items():
        kind = declared.get(name)
        if kind is None:
            raise ValueError(
                f"{source} holds a fitted attribute {name!r}, which "
                f"{estimator_class.__name__} does not have (it declares "
                f"{sorted(declared)})."
            )
        if not kind.accepts(value):
            raise ValueError(
                f"{source} holds the fitted attribute {name!r} = "
                f"{_summary(value)}, but it must be {kind.description}."
            )
        attributes[name] = value
    missing = [
        name
        for name, kind in declared.items()
        if kind.required and name not in attributes
    ]
    if missing:
        raise ValueError(
            f"{source} lacks the fitted attributes {missing} of "
            f"{estimator_class.__name__}; the file was modified or is incomplete."
        )
    return attributes


def _summary(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

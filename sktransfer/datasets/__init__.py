"""Small offline source → target tasks, and a helper to pretrain a source."""

from ._digits import load_digits_transfer
from ._mnist1d import load_mnist1d_transfer
from ._pretrain import pretrain_source_network

__all__ = ["load_digits_transfer", "load_mnist1d_transfer", "pretrain_source_network"]

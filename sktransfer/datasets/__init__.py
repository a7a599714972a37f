"""Small offline source → target tasks, and a helper to pretrain a source."""

from ._digits import load_digits_transfer
from ._pretrain import pretrain_source_network

__all__ = ["load_digits_transfer", "pretrain_source_network"]

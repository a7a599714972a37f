"""Seeding: every fit draws from its own generators, never from the user's."""

import contextlib

import numpy as np
import torch
from sklearn.utils import check_random_state

__all__ = ["draw_seed", "seeded"]


@contextlib.contextmanager
def seeded(seed, device):
    """Seed torch for one fit, then restore the global generator.

    Weight initialisation and dropout draw from torch's global generator;
    forking it keeps the user's own random stream untouched.
    """
    devices = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def draw_seed(random_state):
    """An int seed from a scikit-learn ``random_state``."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))

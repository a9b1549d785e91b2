"""Seeded random draws that leave the caller's random state as it was."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside: torch's global RNG (which Pyro draws from) seeded with `seed`. On exit it is
    restored, so a seeded evaluation in the middle of a fit does not change the fit."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield

"""Steered sampling: the base's sampler inside a steering context."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..base import FrozenBase, ddim_sample
from ..steering import steer
from ..steering.steer import PortWeights


@torch.no_grad()
def steered_ddim_sample(base: FrozenBase, adapter: Callable, weights: PortWeights,
                        conditions: torch.Tensor, captions: list[str], **sampling) -> torch.Tensor:
    """`ddim_sample` with every UNet call steered by `adapter` on `conditions` (one per caption)."""
    with steer(base.unet, adapter, conditions.to(base.device), weights):
        return ddim_sample(base, captions, **sampling)

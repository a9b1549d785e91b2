"""Steered sampling: the base's sampler inside a steering context."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..base import FrozenBase, sample_images
from ..steering import steer
from ..steering.steer import PortWeights


@torch.no_grad()
def steered_sample_images(base: FrozenBase, adapter: Callable, weights: PortWeights,
                        conditions: torch.Tensor, captions: list[str], **sampling) -> torch.Tensor:
    """`sample_images` with every UNet call steered by `adapter` on `conditions`: one per caption,
    or one per caption of a block when the captions are copies of B blocks (`steer` tiles them)."""
    with steer(base.unet, adapter, conditions.to(base.device), weights):
        return sample_images(base, captions, **sampling)

"""The official BPS recipe as an objective: ε-MSE of the adapter with fixed fusion weights."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager

import torch.nn.functional as F
from torch import Tensor, nn

from ..base import FrozenBase, NoisyBatch
from ..steering import BPSAdapter, steer, steered_noise


class DeterministicObjective(nn.Module):
    """ε-MSE at uniform t of the frozen UNet steered by the adapter at fixed port weights
    (the head-heavy profile: the official constants)."""

    loss_label = "mse"

    def __init__(self, base: FrozenBase, adapter: BPSAdapter, weights: Mapping[str, float]):
        super().__init__()
        self.adapter, self.weights = adapter, dict(weights)
        self._base = (base,)  # a tuple: the frozen base is not part of this module's state

    def forward(self, batch: NoisyBatch, step: int) -> Tensor:
        return F.mse_loss(steered_noise(self._base[0], self.adapter, batch, self.weights), batch.noise)

    def scalars(self) -> dict[str, float]:
        return {}

    def export_adapter(self) -> BPSAdapter:
        return self.adapter

    def parameter_groups(self, lr: float, **rates: float) -> list[dict]:
        return [{"params": list(self.adapter.parameters()), "lr": lr}]

    def steering(self, conditions: Tensor, scale: float = 1.0) -> AbstractContextManager:
        return steer(self._base[0].unet, self.adapter, conditions, self.weights, scale)

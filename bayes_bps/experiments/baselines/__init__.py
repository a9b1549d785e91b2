"""The reference systems BPS is compared with: diffusers' ControlNet and T2I-Adapter, as-is.

The data-efficiency study trains each baseline on the same pairs, steps and seeds as BPS, through
the same `SteeringTrainer`, so the only difference is the steering network. Each baseline comes
as a builder (a fresh module shaped for the base's UNet) and a steering context that, like
`steering.steer`, makes every call of the frozen UNet inside it steered, so
`base.predict_noise` and `base.sample_images` need no change:

    baseline = BASELINES["controlnet"]
    objective = baseline.objective(base, baseline.build(base, pairs.condition_channels))
    SteeringTrainer(base, pairs, objective, batch_size=8, lr=1e-3).train(steps)
    with objective.steering(conditions):
        images = sample_images(base, captions)

The diffusers classes are used unchanged; only their configuration is chosen here so that they
fit a pixel-space base (latent factor 1) as well as SD1.5 (factor 8).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from ...base import FrozenBase, NoisyBatch
from .controlnet import SD_CONDITIONING_CHANNELS, controlnet_for, controlnet_steering
from .t2i_adapter import t2i_adapter_for, t2i_adapter_steering

Steering = Callable[..., AbstractContextManager]  # (unet, module, conditions, scale=1.0) -> context

__all__ = ["BASELINES", "SD_CONDITIONING_CHANNELS", "Baseline", "BaselineObjective", "controlnet_for",
           "controlnet_steering", "t2i_adapter_for", "t2i_adapter_steering"]


class BaselineObjective(nn.Module):
    """ε-MSE of the frozen UNet steered by a baseline: the loss of BPS's deterministic recipe.

    Only the baseline module is trained; `SteeringTrainer` runs it like any other objective.
    """

    loss_label = "mse"

    def __init__(self, base: FrozenBase, module: nn.Module, steering: Steering):
        super().__init__()
        self.module, self._steering = module, steering
        self._base = (base,)  # a tuple: the frozen base is not part of this module's state

    def steering(self, conditions: Tensor, scale: float = 1.0) -> AbstractContextManager:
        return self._steering(self._base[0].unet, self.module, conditions, scale)

    def forward(self, batch: NoisyBatch, step: int) -> Tensor:
        base = self._base[0]
        with self.steering(batch.conditions):
            predicted = base.predict_noise(batch.noisy, batch.timesteps, batch.caption_states)
        return F.mse_loss(predicted, batch.noise)

    def scalars(self) -> dict[str, float]:
        return {}

    def export_adapter(self) -> nn.Module:
        return self.module

    def parameter_groups(self, lr: float, **rates: float) -> list[dict]:
        return [{"params": [p for p in self.module.parameters() if p.requires_grad], "lr": lr}]


@dataclass(frozen=True)
class Baseline:
    """How a study loop builds one reference method and steers the frozen UNet with it."""

    build: Callable[[FrozenBase, int], nn.Module]  # (base, condition channels) -> fresh module
    steering: Steering

    def objective(self, base: FrozenBase, module: nn.Module) -> BaselineObjective:
        return BaselineObjective(base, module, self.steering)


BASELINES: dict[str, Baseline] = {
    "controlnet": Baseline(controlnet_for, controlnet_steering),
    "t2i-adapter": Baseline(t2i_adapter_for, t2i_adapter_steering),
}

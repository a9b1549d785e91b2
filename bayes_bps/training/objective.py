"""What the training loop needs from a steering method: the objective protocol.

`SteeringTrainer` runs any object with this interface, so deterministic BPS, Bayesian BPS,
ControlNet and T2I-Adapter share one loop, and a new method is one class. An objective is a
`torch.nn.Module` (so it can be checkpointed and wrapped for data-parallel training) whose
forward is the loss.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from torch import Tensor, nn

from ..base import NoisyBatch


@runtime_checkable
class SteeringObjective(Protocol):
    loss_label: str  # what the loss is, e.g. "mse" or "-elbo + network mse": names the loss curve

    def __call__(self, batch: NoisyBatch, step: int) -> Tensor:
        """The scalar loss of one minibatch at optimisation step `step` (nn.Module.forward)."""

    def parameter_groups(self, lr: float, **rates: float) -> list[dict]:
        """Optimizer parameter groups: the network at `lr`, others at their named `rates`
        (guide_lr, noise_lr) where the objective has them. A group's "max_grad_norm" is its own
        clipping threshold (None: unclipped), and its "weight_decay" its own AdamW decay; without
        them the trainer's `grad_clip` and `weight_decay` (meant for the network) apply."""

    def export_adapter(self) -> nn.Module:
        """The steering network to save with each checkpoint (`save_pretrained`)."""

    def scalars(self) -> dict[str, float]:
        """Numbers a tracker logs beside the loss (the Bayesian objective's KL, λ, σ(t), port
        medians; none for a plain ε-MSE)."""

    def steering(self, conditions: Tensor, scale: float = 1.0) -> AbstractContextManager:
        """A context in which every call of the frozen UNet is steered by the fitted method,
        its steering multiplied by the conditioning `scale`."""


def trainable_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

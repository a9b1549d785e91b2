"""The port weights the coefficients give each port at each timestep.

    weight_k(t) = α · w_k · exp(s_k τ(t)) · ρ_k / 16,   τ(t) = 2t/T − 1 in [−1, 1]

The adapter's residual at port k has unit RMS (a scale-free adapter), ρ_k is the RMS of the
frozen UNet's hidden state there (`steering.reference`), so w_k is the residual's size at mid
noise (τ = 0) relative to what it is added to, in units of 1/16: the official head-heavy
constants (16 at the top encoder level, 1 on the decoder) as prior medians reproduce the
relative steering the official network learns (about 1/16 of the hidden state per unit
constant at most ports, measured on the default fit). exp(s_k τ(t)) is the port's time
profile: s_k > 0 steers more at high noise (structure) and less near the clean image
(details), a factor e^{2 s_k} between the two ends. A log-linear profile never saturates, so
s_k is informed wherever the port matters, and over uniform t it is uncorrelated with log w_k.
α ramps from 0 to 1 over the first steps of a fit (the steered UNet starts as the frozen one)
and is 1 afterwards.
"""

from __future__ import annotations

import torch
from torch import Tensor

STEERING_UNIT = 1 / 16  # w_k = 16: a residual as large (RMS) as the hidden state at its port


def noise_position(timesteps: Tensor, num_train_timesteps: int) -> Tensor:
    """τ(t) = 2t/T − 1 in [−1, 1]: −1 at the clean image, 1 at pure noise."""
    return 2 * timesteps.float() / num_train_timesteps - 1


def time_profile(slope: Tensor, timesteps: Tensor, num_train_timesteps: int) -> Tensor:
    """exp(s_k τ(t)): (B, P) for slopes (P,) or per example (B, P)."""
    return torch.exp(slope * noise_position(timesteps, num_train_timesteps)[:, None])


def port_weights(fusion: Tensor, slope: Tensor, timesteps: Tensor, num_train_timesteps: int,
                 port_names: list[str], scale: Tensor | float = 1.0) -> dict[str, Tensor]:
    """w_k exp(s_k τ(t)) · scale_k per port, one value per example; the model's scale is α ρ_k / 16."""
    weights = fusion * scale * time_profile(slope, timesteps, num_train_timesteps)  # (B, P)
    return {name: weights[:, k] for k, name in enumerate(port_names)}


def weights_per_image(fusion: Tensor, slope: Tensor, batch: int, num_train_timesteps: int, port_names: list[str],
                      scale: Tensor | float = 1.0):
    """`steer` weights for K·B images in draw-major order: image k·B + j gets draw k's
    coefficients (`fusion`, `slope`: (K, P)). The rows are tiled again to the UNet batch, as
    `steer` tiles the conditions: guidance doubles it to [unconditional; conditional]."""
    per_image = [value.repeat_interleave(batch, dim=0) for value in (fusion, slope)]

    def weights(timesteps: Tensor) -> dict[str, Tensor]:
        tiled = [value.repeat(len(timesteps) // len(value), 1) for value in per_image]
        return port_weights(*tiled, timesteps, num_train_timesteps, port_names, scale)

    return weights

"""The port weights w_k g_k(t) that the coefficients give each port at each timestep."""

from __future__ import annotations

import torch
from torch import Tensor


def port_weights(fusion: Tensor, gate_bias: Tensor, gate_slope: Tensor, timesteps: Tensor,
                 num_train_timesteps: int, port_names: list[str]) -> dict[str, Tensor]:
    """w_k g_k(t) per port, one value per example; g_k(t) = sigmoid(a_k + b_k τ(t)),
    τ(t) = t / T - 1/2. Coefficients are (P,) or per example (B, P)."""
    tau = timesteps.float() / num_train_timesteps - 0.5
    weights = fusion * torch.sigmoid(gate_bias + gate_slope * tau[:, None])  # (B, P)
    return {name: weights[:, k] for k, name in enumerate(port_names)}

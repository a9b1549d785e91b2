"""How large the frozen UNet's hidden state is at each port: the unit of a port's steering.

A scale-free adapter's residual has unit RMS; the Bayesian model scales it by
w_k exp(s_k τ(t))/16 times this reference, so a fusion coefficient is a relative size ("w_k = 16:
as large as the hidden state it is added to") that means the same at every port and base.
"""

from __future__ import annotations

import torch

from ..base import FrozenBase, TrainingPairs
from .ports import find_ports

REFERENCE_TIMESTEPS = 10  # noise levels, evenly spaced over the schedule, the reference averages over
REFERENCE_PAIRS = 64  # enough pairs for a stable mean square; more only costs time


@torch.no_grad()
def hidden_scales(base: FrozenBase, pairs: TrainingPairs, seed: int = 0) -> dict[str, float]:
    """RMS of the frozen UNet's hidden state after each port's first module, over the training
    pairs noised at evenly spaced timesteps (fresh noise from `seed`)."""
    ports = find_ports(base.unet)
    squares: dict[str, list[torch.Tensor]] = {port.name: [] for port in ports}

    def record(name: str):
        def hook(module, args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            squares[name].append(hidden.float().square().mean())
        return hook

    handles = [base.unet.get_submodule(port.modules[0]).register_forward_hook(record(port.name)) for port in ports]
    generator = torch.Generator().manual_seed(seed)
    samples, states = pairs.samples[:REFERENCE_PAIRS], pairs.caption_states[:REFERENCE_PAIRS]
    try:
        for step in range(REFERENCE_TIMESTEPS):
            t = (step + 0.5) * base.num_train_timesteps / REFERENCE_TIMESTEPS
            timesteps = torch.full((len(samples),), int(t), device=samples.device)
            noise = torch.randn(samples.shape, generator=generator).to(samples.device)
            base.predict_noise(base.add_noise(samples, noise, timesteps), timesteps, states)
    finally:
        for handle in handles:
            handle.remove()
    return {name: torch.stack(values).mean().sqrt().item() for name, values in squares.items()}

"""The likelihood of the noise: a Gaussian on ε whose scale depends on the noise level, tempered.

**σ(t).** How well ε can be predicted changes by orders of magnitude across the schedule: at
high noise x_t is nearly ε and the residual is small, near the clean image it is large. One σ
for every t would let the low-noise steps, where the residual is largest and the least is
decided about the image's structure, dominate the likelihood. `NoiseScale` keeps one log σ per
band of timesteps (`NOISE_BANDS` equal bands), a point estimate fitted by type-II maximum
likelihood on its own learning rate; each example is weighted by 1/σ(t)², so the high-noise
steps count as much as their predictability warrants.

**The temperature λ.** The likelihood has N·D terms (D values of ε per example, 3072 for a
32x32 RGB image) against a few dozen coefficients. Treated as independent, the D pixel residuals
of one example would make the posterior collapse to a point, although they are strongly
correlated and the Gaussian is only an approximation. λ = 1/D ("per-example", the default)
counts each example as one observation. `temperature.py` estimates λ from the data instead
(the sandwich calibration); λ = 1 is the untempered posterior.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import Tensor, nn

from ..base import FrozenBase, NoisyBatch
from ..steering import steered_noise

NOISE_BANDS = 10


def per_example_temperature(base: FrozenBase) -> float:
    """λ = 1/D, D the number of noise values per example in model space."""
    config = base.unet.config
    return 1.0 / (config.in_channels * config.sample_size**2)


class NoiseScale(nn.Module):
    """σ(t): one positive scale per band of timesteps, stored as its log."""

    def __init__(self, num_train_timesteps: int, bands: int = NOISE_BANDS, initial: float = 0.5):
        super().__init__()
        self.num_train_timesteps = num_train_timesteps
        self.log_scale = nn.Parameter(torch.full((bands,), float(initial)).log())

    def band(self, timesteps: Tensor) -> Tensor:
        bands = len(self.log_scale)
        return (timesteps.long() * bands // self.num_train_timesteps).clamp(0, bands - 1)

    def forward(self, timesteps: Tensor) -> Tensor:
        """σ for each example's timestep, (B,)."""
        return self.log_scale.exp()[self.band(timesteps)]


def observe_noise(predicted: Tensor, noise: Tensor, noise_scale: Tensor, size: int,
                  indices: Tensor, temperature: float | Tensor) -> None:
    """The tempered Gaussian likelihood on ε, in a plate over `size` examples subsampled by `indices`.

    `noise_scale` is a scalar or one σ per example. The plate scales the minibatch's
    log-likelihood by size / len(indices), so the ELBO is an unbiased estimate of the full-data
    ELBO; `temperature` raises the likelihood to the power λ.
    """
    scale = noise_scale.reshape(-1, *[1] * (predicted.dim() - 1)) if noise_scale.dim() else noise_scale
    with pyro.plate("examples", size, subsample=indices), poutine.scale(scale=temperature):
        pyro.sample("noise", dist.Normal(predicted, scale).to_event(predicted.dim() - 1), obs=noise)


@torch.no_grad()
def pointwise_log_likelihood(model, draws: dict[str, Tensor], batch: NoisyBatch) -> Tensor:
    """The tempered log-likelihood of each example of `batch` under each coefficient draw,
    (draws, examples): λ · log N(ε | ε̂_θ(x_t, t), σ(t)²) summed over the example's noise values,
    the term the ELBO sums. One UNet pass of the batch per draw; ArviZ's PSIS-LOO reads it."""
    scale = model.noise_scale(batch.timesteps).reshape(-1, *[1] * (batch.noise.dim() - 1))
    rows = []
    for k in range(len(draws["fusion"])):
        coefficients = {name: value[k] for name, value in draws.items()}
        predicted = steered_noise(model.base, model.adapter_with_heads(coefficients), batch,
                                  model.weights_for(coefficients))
        density = dist.Normal(predicted, scale).log_prob(batch.noise).flatten(1).sum(dim=1)
        rows.append(model.temperature * density)
    return torch.stack(rows)

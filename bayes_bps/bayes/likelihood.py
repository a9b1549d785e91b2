"""The likelihood of the noise, and its temperature.

**The likelihood temperature λ.** The likelihood has N·D terms (D values of ε per example,
3072 for a 32x32 RGB image) against a few dozen coefficients. Treated as independent, the D
pixel residuals of one example would make the posterior of the coefficients collapse to a
point, although they are strongly correlated and the Gaussian is only an approximation. The
default λ = 1/D ("per-example") counts each example as one observation: the log-likelihood of
an example becomes its mean squared error over 2σ², and posterior widths shrink like 1/sqrt(N)
as the number of training pairs grows. λ = 1 is the untempered posterior.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
from pyro import poutine
from torch import Tensor

from ..base import FrozenBase


def per_example_temperature(base: FrozenBase) -> float:
    """λ = 1/D, D the number of noise values per example in model space."""
    config = base.unet.config
    return 1.0 / (config.in_channels * config.sample_size**2)


def observe_noise(predicted: Tensor, noise: Tensor, noise_scale: Tensor, size: int,
                  indices: Tensor, temperature: float) -> None:
    """The tempered Gaussian likelihood on ε, in a plate over `size` examples subsampled by `indices`.

    The plate scales the minibatch's log-likelihood by size / len(indices), so the ELBO is an
    unbiased estimate of the full-data ELBO; `temperature` raises the likelihood to the power λ.
    """
    with pyro.plate("examples", size, subsample=indices), poutine.scale(scale=temperature):
        pyro.sample("noise", dist.Normal(predicted, noise_scale).to_event(predicted.dim() - 1), obs=noise)

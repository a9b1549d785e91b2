"""Draws of the steering coefficients: from the guide (the posterior) and from the priors.

Both draw from torch's global RNG, as Pyro does; wrap them in `utils.seeding.seeded(seed)` for
reproducible draws that leave the caller's random state alone.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .guide import Guide
from .model import BayesianSteering


@torch.no_grad()
def posterior_draws(guide: Guide, num_draws: int) -> dict[str, Tensor]:
    """`num_draws` joint draws of every latent site, stacked on a leading dimension.

    The guide has no local latents, so once set up it needs no data to draw."""
    draws = [guide() for _ in range(num_draws)]
    return {site: torch.stack([draw[site] for draw in draws]) for site in draws[0]}


@torch.no_grad()
def prior_draws(model: BayesianSteering, num_draws: int) -> dict[str, Tensor]:
    """Draws of the steering coefficients from their priors."""
    return {name: prior.sample((num_draws,)) for name, prior in model.coefficient_priors().items()}

"""A NUTS reference for the steering coefficients, and SVI on the same batch to compare with it.

With point-estimated port heads the network is a point estimate (see model.py). Held fixed at
the fitted one, on one fixed batch of (x_t, t, ε), the posterior of the coefficients (fusion
coefficient and slope of every port) is a low-dimensional density that NUTS samples exactly.
`nuts_reference` runs the model's own forward: its priors, its tempered likelihood and its N/B
plate scaling, so the target is the very posterior the guide approximates. `svi_on_batch` fits
a fresh guide on the same batch with the network held fixed, so the two posteriors differ only
by the variational approximation and Monte Carlo error, not by data.
`diagnostics.compare_posteriors` puts them side by side.

Chains run one after another in this process, each with its own seed and a starting point drawn
from the prior (overdispersed against a posterior narrower than the prior, as R-hat wants).
Pyro's multi-chain MCMC would fork worker processes on CPU, which gains nothing on a few cores
and has to ship the frozen UNet to every worker. Both functions restore the global random
states when they return, so a check run in the middle of a fit does not change the fit.

Cost: every NUTS leapfrog step is one forward and backward pass of the steered UNet on the
batch: about 6 per draw once adapted and twice that in warmup, on an easy target.
On the tests' tiny UNet (a batch of 4 at 8x8, ~30 ms a pass on one core) two chains of 40
warmup steps and 100 draws take about 75 s. Keep the batch small.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyro
import torch
from pyro.infer import MCMC, NUTS, Trace_ELBO
from pyro.infer.autoguide.initialization import init_to_sample
from pyro.util import get_rng_state, set_rng_state
from torch import Tensor

from ..base import NoisyBatch
from .guide import SteeringGuide
from .model import BayesianSteering
from .priors import COEFFICIENTS


@dataclass
class NutsReference:
    """NUTS draws per chain, and where the sampler diverged (divergences make a reference suspect)."""

    draws: dict[str, Tensor]  # coefficient -> (chain, draw, port)
    diverging: Tensor  # (chain, draw), bool

    @property
    def num_divergences(self) -> int:
        return int(self.diverging.sum())

    @property
    def sample_stats(self) -> dict[str, Tensor]:
        """For `diagnostics.to_inference_data(..., sample_stats=...)`."""
        return {"diverging": self.diverging}


@contextmanager
def _fixed_network_posterior(model: BayesianSteering, seed: int) -> Iterator[None]:
    """Seed Pyro's random state, weigh the prior fully and freeze the network; undo all on exit.

    A fit may have left the model's KL weight mid-annealing, and the target here is the
    posterior itself. Frozen parameters keep gradients (and `.grad`) to the coefficients."""
    rng_state, kl_weight = get_rng_state(), model.kl_weight
    trainable = [p for p in model.parameters() if p.requires_grad]
    pyro.set_rng_seed(seed)
    model.kl_weight = 1.0
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in trainable:
            p.requires_grad_(True)
        model.kl_weight = kl_weight
        set_rng_state(rng_state)


def _check_point_estimated_heads(model: BayesianSteering) -> None:
    if model.bayesian_heads:
        raise ValueError("the NUTS reference covers the coefficients with the network fixed, which needs "
                         "point-estimated port heads; this model has Bayesian heads (head_scale="
                         f"{model.priors.head_scale}), whose thousands of weights NUTS would have to sample")


def nuts_reference(model: BayesianSteering, batch: NoisyBatch, *, num_samples: int = 200,
                   warmup_steps: int = 200, num_chains: int = 4, seed: int = 0,
                   progress: bool = False) -> NutsReference:
    """Draws from the exact posterior of the coefficients given `batch`, the network fixed.

    Chain c runs with seed `seed + c`; each keeps `num_samples` draws after `warmup_steps` of
    step-size and (diagonal) mass-matrix adaptation."""
    _check_point_estimated_heads(model)
    if num_chains < 1 or num_samples < 1:
        raise ValueError(f"need at least one chain and one draw; got num_chains={num_chains}, "
                         f"num_samples={num_samples}")
    chains, diverging = [], torch.zeros(num_chains, num_samples, dtype=torch.bool)
    for chain in range(num_chains):
        with _fixed_network_posterior(model, seed + chain):
            mcmc = MCMC(NUTS(model, init_strategy=init_to_sample), num_samples=num_samples,
                        warmup_steps=warmup_steps, disable_progbar=not progress)
            mcmc.run(batch)
        chains.append(mcmc.get_samples())
        diverging[chain, mcmc.diagnostics()["divergences"]["chain 0"]] = True
    draws = {name: torch.stack([chain[name] for chain in chains]).detach() for name in COEFFICIENTS}
    return NutsReference(draws=draws, diverging=diverging)


def svi_on_batch(model: BayesianSteering, batch: NoisyBatch, *, steps: int, lr: float = 0.01,
                 seed: int = 0, num_particles: int = 1,
                 losses: list[float] | None = None) -> SteeringGuide:
    """A fresh guide fitted by SVI on the fixed `batch`; only the guide's parameters move.

    The guide starts at the prior (`SteeringGuide.start_at_prior`), as in a fit; the network
    is frozen meanwhile. Each step's negative ELBO is appended to `losses` when one is given."""
    guide = SteeringGuide(model)
    elbo = Trace_ELBO(num_particles=num_particles)
    with _fixed_network_posterior(model, seed):
        guide(batch)  # create the guide's parameters
        guide.start_at_prior()
        optimizer = torch.optim.Adam(guide.parameters(), lr=lr)
        for _ in range(steps):
            loss = elbo.differentiable_loss(model, guide, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if losses is not None:
                losses.append(loss.item())
    return guide

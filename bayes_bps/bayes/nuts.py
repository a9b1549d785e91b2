"""A NUTS reference for the steering coefficients, and SVI on the same batch to compare with it.

With point-estimated port heads the network is a point estimate (see model.py). Held fixed at
the fitted one, on one fixed batch of (x_t, t, ε), the posterior of the coefficients (fusion
coefficient and slope of every port) is a low-dimensional density that NUTS samples exactly.
`nuts_reference` runs the model's own forward: its priors, its tempered likelihood and its N/B
plate scaling, so the target is the very posterior the guide approximates. `svi_on_batch` fits
a fresh guide on the same batch with the network held fixed, so the two posteriors differ only
by the variational approximation and Monte Carlo error, not by data.
`diagnostics.compare_posteriors` puts them side by side. Its guide is any of the package's
families (`guide.py`: mean-field; full-rank, which has the coefficients' correlations; a flow,
which also follows curved dependence): the checks of whether the variational family, rather
than the optimisation, is what keeps SVI off NUTS.

Chains run one after another in this process, each with its own seed and a starting point drawn
from the prior (overdispersed against a posterior narrower than the prior, as R-hat wants).

**Preconditioning.** Pyro adapts the diagonal mass matrix only at the end of warm-up windows
(once, at 90 % of a 100-step warm-up); until then NUTS steps in the raw coordinates, and this
posterior's correlations (a port's log w against its slope; neighbouring ports) force small
steps and trees of hundreds of leapfrog steps: 25–35 s per iteration at a batch of 32, in raw
coordinates and in the mean-field guide's standardised ones alike. Given a fitted guide q
(`whiten_by`), NUTS samples z with θ = μ_q + L z, L L^T the Laplace covariance at μ_q (the
Gauss–Newton precision of the likelihood plus the prior's), under a flat measure in z plus the
log-Jacobian, so the target is still the exact posterior of θ: q and the Laplace fit only set
the coordinates, and if they are wrong that costs efficiency, not correctness. Each chain then
starts at a draw of N(0, 2²) in z (twice the Laplace spread)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import MCMC, NUTS, Trace_ELBO
from pyro.infer.autoguide.initialization import init_to_sample, init_to_value
from pyro.util import get_rng_state, set_rng_state
from torch import Tensor
from tqdm.auto import tqdm

from ..base import NoisyBatch
from ..utils.files import save_atomic
from .guide import Guide, make_guide
from .model import BayesianSteering
from .priors import COEFFICIENTS
from .temperature import gauss_newton_precision


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


class _Whitened:
    """The model in coordinates z with θ = μ + L z, θ = (log w, s): a flat measure in z, the
    log-Jacobian of z → (w, s), and the model conditioned on the coefficients z gives.

    μ is the guide's mean; L L^T is the inverse of the Gauss–Newton precision there (the
    likelihood's, `temperature.gauss_newton_precision`, plus the prior's): a Laplace
    approximation, which has the correlations (between a port's log w and slope, and between
    ports) that the mean-field guide lacks."""

    def __init__(self, model: BayesianSteering, guide: Guide, batch: NoisyBatch):
        self.model, self.ports = model, len(model.port_names)
        location = {site: guide.marginal(site)[0].detach() for site in COEFFICIENTS}
        precision = gauss_newton_precision(model, {"fusion": location["fusion"].exp(), "slope": location["slope"]},
                                           batch)
        prior_sd = torch.cat([torch.full((self.ports,), model.unconstrained_prior(site)[1], dtype=torch.float64)
                              for site in COEFFICIENTS])
        precision = precision + torch.diag(prior_sd**-2)
        self.location = torch.cat([location[site] for site in COEFFICIENTS]).double()
        self.cholesky = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(precision)))

    def coefficients(self, z: Tensor) -> dict[str, Tensor]:
        theta = (self.location + z.double() @ self.cholesky.T).float()
        return {"fusion": theta[..., :self.ports].exp(), "slope": theta[..., self.ports:]}

    def __call__(self, batch: NoisyBatch) -> None:
        # z is sampled from N(0, 1) (Pyro's set-up draws from it) and that density is divided out
        standard = dist.Normal(torch.zeros(2 * self.ports), 1.0).to_event(1)
        z = pyro.sample("z", standard)
        coefficients = self.coefficients(z)
        # |∂θ/∂z| = det L, and w = exp(log w) adds log w to the log-density of w
        log_jacobian = self.cholesky.diagonal().log().sum().float() + coefficients["fusion"].log().sum()
        pyro.factor("flat_measure_and_log_jacobian", log_jacobian - standard.log_prob(z))
        poutine.condition(self.model, data=coefficients)(batch)


def nuts_reference(model: BayesianSteering, batch: NoisyBatch, *, num_samples: int = 200,
                   warmup_steps: int = 200, num_chains: int = 4, seed: int = 0,
                   whiten_by: Guide | None = None, target_accept_prob: float = 0.8,
                   progress: bool = False) -> NutsReference:
    """Draws from the exact posterior of the coefficients given `batch`, the network fixed.

    Chain c runs with seed `seed + c`; each keeps `num_samples` draws after `warmup_steps` of
    step-size and (diagonal) mass-matrix adaptation. With `whiten_by` NUTS runs in coordinates
    centred on that guide's mean and shaped by the Laplace covariance there (see the module
    docstring); the target is the same. `target_accept_prob` is the step-size adaptation's target
    (0.8 is Stan's default; 0.65, Hoffman & Gelman's, takes longer steps)."""
    _check_point_estimated_heads(model)
    if num_chains < 1 or num_samples < 1:
        raise ValueError(f"need at least one chain and one draw; got num_chains={num_chains}, "
                         f"num_samples={num_samples}")
    whitened = _Whitened(model, whiten_by, batch) if whiten_by is not None else None
    chains, diverging = [], torch.zeros(num_chains, num_samples, dtype=torch.bool)
    for chain in range(num_chains):
        with _fixed_network_posterior(model, seed + chain):
            if whitened is None:
                kernel = NUTS(model, init_strategy=init_to_sample, target_accept_prob=target_accept_prob)
            else:
                start = 2 * torch.randn(2 * whitened.ports)
                kernel = NUTS(whitened, init_strategy=init_to_value(values={"z": start}),
                              target_accept_prob=target_accept_prob)
            mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps, disable_progbar=not progress)
            mcmc.run(batch)
        samples = mcmc.get_samples()
        chains.append(samples if whitened is None else whitened.coefficients(samples["z"]))
        diverging[chain, mcmc.diagnostics()["divergences"]["chain 0"]] = True
    draws = {name: torch.stack([chain[name] for chain in chains]).detach() for name in COEFFICIENTS}
    return NutsReference(draws=draws, diverging=diverging)


def fresh_guide(model: BayesianSteering, batch: NoisyBatch, family: str = "mean-field") -> Guide:
    """An unfitted guide of `family` at the prior, as in a fit, with its parameters set up on `batch`."""
    _check_point_estimated_heads(model)
    guide = make_guide(model, family)
    guide(batch)
    guide.start_at_prior()
    return guide


def svi_on_batch(model: BayesianSteering, batch: NoisyBatch, *, steps: int, lr: float = 0.01,
                 final_lr: float | None = None, seed: int = 0, num_particles: int = 1, family: str = "mean-field",
                 losses: list[float] | None = None, progress: bool = False, checkpoint: Path | None = None,
                 checkpoint_every: int = 50) -> Guide:
    """A fresh guide of `family` (`fresh_guide`) fitted by SVI on the fixed `batch`; only the
    guide's parameters move, the network is frozen meanwhile. `final_lr` decays the learning
    rate geometrically from `lr` to it over the steps: at a constant rate Adam's noisy ELBO
    gradients keep the guide jittering about the optimum by about `lr`, which a narrow
    posterior notices. Each step's negative ELBO is appended to `losses` when one is given;
    `progress` shows a bar with it.

    With `checkpoint`, the whole state (guide, optimizer, schedule, losses, random state) is
    saved there atomically every `checkpoint_every` steps, and a call that finds the file
    continues from it: with four particles this SVI takes hours here. The caller keeps the file
    to the same settings."""
    elbo = Trace_ELBO(num_particles=num_particles)
    with _fixed_network_posterior(model, seed):
        guide = fresh_guide(model, batch, family)
        optimizer = torch.optim.Adam(guide.parameters(), lr=lr)
        decay = (final_lr / lr) ** (1 / max(steps - 1, 1)) if final_lr is not None else 1.0
        schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=decay)
        trace: list[float] = []
        if checkpoint is not None and checkpoint.is_file():
            state = torch.load(checkpoint, weights_only=False)
            for part, name in ((guide, "guide"), (optimizer, "optimizer"), (schedule, "schedule")):
                part.load_state_dict(state[name])
            trace = state["losses"]
            set_rng_state(state["rng"])
        bar = tqdm(range(len(trace), steps), desc="SVI on the batch", disable=not progress, initial=len(trace),
                   total=steps)
        for step in bar:
            loss = elbo.differentiable_loss(model, guide, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            trace.append(loss.item())
            bar.set_postfix({"-elbo": f"{loss.item():.4g}"}, refresh=False)
            if checkpoint is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == steps):
                save_atomic({"guide": guide.state_dict(), "optimizer": optimizer.state_dict(),
                             "schedule": schedule.state_dict(), "losses": trace, "rng": get_rng_state()}, checkpoint)
    if losses is not None:
        losses.extend(trace)
    return guide

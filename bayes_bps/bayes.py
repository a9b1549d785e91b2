"""Bayesian steering: the adapter's fusion coefficients and gates as random variables.

For the N training pairs (x0_i, c_i, caption_i) and the P ports of the frozen UNet:

    w_k ~ LogNormal(log m_k, s_w)          fusion coefficient; m = the head-heavy profile
    a_k ~ Normal(a_0, s_a)                 gate g_k(t) = sigmoid(a_k + b_k τ(t)),
    b_k ~ Normal(0, s_b)                   τ(t) = t / T - 1/2 in [-1/2, 1/2]
    [W_k ~ Normal(0, s_h)]                 optional Bayesian port heads (the zero convs)
    for i in a minibatch of the N pairs (a plate with subsampling, scaled N/B):
        t_i ~ U{0..T-1},  ε_i ~ N(0, I),  x_t,i = sqrt(ᾱ_t) x0_i + sqrt(1 - ᾱ_t) ε_i
        ε_i ~ Normal(ε̂(x_t,i, t_i, c_i; w, a, b), σ)  raised to the power λ

with ε̂ the frozen UNet steered at port k by w_k g_k(t) · adapter_k(c, t). A priori the gates
are open (sigmoid(a_0 = 3) = 0.95) and flat in t, and the fusion coefficients sit on the
official constants, so the prior mean is the official network.

The adapter body is a plain torch child module: point-estimated, trained by the same
optimizer in the same loop. σ is a point estimate too (type-II maximum likelihood).

**Why the network is fitted at the prior median.** Port k adds w_k g_k(t) · head_k(features),
and a point-estimated head is linear in its weights, so (c·w_k, head_k / c) predicts the same
noise for every c > 0: the likelihood cannot tell w_k from the scale of its head. Fitted
jointly on the same loss, the head absorbs whatever w_k does, and the posterior of w_k would
report the optimiser's dynamics, not the data. So each step trains the network (body and
heads) by ε-MSE at the prior-median coefficients (the official constants, gates open: the
official recipe), and the ELBO of the coefficients sees the network as fixed. w_k / m_k then
means "port k should steer this much more or less than the official constant, given the
network the official constants trained". With Bayesian heads (`head_scale`), their Normal(0, s)
prior pins the scale instead (w_k acts as a relevance scale of head k), and network, heads and
coefficients all follow the ELBO.

**The likelihood temperature λ.** The likelihood has N·D terms (D values of ε per example,
3072 for a 32x32 RGB image) against a few dozen coefficients. Treated as independent, the D
pixel residuals of one example would make the posterior of the coefficients collapse to a
point, although they are strongly correlated and the Gaussian is only an approximation. The
default λ = 1/D ("per-example") counts each example as one observation: the log-likelihood of
an example becomes its mean squared error over 2σ², and posterior widths shrink like 1/sqrt(N)
as the number of training pairs grows. λ = 1 is the untempered posterior.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.infer.autoguide.initialization import init_to_median
from pyro.nn import PyroModule, PyroParam, PyroSample
from torch import Tensor, nn
from torch.distributions import biject_to
from torch.func import functional_call

from .adapter import BPSAdapter
from .pairs import NoisyBatch
from .prior import FrozenPrior
from .train import steered_noise

# Model and guide keep their parameters in their own state_dicts, not in Pyro's global param
# store: two fits in one notebook then never share values, and checkpoints are state_dicts.
pyro.settings.set(module_local_params=True)

COEFFICIENTS = ("fusion", "gate_bias", "gate_slope")
HEAD_SITE = "head."  # Bayesian head sites: head.0.weight, head.0.bias, ...


@dataclass
class SteeringPriors:
    """Scales of the priors; the defaults encode 'the official network, give or take'."""

    fusion_scale: float = 0.5  # sd of log w_k: w within ×/÷ 2.7 of the profile at 2 sd
    gate_bias_mean: float = 3.0  # sigmoid(3) = 0.95, gates open
    gate_bias_scale: float = 1.0
    gate_slope_scale: float = 1.0  # flat in t a priori
    head_scale: float | None = None  # a Normal(0, s) prior on the port heads; None: point-estimated


def per_example_temperature(prior: FrozenPrior) -> float:
    """λ = 1/D, D the number of noise values per example in model space."""
    config = prior.unet.config
    return 1.0 / (config.in_channels * config.sample_size**2)


def observe_noise(predicted: Tensor, noise: Tensor, noise_scale: Tensor, size: int,
                  indices: Tensor, temperature: float) -> None:
    """The tempered Gaussian likelihood on ε, in a plate over `size` examples subsampled by `indices`.

    The plate scales the minibatch's log-likelihood by size / len(indices), so the ELBO is an
    unbiased estimate of the full-data ELBO; `temperature` raises the likelihood to the power λ.
    """
    with pyro.plate("examples", size, subsample=indices), poutine.scale(scale=temperature):
        pyro.sample("noise", dist.Normal(predicted, noise_scale).to_event(predicted.dim() - 1), obs=noise)


def steering_scales(fusion: Tensor, gate_bias: Tensor, gate_slope: Tensor, timesteps: Tensor,
                    num_train_timesteps: int, port_names: list[str]) -> dict[str, Tensor]:
    """w_k g_k(t) per port, one value per example. Coefficients are (P,) or per example (B, P)."""
    tau = timesteps.float() / num_train_timesteps - 0.5
    weights = fusion * torch.sigmoid(gate_bias + gate_slope * tau[:, None])  # (B, P)
    return {name: weights[:, k] for k, name in enumerate(port_names)}


class BayesianSteering(PyroModule):
    """The Pyro model: priors over the steering coefficients, the steered UNet, the likelihood."""

    def __init__(self, prior: FrozenPrior, adapter: BPSAdapter, profile: Mapping[str, float],
                 n_train: int, temperature: float, priors: SteeringPriors | None = None,
                 noise_scale: float = 0.2):
        super().__init__()
        self._prior = (prior,)  # a tuple: the frozen prior is not part of this module's state
        self.adapter = adapter
        self.priors = priors or SteeringPriors()
        self.port_names = list(profile)
        means = torch.tensor([profile[name] for name in self.port_names], dtype=torch.float32)
        if torch.any(means <= 0):
            zero = [name for name in self.port_names if profile[name] <= 0]
            raise ValueError(f"the LogNormal fusion prior needs positive profile weights; {zero} "
                             "have none (use a profile that steers every port, or --deterministic)")
        self.n_train, self.temperature, self.kl_weight = n_train, temperature, 1.0
        self.register_buffer("log_profile", means.log())
        self.fusion = PyroSample(lambda self: self.coefficient_priors()["fusion"])
        self.gate_bias = PyroSample(lambda self: self.coefficient_priors()["gate_bias"])
        self.gate_slope = PyroSample(lambda self: self.coefficient_priors()["gate_slope"])
        self.noise_scale = PyroParam(torch.tensor(noise_scale), constraint=dist.constraints.positive)

    @property
    def frozen(self) -> FrozenPrior:
        return self._prior[0]

    def unconstrained_prior(self, site: str) -> tuple[Tensor | float, float]:
        """(location, scale) of a site's prior, which is Normal in unconstrained space (log w)."""
        p = self.priors
        known = {"fusion": (self.log_profile, p.fusion_scale),
                 "gate_bias": (p.gate_bias_mean, p.gate_bias_scale),
                 "gate_slope": (0.0, p.gate_slope_scale)}
        return known.get(site, (0.0, p.head_scale))  # the rest are Bayesian head sites

    def coefficient_priors(self) -> dict[str, dist.Distribution]:
        ones = torch.ones_like(self.log_profile)

        def normal(site: str) -> tuple[Tensor, float]:
            location, scale = self.unconstrained_prior(site)
            return location * ones, scale

        return {"fusion": dist.LogNormal(*normal("fusion")).to_event(1),
                "gate_bias": dist.Normal(*normal("gate_bias")).to_event(1),
                "gate_slope": dist.Normal(*normal("gate_slope")).to_event(1)}

    def _sample_heads(self) -> dict[str, Tensor]:
        """Bayesian port heads: each zero conv's weight and bias drawn from Normal(0, s)."""
        if not self.bayesian_heads:
            return {}
        return {f"{HEAD_SITE}{name}": pyro.sample(f"{HEAD_SITE}{name}", dist.Normal(
                    torch.zeros_like(parameter), self.priors.head_scale).to_event(parameter.dim()))
                for name, parameter in self.adapter.heads.named_parameters()}

    def scales_for(self, coefficients: Mapping[str, Tensor]) -> Callable[[Tensor], dict[str, Tensor]]:
        """Port scales w_k g_k(t) as a function of the timesteps, for `steer`."""
        return lambda timesteps: steering_scales(
            coefficients["fusion"], coefficients["gate_bias"], coefficients["gate_slope"], timesteps,
            self.frozen.num_train_timesteps, self.port_names)

    @property
    def bayesian_heads(self) -> bool:
        return self.priors.head_scale is not None

    def prior_median(self) -> dict[str, Tensor]:
        """The coefficients at their prior medians: the official constants with open, flat gates."""
        ones = torch.ones_like(self.log_profile)
        return {"fusion": self.log_profile.exp(), "gate_bias": self.priors.gate_bias_mean * ones,
                "gate_slope": torch.zeros_like(ones)}

    def adapter_for(self, coefficients: Mapping[str, Tensor]) -> Callable:
        """The adapter with drawn head weights swapped in (itself when heads are point estimates)."""
        heads = {f"heads.{site[len(HEAD_SITE):]}": value for site, value in coefficients.items()
                 if site.startswith(HEAD_SITE)}
        if not heads:
            return self.adapter
        return lambda *args, **kwargs: functional_call(self.adapter, heads, args, kwargs)

    def _likelihood_adapter(self, coefficients: Mapping[str, Tensor]) -> Callable:
        """The adapter as the likelihood sees it: fixed (no gradient) when heads are point
        estimates, since `network_loss` fits it (see the module docstring)."""
        if self.bayesian_heads:
            return self.adapter_for(coefficients)
        return torch.no_grad()(self.adapter)

    def network_loss(self, batch: NoisyBatch) -> Tensor:
        """ε-MSE of the network steering at the prior-median coefficients (point-estimated heads)."""
        predicted = steered_noise(self.frozen, self.adapter, batch, self.scales_for(self.prior_median()))
        return torch.nn.functional.mse_loss(predicted, batch.noise)

    def forward(self, batch: NoisyBatch) -> Tensor:
        # 1. steering coefficients from their priors (KL-annealed by kl_weight)
        with poutine.scale(scale=self.kl_weight):
            coefficients = {"fusion": self.fusion, "gate_bias": self.gate_bias,
                            "gate_slope": self.gate_slope, **self._sample_heads()}
        # 2. ε̂: the frozen UNet steered by w_k g_k(t) at each port
        predicted = steered_noise(self.frozen, self._likelihood_adapter(coefficients), batch,
                                  self.scales_for(coefficients))
        # 3. the tempered likelihood of the noise actually added
        observe_noise(predicted, batch.noise, self.noise_scale, self.n_train, batch.indices,
                      self.temperature)
        return predicted


class SteeringGuide(AutoNormal):
    """Mean-field Normal posterior over the coefficients, KL-annealed like the model.

    It starts *at the prior*: every prior here is Normal in the guide's unconstrained space
    (log w for the LogNormal), so locations and scales copied from the priors (the official
    constants, open gates, zero heads) make q = p at step 0. Whatever the fitted posterior
    then differs from the prior, the data moved.
    """

    def __init__(self, model: BayesianSteering):
        super().__init__(model, init_loc_fn=init_to_median)
        self._steering = (model,)  # read kl_weight from it; a tuple keeps it out of the state

    @torch.no_grad()
    def start_at_prior(self) -> None:
        """Copy the priors' locations and scales into q; call once the guide is set up."""
        model = self._steering[0]
        scales = dict(self.scales.named_parameters())
        to_unconstrained = biject_to(self.scale_constraint).inv
        for name, location in self.locs.named_parameters():
            prior_location, prior_scale = model.unconstrained_prior(name.removesuffix("_unconstrained"))
            location.copy_(torch.as_tensor(prior_location).expand_as(location))
            scales[name].copy_(to_unconstrained(torch.full_like(location, prior_scale)))

    def forward(self, *args, **kwargs):
        with poutine.scale(scale=self._steering[0].kl_weight):
            return super().forward(*args, **kwargs)


class ELBOObjective(nn.Module):
    """The negative ELBO of model and guide as a differentiable torch loss, for `SteeringTrainer`.

    One Monte Carlo draw of the coefficients per step; `kl_anneal_steps` > 0 ramps the weight
    of the KL term (prior and guide densities) linearly from 0 to 1. With point-estimated heads
    the network's ε-MSE at the prior median is added: the two terms share no parameter, so one
    backward pass fits the network and the posterior in the same step.
    """

    def __init__(self, model: BayesianSteering, example_batch: NoisyBatch, kl_anneal_steps: int = 0):
        super().__init__()
        self.model, self.guide = model, SteeringGuide(model)
        self.kl_anneal_steps = kl_anneal_steps
        self.elbo = Trace_ELBO()
        self.guide(example_batch)  # create the guide's parameters, so optimizers can see them
        self.guide.start_at_prior()
        self.loss_name = "-elbo" if model.bayesian_heads else "-elbo + network mse"

    def forward(self, batch: NoisyBatch, step: int) -> Tensor:
        self.model.kl_weight = kl_weight_at(step, self.kl_anneal_steps)
        loss = self.elbo.differentiable_loss(self.model, self.guide, batch)
        return loss if self.model.bayesian_heads else loss + self.model.network_loss(batch)

    @torch.no_grad()
    def export_adapter(self) -> BPSAdapter:
        """The adapter to save: with Bayesian heads, their posterior medians are written into
        its (otherwise unused) head parameters, so `from_pretrained` gives the median network."""
        adapter = self.model.adapter
        for site, value in self.guide.median().items():
            if site.startswith(HEAD_SITE):
                adapter.heads.get_parameter(site[len(HEAD_SITE):]).copy_(value)
        return adapter

    def parameter_groups(self, lr: float, guide_lr: float) -> list[dict]:
        """The network (adapter body and σ) at `lr`, the variational parameters at `guide_lr`."""
        network = [p for p in self.model.parameters() if p.requires_grad]
        return [{"params": network, "lr": lr}, {"params": list(self.guide.parameters()), "lr": guide_lr}]


@torch.no_grad()
def posterior_draws(guide: SteeringGuide, num_draws: int) -> dict[str, Tensor]:
    """`num_draws` joint draws of every latent site, stacked on a leading dimension.

    The guide has no local latents, so once set up it needs no data to draw."""
    draws = [guide() for _ in range(num_draws)]
    return {site: torch.stack([draw[site] for draw in draws]) for site in draws[0]}


@torch.no_grad()
def prior_draws(model: BayesianSteering, num_draws: int) -> dict[str, Tensor]:
    """Draws of the steering coefficients from their priors."""
    return {name: prior.sample((num_draws,)) for name, prior in model.coefficient_priors().items()}


def kl_weight_at(step: int, anneal_steps: int) -> float:
    """Linear KL annealing from 0 to 1 over `anneal_steps` (no annealing when 0)."""
    return 1.0 if anneal_steps <= 0 else min(1.0, (step + 1) / anneal_steps)

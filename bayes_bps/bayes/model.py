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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.nn import PyroModule, PyroParam, PyroSample
from torch import Tensor
from torch.func import functional_call

from ..base import FrozenBase, NoisyBatch
from ..steering import BPSAdapter, steered_noise
from .likelihood import observe_noise
from .local_params import module_local
from .priors import COEFFICIENTS, HEAD_SITE, SteeringPriors
from .weights import port_weights


@module_local
class BayesianSteering(PyroModule):
    """The Pyro model: priors over the steering coefficients, the steered UNet, the likelihood."""

    def __init__(self, base: FrozenBase, adapter: BPSAdapter, profile: Mapping[str, float],
                 n_train: int, temperature: float, priors: SteeringPriors | None = None,
                 noise_scale: float = 0.2):
        super().__init__()
        self._base = (base,)  # a tuple: the frozen base is not part of this module's state
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
    def base(self) -> FrozenBase:
        return self._base[0]

    @property
    def bayesian_heads(self) -> bool:
        return self.priors.head_scale is not None

    # --- priors -----------------------------------------------------------------------
    def unconstrained_prior(self, site: str) -> tuple[Tensor | float, float]:
        """(location, scale) of a site's prior, which is Normal in unconstrained space (log w)."""
        return self.priors.unconstrained(site, self.log_profile)

    def coefficient_priors(self) -> dict[str, dist.Distribution]:
        return self.priors.coefficient_distributions(self.log_profile)

    def prior_median(self) -> dict[str, Tensor]:
        """The coefficients at their prior medians: the official constants with open, flat gates."""
        return self.priors.median(self.log_profile)

    def _sample_heads(self) -> dict[str, Tensor]:
        """Bayesian port heads: each zero conv's weight and bias drawn from Normal(0, s)."""
        if not self.bayesian_heads:
            return {}
        return {f"{HEAD_SITE}{name}": pyro.sample(f"{HEAD_SITE}{name}", dist.Normal(
                    torch.zeros_like(parameter), self.priors.head_scale).to_event(parameter.dim()))
                for name, parameter in self.adapter.heads.named_parameters()}

    # --- steering ---------------------------------------------------------------------
    def weights_for(self, coefficients: Mapping[str, Tensor]) -> Callable[[Tensor], dict[str, Tensor]]:
        """Port weights w_k g_k(t) as a function of the timesteps, for `steer`."""
        return lambda timesteps: port_weights(
            coefficients["fusion"], coefficients["gate_bias"], coefficients["gate_slope"], timesteps,
            self.base.num_train_timesteps, self.port_names)

    def weights_per_image(self, draws: Mapping[str, Tensor], batch: int) -> Callable[[Tensor], dict[str, Tensor]]:
        """`steer` weights for K·B images in draw-major order: image k·B + j gets draw k's coefficients.

        The rows are tiled again to the UNet batch, as `steer` tiles the conditions: guidance
        doubles it to [unconditional; conditional]."""
        per_image = {name: draws[name].repeat_interleave(batch, dim=0) for name in COEFFICIENTS}

        def weights(timesteps: Tensor) -> dict[str, Tensor]:
            tiled = {name: value.repeat(len(timesteps) // len(value), 1) for name, value in per_image.items()}
            return self.weights_for(tiled)(timesteps)

        return weights

    def adapter_with_heads(self, coefficients: Mapping[str, Tensor]) -> Callable:
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
            return self.adapter_with_heads(coefficients)
        return torch.no_grad()(self.adapter)

    # --- losses -----------------------------------------------------------------------
    def network_loss(self, batch: NoisyBatch) -> Tensor:
        """ε-MSE of the network steering at the prior-median coefficients (point-estimated heads)."""
        predicted = steered_noise(self.base, self.adapter, batch, self.weights_for(self.prior_median()))
        return F.mse_loss(predicted, batch.noise)

    def forward(self, batch: NoisyBatch) -> Tensor:
        # 1. steering coefficients from their priors (KL-annealed by kl_weight)
        with poutine.scale(scale=self.kl_weight):
            coefficients = {"fusion": self.fusion, "gate_bias": self.gate_bias,
                            "gate_slope": self.gate_slope, **self._sample_heads()}
        # 2. ε̂: the frozen UNet steered by w_k g_k(t) at each port
        predicted = steered_noise(self.base, self._likelihood_adapter(coefficients), batch,
                                  self.weights_for(coefficients))
        # 3. the tempered likelihood of the noise actually added
        observe_noise(predicted, batch.noise, self.noise_scale, self.n_train, batch.indices,
                      self.temperature)
        return predicted

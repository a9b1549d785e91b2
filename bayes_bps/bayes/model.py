"""Bayesian steering: the adapter's fusion coefficients and their time profiles as random variables.

For the N training pairs (x0_i, c_i, caption_i) and the P ports of the frozen UNet:

    log w_k ~ Normal(log m_k, s_w)        fusion coefficient; m = the head-heavy profile
    s_k ~ Normal(0, s_s)                  slope of the port's log-weight over τ(t) = 2t/T − 1
    [W_k ~ Normal(0, s_h)]                optional Bayesian port heads
    for i in a minibatch of the N pairs (a plate with subsampling, scaled N/B):
        t_i ~ U{0..T-1},  ε_i ~ N(0, I),  x_t,i = sqrt(ᾱ_t) x0_i + sqrt(1 - ᾱ_t) ε_i
        ε_i ~ Normal(ε̂(x_t,i, t_i, c_i; w, s), σ(t_i))  raised to the power λ

with ε̂ the frozen UNet steered at port k by w_k exp(s_k τ(t)) ρ_k/16 · u_k(c, t) (`weights.py`):
u_k the adapter's residual, of unit RMS, and ρ_k the RMS of the frozen hidden state there. A
priori every port steers flat in t, with the official constants as fusion coefficients.

**Time profiles, not saturating gates.** A logistic gate sigmoid(a_k + b_k τ) that is open a
priori (a_k ≈ 3) sits where its derivative is 1 − g ≈ 0.05: the data cannot move it unless
they close it, and its posterior repeats the prior (measured: sd ratio 0.92–1.09 for every gate
of the first fits). The log-linear profile exp(s_k τ) has the same reach (a port can steer at
high noise and rest at low noise) with a derivative that never vanishes.

**Identification.** A head is linear in its weights, so with an ordinary head (c·w_k, head_k/c)
predicts the same noise for every c > 0, and a network fitted on the same loss absorbs any
change of w_k: the coefficients' posterior would report optimiser noise. Here the adapter is
*scale-free*: each residual is divided by its own RMS, so no parameter of the network changes a
port's magnitude, which is w_k exp(s_k τ(t)) ρ_k/16 exactly. The likelihood's dependence on w_k is
then the data's, and the network (body and head directions, a point estimate) is trained in the
same pass on the same negative ELBO, i.e. on the expected log-likelihood under q: one UNet pass
per step (variational EM). `tests/test_bayes_recovery.py` fits data simulated from a known w*.

**Zero start.** Random heads with unit RMS cannot start at zero, so during a fit a steering
strength α (an argument of the model, not a parameter) ramps from 0 at step 0 to 1 after the
objective's warm-up: at step 0 the steered UNet equals the frozen one exactly, as with the
official zero-initialised heads. Sampling uses α = 1.

The adapter is a plain torch child module; σ(t) (`likelihood.NoiseScale`) is a point estimate,
fitted by type-II maximum likelihood on its own learning rate. With Bayesian heads
(`head_scale`), the head weights are latent too. Only their directions matter (the RMS
normalisation removes their scale), so the isotropic prior is uniform over directions whatever
its scale, and the likelihood's temperature alone sets how far the data move them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule, PyroSample
from torch import Tensor
from torch.func import functional_call

from ..base import FrozenBase, NoisyBatch
from ..steering import BPSAdapter, steered_noise
from .likelihood import NoiseScale, observe_noise
from .local_params import module_local
from .priors import HEAD_SITE, SteeringPriors
from .weights import STEERING_UNIT, port_weights, weights_per_image


@module_local
class BayesianSteering(PyroModule):
    """The Pyro model: priors over the steering coefficients, the steered UNet, the likelihood."""

    def __init__(self, base: FrozenBase, adapter: BPSAdapter, profile: Mapping[str, float],
                 reference: Mapping[str, float], n_train: int, temperature: float,
                 priors: SteeringPriors | None = None):
        super().__init__()
        if not adapter.config.scale_free:
            raise ValueError("Bayesian steering needs a scale-free adapter (BPSAdapter(..., scale_free=True)): "
                             "with zero-initialised heads the fusion coefficients are not identified")
        self._base = (base,)  # a tuple: the frozen base is not part of this module's state
        self.adapter = adapter
        self.priors = priors or SteeringPriors()
        self.port_names = list(profile)
        means = torch.tensor([profile[name] for name in self.port_names], dtype=torch.float32)
        if torch.any(means <= 0):
            zero = [name for name in self.port_names if profile[name] <= 0]
            raise ValueError(f"the LogNormal fusion prior needs positive profile weights; {zero} "
                             "have none (use a profile that steers every port, or --deterministic)")
        self.n_train, self.kl_weight = n_train, 1.0
        self.register_buffer("log_profile", means.log())
        self.register_buffer("reference", torch.tensor([reference[name] for name in self.port_names]))
        self.register_buffer("temperature", torch.tensor(float(temperature)))  # a checkpoint keeps λ
        self.noise_scale = NoiseScale(base.num_train_timesteps)
        self.fusion = PyroSample(lambda self: self.coefficient_priors()["fusion"])
        self.slope = PyroSample(lambda self: self.coefficient_priors()["slope"])

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
        """The coefficients at their prior medians: the official constants, flat in t."""
        return self.priors.median(self.log_profile)

    def _sample_heads(self) -> dict[str, Tensor]:
        """Bayesian port heads: each head's weight and bias drawn from Normal(0, s)."""
        if not self.bayesian_heads:
            return {}
        return {f"{HEAD_SITE}{name}": pyro.sample(f"{HEAD_SITE}{name}", dist.Normal(
                    torch.zeros_like(parameter), self.priors.head_scale).to_event(parameter.dim()))
                for name, parameter in self.adapter.heads.named_parameters()}

    # --- steering ---------------------------------------------------------------------
    def weights_for(self, coefficients: Mapping[str, Tensor],
                    strength: float = 1.0) -> Callable[[Tensor], dict[str, Tensor]]:
        """Port weights α w_k exp(s_k τ(t)) ρ_k/16 as a function of the timesteps, for `steer`;
        the strength α < 1 only during a fit's warm-up."""
        scale = strength * STEERING_UNIT * self.reference
        return lambda timesteps: port_weights(coefficients["fusion"], coefficients["slope"], timesteps,
                                              self.base.num_train_timesteps, self.port_names, scale)

    def weights_per_image(self, draws: Mapping[str, Tensor], batch: int) -> Callable[[Tensor], dict[str, Tensor]]:
        """`steer` weights for K·B images, image k·B + j with draw k's coefficients (`weights.py`)."""
        return weights_per_image(draws["fusion"], draws["slope"], batch, self.base.num_train_timesteps,
                                 self.port_names, STEERING_UNIT * self.reference)

    def adapter_with_heads(self, coefficients: Mapping[str, Tensor]) -> Callable:
        """The adapter with drawn head weights swapped in (itself when heads are point estimates)."""
        heads = {f"heads.{site[len(HEAD_SITE):]}": value for site, value in coefficients.items()
                 if site.startswith(HEAD_SITE)}
        if not heads:
            return self.adapter
        return lambda *args, **kwargs: functional_call(self.adapter, heads, args, kwargs)

    # --- the model --------------------------------------------------------------------
    def forward(self, batch: NoisyBatch, strength: float = 1.0) -> Tensor:
        # 1. steering coefficients from their priors (KL-annealed by kl_weight)
        with poutine.scale(scale=self.kl_weight):
            coefficients = {"fusion": self.fusion, "slope": self.slope, **self._sample_heads()}
        # 2. ε̂: the frozen UNet steered at each port; the network gets the gradient too
        predicted = steered_noise(self.base, self.adapter_with_heads(coefficients), batch,
                                  self.weights_for(coefficients, strength))
        # 3. the tempered likelihood of the noise actually added, with σ for each example's t
        observe_noise(predicted, batch.noise, self.noise_scale(batch.timesteps), self.n_train, batch.indices,
                      self.temperature)
        return predicted

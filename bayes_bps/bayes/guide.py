"""The variational posterior of the steering coefficients."""

from __future__ import annotations

import torch
from pyro import poutine
from pyro.infer.autoguide import AutoNormal
from pyro.infer.autoguide.initialization import init_to_median
from torch.distributions import biject_to

from .local_params import module_local
from .model import BayesianSteering
from .priors import COEFFICIENTS, HEAD_SITE


@module_local
class SteeringGuide(AutoNormal):
    """Mean-field Normal posterior over the coefficients, KL-annealed like the model.

    It starts *at the prior*: every prior here is Normal in the guide's unconstrained space
    (log w for the LogNormal), so locations and scales copied from the priors (the official
    constants, flat time profiles, zero-mean heads) make q = p at step 0. Whatever the fitted posterior
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

    @torch.no_grad()
    def kl_to_prior(self) -> dict[str, torch.Tensor]:
        """KL(q ‖ p) in nats per site and port, in closed form: both are Normal in the guide's
        unconstrained space (log w for the fusion coefficients). 0 where q is still the prior."""
        model, divergences = self._steering[0], {}
        for site in COEFFICIENTS:
            prior_mean, prior_sd = model.unconstrained_prior(site)
            mean, sd = self._get_loc_and_scale(site)
            divergences[site] = (torch.log(prior_sd / sd) + (sd**2 + (mean - torch.as_tensor(prior_mean)) ** 2)
                                 / (2 * prior_sd**2) - 0.5)
        return divergences

    @torch.no_grad()
    def head_concentration(self) -> dict[str, float]:
        """Per Bayesian head site, ‖μ‖/‖σ‖: how far a draw's direction is fixed by q's location
        rather than its noise (a draw is μ + σ·ξ, and ‖σ·ξ‖ ≈ ‖σ‖). Near 0 the heads are random
        draws; well above 1 they are nearly point estimates. Empty without Bayesian heads."""
        concentration = {}
        for site in self.prototype_trace.nodes:
            if site.startswith(HEAD_SITE):
                mean, sd = self._get_loc_and_scale(site)
                concentration[site] = float(mean.norm() / sd.norm())
        return concentration

    @torch.no_grad()
    def fusion_mean(self) -> torch.Tensor:
        """E_q[w] per port in closed form: q is Normal on log w, so its mean is exp(μ + σ²/2)."""
        location, scale = self._get_loc_and_scale("fusion")
        return torch.exp(location + scale**2 / 2)

    def forward(self, *args, **kwargs):
        with poutine.scale(scale=self._steering[0].kl_weight):
            return super().forward(*args, **kwargs)

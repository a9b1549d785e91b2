"""The priors of the steering coefficients: which latent sites there are, and their scales.

Every coefficient prior is Normal in an unconstrained space (log w for the LogNormal fusion
coefficients), so the guide can start exactly at the prior, and a posterior's shift and
contraction read directly in prior standard deviations.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyro.distributions as dist
import torch
from torch import Tensor

from ..utils.options import option

COEFFICIENTS = ("fusion", "gate_bias", "gate_slope")
HEAD_SITE = "head."  # Bayesian head sites: head.0.weight, head.0.bias, ...


@dataclass
class SteeringPriors:
    """Scales of the priors; the defaults encode 'the official network, give or take'."""

    fusion_scale: float = option(0.5, "sd of log w_k around the profile (w within ×/÷ 2.7 at 2 sd)",
                                 above=0, flags=("--fusion-prior-scale",))
    gate_bias_mean: float = option(3.0, "prior mean of the gate bias a_k (3: gates open, sigmoid(3) = 0.95)",
                                   flags=("--gate-bias-prior-mean",))
    gate_bias_scale: float = option(1.0, "prior sd of a_k", above=0, flags=("--gate-bias-prior-scale",))
    gate_slope_scale: float = option(1.0, "prior sd of the gate slope b_k in t (0 mean: flat in t)",
                                     above=0, flags=("--gate-slope-prior-scale",))
    head_scale: float | None = option(None, "make the port heads Bayesian with a Normal(0, s) prior",
                                      above=0, flags=("--head-prior-scale",))

    def unconstrained(self, site: str, log_profile: Tensor) -> tuple[Tensor | float, float]:
        """(location, scale) of a site's Normal prior in unconstrained space (log w for fusion)."""
        known = {"fusion": (log_profile, self.fusion_scale),
                 "gate_bias": (self.gate_bias_mean, self.gate_bias_scale),
                 "gate_slope": (0.0, self.gate_slope_scale)}
        return known.get(site, (0.0, self.head_scale))  # the rest are Bayesian head sites

    def coefficient_distributions(self, log_profile: Tensor) -> dict[str, dist.Distribution]:
        """The priors of the coefficients, one value per port (event dim 1)."""
        ones = torch.ones_like(log_profile)

        def normal(site: str) -> tuple[Tensor, float]:
            location, scale = self.unconstrained(site, log_profile)
            return location * ones, scale

        return {"fusion": dist.LogNormal(*normal("fusion")).to_event(1),
                "gate_bias": dist.Normal(*normal("gate_bias")).to_event(1),
                "gate_slope": dist.Normal(*normal("gate_slope")).to_event(1)}

    def median(self, log_profile: Tensor) -> dict[str, Tensor]:
        """The coefficients at their prior medians: the profile's constants with open, flat gates."""
        ones = torch.ones_like(log_profile)
        return {"fusion": log_profile.exp(), "gate_bias": self.gate_bias_mean * ones,
                "gate_slope": torch.zeros_like(ones)}

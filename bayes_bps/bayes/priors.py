"""The priors of the steering coefficients: which latent sites there are, and their scales.

Per port k, two coefficients: the fusion coefficient w_k (LogNormal, centred on the head-heavy
profile) and the slope s_k of the port's log-weight over the noise level (Normal, centred on 0:
flat in t). Both priors are Normal in an unconstrained space (log w), so the guide can start
exactly at the prior, and a posterior's shift and contraction read directly in prior sd.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyro.distributions as dist
import torch
from torch import Tensor

from ..utils.options import option

COEFFICIENTS = ("fusion", "slope")
HEAD_SITE = "head."  # Bayesian head sites: head.0.weight, head.0.bias, ...


@dataclass
class SteeringPriors:
    """Scales of the priors; the defaults encode 'the official network, give or take a factor
    of seven per port, and a weight that may grow or fade across the schedule'."""

    fusion_scale: float = option(1.0, "sd of log w_k around the profile (w within ×/÷ 7.4 at 2 sd)",
                                 above=0, flags=("--fusion-prior-scale",))
    slope_scale: float = option(1.0, "sd of the slope s_k of log w_k(t) over τ(t) in [-1, 1] (0 mean: flat in "
                                "t; at 1 sd a port steers 7.4x more at one end of the schedule)",
                                above=0, flags=("--slope-prior-scale",))
    head_scale: float | None = option(None, "make the port heads Bayesian with a Normal(0, s) prior (the heads are "
                                      "scale-free, so s sets units only; --temperature sets how far the data "
                                      "move them)",
                                      above=0, flags=("--head-prior-scale",))

    def unconstrained(self, site: str, log_profile: Tensor) -> tuple[Tensor | float, float]:
        """(location, scale) of a site's Normal prior in unconstrained space (log w for fusion)."""
        known = {"fusion": (log_profile, self.fusion_scale), "slope": (0.0, self.slope_scale)}
        return known.get(site, (0.0, self.head_scale))  # the rest are Bayesian head sites

    def coefficient_distributions(self, log_profile: Tensor) -> dict[str, dist.Distribution]:
        """The priors of the coefficients, one value per port (event dim 1)."""
        ones = torch.ones_like(log_profile)

        def normal(site: str) -> tuple[Tensor, float]:
            location, scale = self.unconstrained(site, log_profile)
            return location * ones, scale

        return {"fusion": dist.LogNormal(*normal("fusion")).to_event(1),
                "slope": dist.Normal(*normal("slope")).to_event(1)}

    def median(self, log_profile: Tensor) -> dict[str, Tensor]:
        """The coefficients at their prior medians: the profile's constants, flat in t."""
        return {"fusion": log_profile.exp(), "slope": torch.zeros_like(log_profile)}

"""The variational posterior of the steering coefficients, in two families.

- `SteeringGuide` (`--guide mean-field`): an independent Normal for every coefficient and every
  Bayesian head weight.
- `FullRankSteeringGuide` (`--guide full-rank`): one Normal with a full covariance over every
  port's (log w_k, s_k), for the linear correlations between ports and slopes that a product of
  independent Normals drops. Its 2P(2P+1)/2 covariance entries are few beside a UNet pass; it
  covers the coefficients only, so it needs point-estimated heads (thousands of head weights
  would need a covariance of millions). On the default fit those correlations are weak
  (|ρ| ≤ 0.36 in the NUTS draws) and what keeps SVI off NUTS is curved dependence, which neither
  family follows (`benchmarks/RESULTS.md`, "SVI against NUTS").

Both are Normal in the guide's unconstrained space (log w for the LogNormal), as the priors are,
so both start *at the prior* (the official constants, flat time profiles; no correlation) and
keep a Normal's closed forms: KL(q ‖ p), E_q[w], the marginals. Whatever the fitted posterior
then differs from the prior, the data moved.
"""

from __future__ import annotations

import torch
from pyro import poutine
from pyro.infer.autoguide import AutoMultivariateNormal, AutoNormal
from pyro.infer.autoguide.initialization import init_to_median
from torch import Tensor
from torch.distributions import biject_to

from .local_params import module_local
from .model import BayesianSteering
from .priors import COEFFICIENTS, HEAD_SITE

GUIDE_FAMILIES = ("mean-field", "full-rank")


class _CoefficientPosterior:
    """What both families share: KL annealing with the model, and the Normal's closed forms,
    read from each family's `marginal(site)` (location and sd in unconstrained space)."""

    def _attach(self, model: BayesianSteering) -> None:
        self._steering = (model,)  # read kl_weight and the priors from it; a tuple keeps it out of the state

    def marginal(self, site: str) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def kl_to_prior(self) -> dict[str, Tensor]:
        """KL(q_k ‖ p_k) in nats of each coefficient's marginal, per site and port; 0 where q is
        still the prior. For the mean-field guide they add up to KL(q ‖ p); `total_kl` adds what
        the correlations carry."""
        model, divergences = self._steering[0], {}
        for site in COEFFICIENTS:
            prior_mean, prior_sd = model.unconstrained_prior(site)
            mean, sd = self.marginal(site)
            divergences[site] = (torch.log(prior_sd / sd) + (sd**2 + (mean - torch.as_tensor(prior_mean)) ** 2)
                                 / (2 * prior_sd**2) - 0.5)
        return divergences

    @torch.no_grad()
    def total_kl(self) -> float:
        """KL(q ‖ p) of the coefficients jointly, in nats."""
        return sum(float(divergence.sum()) for divergence in self.kl_to_prior().values())

    @torch.no_grad()
    def head_concentration(self) -> dict[str, float]:
        """Per Bayesian head site, ‖μ‖/‖σ‖: how far a draw's direction is fixed by q's location
        rather than its noise (a draw is μ + σ·ξ, and ‖σ·ξ‖ ≈ ‖σ‖). Near 0 the heads are random
        draws; well above 1 they are nearly point estimates. Empty without Bayesian heads."""
        concentration = {}
        for site in self.prototype_trace.nodes:
            if site.startswith(HEAD_SITE):
                mean, sd = self.marginal(site)
                concentration[site] = float(mean.norm() / sd.norm())
        return concentration

    @torch.no_grad()
    def fusion_mean(self) -> Tensor:
        """E_q[w] per port in closed form: q is Normal on log w, so its mean is exp(μ + σ²/2)."""
        location, scale = self.marginal("fusion")
        return torch.exp(location + scale**2 / 2)

    @torch.no_grad()
    def correlation_cholesky(self) -> Tensor:
        """The Cholesky factor of the correlation of (log w, s) over every port, coefficients in
        the order of `COEFFICIENTS`, ports in model order: the identity for the mean-field guide."""
        return torch.eye(len(COEFFICIENTS) * len(self._steering[0].port_names))

    def forward(self, *args, **kwargs):
        with poutine.scale(scale=self._steering[0].kl_weight):
            return super().forward(*args, **kwargs)


@module_local
class SteeringGuide(_CoefficientPosterior, AutoNormal):
    """Mean-field Normal posterior over the coefficients (and any Bayesian heads), KL-annealed
    like the model. It starts *at the prior*: locations and scales copied from the priors make
    q = p at step 0."""

    def __init__(self, model: BayesianSteering):
        super().__init__(model, init_loc_fn=init_to_median)
        self._attach(model)

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

    def marginal(self, site: str) -> tuple[Tensor, Tensor]:
        return self._get_loc_and_scale(site)


@module_local
class FullRankSteeringGuide(_CoefficientPosterior, AutoMultivariateNormal):
    """Full-covariance Normal posterior over every port's (log w_k, s_k), KL-annealed like the
    model; q = p at step 0 (prior locations and scales, no correlation)."""

    def __init__(self, model: BayesianSteering):
        if model.bayesian_heads:
            raise ValueError("the full-rank guide covers the coefficients only and needs point-estimated heads; "
                             f"this model has Bayesian heads (head_scale={model.priors.head_scale}): use the "
                             "mean-field guide")
        super().__init__(model, init_loc_fn=init_to_median)
        self._attach(model)

    @torch.no_grad()
    def start_at_prior(self) -> None:
        """The priors' locations and scales, site by site in the packing order; no correlation."""
        model, locations, scales = self._steering[0], [], []
        for site, shape in self._unconstrained_shapes.items():
            location, scale = model.unconstrained_prior(site)
            locations.append(torch.as_tensor(location, dtype=self.loc.dtype).expand(shape).reshape(-1))
            scales.append(torch.full_like(locations[-1], float(scale)))
        self.loc.copy_(torch.cat(locations))
        self.scale = torch.cat(scales)  # a PyroParam: stored unconstrained
        self.scale_tril = torch.eye(len(self.loc))

    def _cholesky(self) -> Tensor:
        self._check_packing()
        return self.scale[..., None] * self.scale_tril

    def _check_packing(self) -> None:
        if tuple(self._unconstrained_shapes) != COEFFICIENTS:  # marginal() and the export rely on this order
            raise RuntimeError(f"expected latent sites {COEFFICIENTS}, found {tuple(self._unconstrained_shapes)}")

    def marginal(self, site: str) -> tuple[Tensor, Tensor]:
        ports = len(self._steering[0].port_names)
        k = COEFFICIENTS.index(site)
        cholesky = self._cholesky()
        sd = cholesky.pow(2).sum(-1).sqrt()
        return self.loc[k * ports:(k + 1) * ports], sd[k * ports:(k + 1) * ports]

    @torch.no_grad()
    def total_kl(self) -> float:
        """The marginals' KLs plus the correlations' share, −½ log det R (the Gaussian's total
        correlation): KL(q ‖ p) exactly, since p factorises."""
        log_det_correlation = 2 * self.correlation_cholesky().diagonal().log().sum()
        return super().total_kl() - 0.5 * float(log_det_correlation)

    @torch.no_grad()
    def correlation_cholesky(self) -> Tensor:
        cholesky = self._cholesky()
        return cholesky / cholesky.pow(2).sum(-1).sqrt()[:, None]


def make_guide(model: BayesianSteering, family: str) -> SteeringGuide | FullRankSteeringGuide:
    """An unset-up guide of `family` for `model` (call it on a batch, then `start_at_prior`)."""
    if family not in GUIDE_FAMILIES:
        raise ValueError(f"unknown guide family {family!r}; choose from {', '.join(GUIDE_FAMILIES)}")
    return SteeringGuide(model) if family == "mean-field" else FullRankSteeringGuide(model)

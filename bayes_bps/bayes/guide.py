"""The variational posterior of the steering coefficients, in three families.

- `SteeringGuide` (`--guide mean-field`): an independent Normal for every coefficient and every
  Bayesian head weight.
- `FullRankSteeringGuide` (`--guide full-rank`): one Normal with a full covariance over every
  port's (log w_k, s_k), for the linear correlations between ports and slopes that a product of
  independent Normals drops. Its 2P(2P+1)/2 covariance entries are few beside a UNet pass.
- `FlowSteeringGuide` (`--guide flow`): an inverse-autoregressive flow over the same (log w_k,
  s_k), which also follows *curved* dependence. On the default fit that is the dependence that
  matters: the NUTS draws have little linear correlation (|ρ| ≤ 0.36), yet down.0.0's log w
  bends with its slope and with down.1.0, and the mean-field guide's mean is 0.59 NUTS sd off
  there, the full-rank one's 0.82 (`benchmarks/RESULTS.md`, "SVI against NUTS").

The last two cover the coefficients only, so they need point-estimated heads (thousands of head
weights would need a covariance of millions, or a flow as wide).

All three start *at the prior* (the official constants, flat time profiles; no dependence), so
whatever the fitted posterior differs from the prior, the data moved. The two Normals keep a
Normal's closed forms: KL(q ‖ p), E_q[w], the marginals. The flow has none; it reports the same
quantities as Monte Carlo estimates over a fixed set of draws (`FLOW_SUMMARY_DRAWS`), so they are
the same at every call.
"""

from __future__ import annotations

import torch
from pyro import poutine
from pyro.distributions import ComposeTransformModule
from pyro.distributions.transforms import affine_autoregressive
from pyro.infer.autoguide import AutoMultivariateNormal, AutoNormal, AutoNormalizingFlow
from pyro.infer.autoguide.initialization import init_to_median
from torch import Tensor, nn
from torch.distributions import AffineTransform, Normal, biject_to

from .local_params import module_local
from .model import BayesianSteering
from .priors import COEFFICIENTS, HEAD_SITE

GUIDE_FAMILIES = ("mean-field", "full-rank", "flow")
# Each family's default learning rate in a fit. The flow's network weights take a tenth of the
# Normals' rate: at 1e-2 with one draw per step its tails grew to 40 prior sds, or diverged
# (`benchmarks/RESULTS.md`, "The package's flow"); at 1e-3 they stay within 6
GUIDE_LEARNING_RATES = {"mean-field": 1e-2, "full-rank": 1e-2, "flow": 1e-3}
# Two IAF layers of 64 hidden units: a Pyro flow of this size came within 0.30 NUTS sd of every
# posterior mean of the default fit's 26 coefficients (`benchmarks/RESULTS.md`).
FLOW_HIDDEN, FLOW_TRANSFORMS = 64, 2
# Each layer widens by at most e^1.5: under Pyro's default, e^3, a fit's flow drew up to 196 prior
# sds out, where w = exp(log w) overflowed; well-fitted flows stay within e^1.1
# (`benchmarks/RESULTS.md`)
FLOW_MAX_LOG_SCALE = 1.5
# The flow's summaries average this many draws: a posterior mean to about 1/64 of its sd.
FLOW_SUMMARY_DRAWS = 4096


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

    def exported_draws(self) -> Tensor | None:
        """Joint draws for the export to resample, (draws, 2P) in the order of
        `correlation_cholesky`; None where the export carries the family in closed form."""
        return None

    def forward(self, *args, **kwargs):
        with poutine.scale(scale=self._steering[0].kl_weight):
            return super().forward(*args, **kwargs)


class _JointCoefficientPosterior(_CoefficientPosterior):
    """What the families over the packed vector of every port's (log w, s) share (Pyro's
    `AutoContinuous`): point-estimated heads, the packing order, the prior in that order."""

    def _refuse_bayesian_heads(self, model: BayesianSteering, family: str) -> None:
        if model.bayesian_heads:
            raise ValueError(f"the {family} guide covers the coefficients only and needs point-estimated heads; "
                             f"this model has Bayesian heads (head_scale={model.priors.head_scale}): use the "
                             "mean-field guide")

    def _check_packing(self) -> None:
        if tuple(self._unconstrained_shapes) != COEFFICIENTS:  # marginal() and the export rely on this order
            raise RuntimeError(f"expected latent sites {COEFFICIENTS}, found {tuple(self._unconstrained_shapes)}")

    def _prior_vectors(self) -> tuple[Tensor, Tensor]:
        """The prior's locations and sds over the packed vector (it factorises)."""
        self._check_packing()
        model, locations, scales = self._steering[0], [], []
        for site, shape in self._unconstrained_shapes.items():
            location, scale = model.unconstrained_prior(site)
            locations.append(torch.as_tensor(location, dtype=torch.get_default_dtype()).expand(shape).reshape(-1))
            scales.append(torch.full_like(locations[-1], float(scale)))
        return torch.cat(locations), torch.cat(scales)

    def _site_slice(self, site: str) -> slice:
        ports = len(self._steering[0].port_names)
        k = COEFFICIENTS.index(site)
        return slice(k * ports, (k + 1) * ports)


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
class FullRankSteeringGuide(_JointCoefficientPosterior, AutoMultivariateNormal):
    """Full-covariance Normal posterior over every port's (log w_k, s_k), KL-annealed like the
    model; q = p at step 0 (prior locations and scales, no correlation)."""

    def __init__(self, model: BayesianSteering):
        self._refuse_bayesian_heads(model, "full-rank")
        super().__init__(model, init_loc_fn=init_to_median)
        self._attach(model)

    @torch.no_grad()
    def start_at_prior(self) -> None:
        """The priors' locations and scales, site by site in the packing order; no correlation."""
        location, scale = self._prior_vectors()
        self.loc.copy_(location)
        self.scale = scale  # a PyroParam: stored unconstrained
        self.scale_tril = torch.eye(len(self.loc))

    def _cholesky(self) -> Tensor:
        self._check_packing()
        return self.scale[..., None] * self.scale_tril

    def marginal(self, site: str) -> tuple[Tensor, Tensor]:
        where = self._site_slice(site)
        return self.loc[where], self._cholesky().pow(2).sum(-1).sqrt()[where]

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


@module_local
class FlowSteeringGuide(_JointCoefficientPosterior, AutoNormalizingFlow):
    """An inverse-autoregressive flow over every port's (log w_k, s_k), KL-annealed like the model.

    A draw is θ = m + s ⊙ T(ξ), ξ ~ N(0, I), with m and s the prior's locations and sds and T
    `FLOW_TRANSFORMS` affine autoregressive layers (Pyro's `affine_autoregressive`). The flow thus
    works in prior-standardised coordinates, and q = p at step 0: `start_at_prior` zeroes each
    layer's output layer, which makes T the identity (its shift 0, its log-scale 0), as the
    steering heads start at zero.

    Its summaries are Monte Carlo: `marginal` gives the mean and sd of each coefficient, so
    `kl_to_prior` is per coefficient the KL of the Normal with those moments, while `total_kl` is
    the joint KL(q ‖ p) itself. The export resamples the summary draws (`exported_draws`)."""

    def __init__(self, model: BayesianSteering):
        self._refuse_bayesian_heads(model, "flow")
        super().__init__(model, init_transform_fn=self._flow)
        self._attach(model)

    def _flow(self, dimension: int) -> ComposeTransformModule:
        layers = [affine_autoregressive(dimension, hidden_dims=[FLOW_HIDDEN], log_scale_max_clip=FLOW_MAX_LOG_SCALE)
                  for _ in range(FLOW_TRANSFORMS)]
        location, scale = self._prior_vectors()
        # Cached, so that the density of a draw is read from its forward pass: without the cache
        # the ELBO inverts the autoregressive layers coordinate by coordinate, which divides by
        # their scales at every step, and in a fit one draw in a few hundred got a log q off by
        # up to 1e6 nats, from which the flow diverged (`benchmarks/RESULTS.md`)
        return ComposeTransformModule([*layers, AffineTransform(location, scale, event_dim=1, cache_size=1)])

    @torch.no_grad()
    def start_at_prior(self) -> None:
        for layer in self.transform.parts[:-1]:
            output = layer.arn.layers[-1]
            nn.init.zeros_(output.weight)
            nn.init.zeros_(output.bias)

    @torch.no_grad()
    def _summary_draws(self) -> tuple[Tensor, Tensor]:
        """`FLOW_SUMMARY_DRAWS` draws of the packed (log w, s) and log q − log p at each, from a
        fixed seed: every summary is computed from the same draws."""
        device = self._prototype_tensor.device
        noise = torch.randn(FLOW_SUMMARY_DRAWS, self.latent_dim, generator=torch.Generator().manual_seed(0))
        noise = noise.to(device)
        theta = self.transform(noise)
        log_q = self.get_base_dist().log_prob(noise) - self.transform.log_abs_det_jacobian(noise, theta)
        location, scale = (vector.to(device) for vector in self._prior_vectors())
        return theta, log_q - Normal(location, scale).log_prob(theta).sum(-1)

    def marginal(self, site: str) -> tuple[Tensor, Tensor]:
        """The Monte Carlo mean and sd of the site's coefficients under q."""
        theta = self._summary_draws()[0][:, self._site_slice(site)]
        return theta.mean(0), theta.std(0)

    @torch.no_grad()
    def total_kl(self) -> float:
        """KL(q ‖ p) jointly: the Monte Carlo mean of log q − log p over the summary draws."""
        return float(self._summary_draws()[1].mean())

    @torch.no_grad()
    def fusion_mean(self) -> Tensor:
        return self._summary_draws()[0][:, self._site_slice("fusion")].exp().mean(0)

    @torch.no_grad()
    def median(self, *args, **kwargs) -> dict[str, Tensor]:
        """Each coefficient's marginal median (its value, as Pyro's medians are, not unconstrained)."""
        medians = self._summary_draws()[0].median(dim=0).values
        return {"fusion": medians[self._site_slice("fusion")].exp(), "slope": medians[self._site_slice("slope")]}

    @torch.no_grad()
    def correlation_cholesky(self) -> Tensor:
        """The Cholesky factor of the summary draws' correlation: the linear part of the dependence."""
        return torch.linalg.cholesky(torch.corrcoef(self._summary_draws()[0].T))

    def exported_draws(self) -> Tensor:
        return self._summary_draws()[0]


Guide = SteeringGuide | FullRankSteeringGuide | FlowSteeringGuide


def make_guide(model: BayesianSteering, family: str) -> Guide:
    """An unset-up guide of `family` for `model` (call it on a batch, then `start_at_prior`)."""
    if family not in GUIDE_FAMILIES:
        raise ValueError(f"unknown guide family {family!r}; choose from {', '.join(GUIDE_FAMILIES)}")
    return {"mean-field": SteeringGuide, "full-rank": FullRankSteeringGuide, "flow": FlowSteeringGuide}[family](model)

"""The variational families of the coefficients: mean-field, full-rank and flow.

Two known answers, each in the guides' own unconstrained coordinates (log w and s of two ports,
with the package's priors):

- a linear-Gaussian toy has a Normal posterior in closed form, with a strong correlation. Set to
  it, the full-rank guide's closed forms (marginals, correlation, KL) and its export must give it
  back; fitted by SVI from the prior, it must learn the correlation, which the guide at the
  prior, the control, lacks;
- a curved toy observes a port's weight w·exp(s τ) at five noise levels τ, as a fit does, so
  log w and s bend around each other a posteriori. Its posterior, by quadrature on a grid, is
  what the flow must follow in its moments and KL (the Normal families, fitted by 1000 steps of
  four particles, missed its means by 0.6 to 1.8 posterior sds; `benchmarks/RESULTS.md`); its
  export resamples it.
"""

from types import SimpleNamespace

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO
from pyro.nn import PyroModule, PyroSample
from torch.distributions import AffineTransform, ComposeTransform, MultivariateNormal, kl_divergence

from bayes_bps.bayes import FlowSteeringGuide, FullRankSteeringGuide, SteeringPriors, make_guide, posterior_draws
from bayes_bps.bayes.exported import SteeringPosterior
from bayes_bps.bayes.local_params import module_local
from bayes_bps.training import FitOptions
from bayes_bps.utils.seeding import seeded
from tests.test_bayes import _model
from tests.test_diagnostics import _random_batch
from tests.tiny_models import tiny_pixel_base

NOISE_SD, OBSERVATIONS = 0.5, 40


class TwoPortToy(PyroModule):
    """The package's priors over (log w, s) of two ports, a and b, and what the guides read from
    `BayesianSteering`; subclasses add a likelihood."""

    port_names, bayesian_heads, kl_weight = ["a", "b"], False, 1.0

    def __init__(self):
        super().__init__()
        self.priors, self.log_profile = SteeringPriors(), torch.tensor([1.0, 0.5])
        self.fusion = PyroSample(lambda self: self.priors.coefficient_distributions(self.log_profile)["fusion"])
        self.slope = PyroSample(lambda self: self.priors.coefficient_distributions(self.log_profile)["slope"])

    def unconstrained_prior(self, site):
        return self.priors.unconstrained(site, self.log_profile)


@module_local  # as the package's model: the guides keep module-local parameters
class LinearToy(TwoPortToy):
    """y ~ Normal(X θ, NOISE_SD) with θ = (log w_a, log w_b, s_a, s_b)."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def forward(self):
        theta = torch.cat([self.fusion.log(), self.slope], dim=-1)
        with pyro.plate("observations", len(self.y)):
            pyro.sample("y", dist.Normal((theta.unsqueeze(-2) * self.x).sum(-1), NOISE_SD), obs=self.y)

    def exact_posterior(self) -> MultivariateNormal:
        prior_mean = torch.cat([self.log_profile, torch.zeros(2)])  # prior sds are 1
        precision = torch.eye(4) + self.x.T @ self.x / NOISE_SD**2
        mean = torch.linalg.solve(precision, prior_mean + self.x.T @ self.y / NOISE_SD**2)
        return MultivariateNormal(mean, precision_matrix=precision)


def _toy() -> LinearToy:
    """Columns 0 and 2 (a port's log w and its slope) nearly collinear, as on the default fit: the
    data pin their sum better than each, so the two are anti-correlated a posteriori (ρ = −0.77)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(OBSERVATIONS, 4, generator=generator)
    x[:, 2] = x[:, 0] + torch.randn(OBSERVATIONS, generator=generator)
    y = x @ torch.tensor([1.5, 0.0, 0.3, -0.5]) + NOISE_SD * torch.randn(OBSERVATIONS, generator=generator)
    return LinearToy(x, y)


def _set_up(model, family: str):
    guide = make_guide(model, family)
    guide()
    guide.start_at_prior()
    return guide


def _svi(model, family: str, *, lr: float, particles: int, final_lr: float = 0.002, steps: int = 1000):
    """A guide of `family` fitted by SVI from the prior, its rate decaying geometrically to `final_lr`."""
    pyro.set_rng_seed(0)
    guide = _set_up(model, family)
    elbo = Trace_ELBO(num_particles=particles)
    optimizer = torch.optim.Adam(guide.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=(final_lr / lr) ** (1 / steps))
    for _ in range(steps):
        loss = elbo.differentiable_loss(model, guide)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return guide


@torch.no_grad()
def _at_exact_posterior(model: LinearToy) -> FullRankSteeringGuide:
    """A full-rank guide whose parameters are the exact posterior's."""
    exact = model.exact_posterior()
    guide = _set_up(model, "full-rank")
    cholesky = exact.scale_tril
    guide.loc.copy_(exact.mean)
    guide.scale = cholesky.diagonal()
    guide.scale_tril = cholesky / cholesky.diagonal()[:, None]
    return guide


def _correlation(covariance: torch.Tensor) -> torch.Tensor:
    sd = covariance.diagonal().sqrt()
    return covariance / (sd[:, None] * sd[None, :])


def _draws_correlation(guide) -> torch.Tensor:
    with seeded(0):
        draws = posterior_draws(guide, 4000)
    return torch.corrcoef(torch.cat([draws["fusion"].log(), draws["slope"]], dim=1).T)


def test_the_full_rank_closed_forms_are_the_exact_posteriors():
    """Set to the exact posterior, the guide reports its marginals, its correlation and
    KL(posterior ‖ prior) exactly; the mean-field guide's correlation is the identity and its
    KL the sum of its marginals'."""
    model = _toy()
    exact, guide = model.exact_posterior(), _at_exact_posterior(model)
    sd = exact.covariance_matrix.diagonal().sqrt()
    assert _correlation(exact.covariance_matrix)[0, 2] < -0.7  # as correlated as promised
    location = torch.cat([guide.marginal(site)[0] for site in ("fusion", "slope")])
    scale = torch.cat([guide.marginal(site)[1] for site in ("fusion", "slope")])
    torch.testing.assert_close(location, exact.mean)
    torch.testing.assert_close(scale, sd)
    cholesky = guide.correlation_cholesky()
    torch.testing.assert_close(cholesky @ cholesky.T, _correlation(exact.covariance_matrix))
    prior = MultivariateNormal(torch.cat([model.log_profile, torch.zeros(2)]), torch.eye(4))
    assert guide.total_kl() == pytest.approx(float(kl_divergence(exact, prior)), rel=1e-5)
    marginals = sum(float(kl.sum()) for kl in guide.kl_to_prior().values())
    assert guide.total_kl() > marginals + 0.3  # the correlation's own share, −½ log(1 − ρ²) ≈ 0.46 nats
    mean_field = _set_up(model, "mean-field")
    assert torch.equal(mean_field.correlation_cholesky(), torch.eye(4))
    assert mean_field.total_kl() == pytest.approx(sum(float(kl.sum()) for kl in mean_field.kl_to_prior().values()))


@pytest.mark.slow  # 1000 SVI steps of Pyro's per-trace overhead: about a minute
def test_full_rank_svi_learns_the_correlation_a_guide_at_the_prior_lacks():
    model = _toy()
    truth = _correlation(model.exact_posterior().covariance_matrix)
    guide = _svi(model, "full-rank", lr=0.1, particles=2)
    assert (_draws_correlation(guide) - truth).abs().max() < 0.2
    assert (_draws_correlation(_set_up(model, "full-rank")) - truth).abs().max() > 0.7  # the control


@pytest.mark.parametrize("family", ["full-rank", "flow"])
def test_a_fresh_joint_guide_is_the_prior(family):
    """q = p at step 0: the prior's locations and sds, uncorrelated, on the steered tiny UNet.
    The full-rank guide says so in closed form; the flow's summaries are Monte Carlo (4096 draws:
    a mean to about 0.016 sd), but its KL is exactly 0, since log q = log p at every draw."""
    base = tiny_pixel_base()
    model = _model(base)
    guide = make_guide(model, family)
    guide(_random_batch(base, 4))
    guide.start_at_prior()
    tolerance = {"atol": 0.06, "rtol": 0} if family == "flow" else {}
    ports = len(model.port_names)
    torch.testing.assert_close(guide.marginal("fusion")[0], model.log_profile, **tolerance)
    torch.testing.assert_close(guide.marginal("slope")[0], torch.zeros(ports), **tolerance)
    for site in ("fusion", "slope"):
        torch.testing.assert_close(guide.marginal(site)[1], torch.ones(ports), **tolerance)
    torch.testing.assert_close(guide.correlation_cholesky(), torch.eye(2 * ports), **tolerance)
    assert guide.total_kl() == pytest.approx(0.0, abs=1e-5)


def test_the_export_draws_the_full_rank_guides_joint_distribution():
    """Exported draws carry the guide's correlations; the control, the same export with its
    correlation factor reset to the identity (a mean-field export), does not."""
    model = _toy()
    guide = _at_exact_posterior(model)
    model.base = SimpleNamespace(num_train_timesteps=1000)
    model.reference = torch.ones(2)
    posterior = SteeringPosterior.from_guide(model, guide)
    expected = _correlation(model.exact_posterior().covariance_matrix)

    def correlation(posterior) -> torch.Tensor:
        draws = posterior.draws(20000, torch.Generator().manual_seed(0))
        return torch.corrcoef(torch.cat([draws["fusion"].log(), draws["slope"]], dim=1).T)

    assert (correlation(posterior) - expected).abs().max() < 0.03
    posterior.correlation_cholesky.copy_(torch.eye(4))
    assert (correlation(posterior) - expected).abs().max() > 0.7


@pytest.mark.parametrize("family", ["full-rank", "flow"])
def test_joint_families_refuse_bayesian_heads(family):
    base = tiny_pixel_base()
    with pytest.raises(ValueError, match="point-estimated heads"):
        make_guide(_model(base, priors=SteeringPriors(head_scale=1.0)), family)
    with pytest.raises(ValueError, match="--guide mean-field"):
        FitOptions(guide=family, priors=SteeringPriors(head_scale=1.0)).validate()
    with pytest.raises(ValueError, match="unknown guide family"):
        make_guide(_model(base), "low-rank")


NOISE_LEVELS = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0])  # τ(t) across the schedule


@module_local
class CurvedToy(TwoPortToy):
    """y_i ~ Normal(w_a exp(s_a τ_i), 1), the weight of port a at five noise levels; port b is
    unobserved (its posterior is its prior)."""

    def __init__(self):
        super().__init__()
        self.y = torch.tensor([1.0, 1.5, 3.0, 6.0, 12.0])

    def forward(self):
        weight = self.fusion[..., :1] * torch.exp(self.slope[..., :1] * NOISE_LEVELS)
        with pyro.plate("observations", len(self.y)):
            pyro.sample("y", dist.Normal(weight, 1.0), obs=self.y)

    def exact_posterior(self) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Mean and sd of port a's (log w, s), and KL(posterior ‖ prior), by quadrature on a grid."""
        grid = torch.linspace(-6, 6, 1201, dtype=torch.float64)
        log_fusion, slope = torch.meshgrid(grid + float(self.log_profile[0]), grid, indexing="ij")
        log_prior = -0.5 * (log_fusion - float(self.log_profile[0])) ** 2 - 0.5 * slope**2
        weight = torch.exp(log_fusion[..., None] + slope[..., None] * NOISE_LEVELS.double())
        log_posterior = log_prior - 0.5 * (self.y.double() - weight).square().sum(-1)
        posterior = torch.softmax(log_posterior.flatten(), 0).view_as(log_posterior)
        prior = torch.softmax(log_prior.flatten(), 0).view_as(log_prior)
        mean = torch.stack([(posterior * value).sum() for value in (log_fusion, slope)])
        sd = torch.stack([(posterior * (value - m) ** 2).sum().sqrt() for value, m in zip((log_fusion, slope), mean)])
        kl = float((posterior * (posterior.clamp_min(1e-300).log() - prior.log())).sum())
        return mean.float(), sd.float(), kl


def _port_a(guide) -> torch.Tensor:
    with seeded(0):
        draws = posterior_draws(guide, 4000)
    return torch.stack([draws["fusion"][:, 0].log(), draws["slope"][:, 0]], dim=1)


@pytest.fixture(scope="module")
def curved_flow() -> tuple[CurvedToy, FlowSteeringGuide]:
    """The flow fitted on the curved toy by SVI from the prior: 500 steps, 2 particles, lr 0.02
    decaying to 0.002."""
    model = CurvedToy()
    return model, _svi(model, "flow", lr=0.02, particles=2, steps=500)


@pytest.mark.slow  # 500 SVI steps of Pyro's per-trace overhead, two particles each
def test_the_flow_follows_a_curved_posterior(curved_flow):
    """Means within 0.25 posterior sd of the quadrature, sds within 15 %, and the joint KL within
    0.3 nats of the exact posterior's; the control, the flow before any step, is far off.
    (The bend itself, the correlation of log w with (s − E s)², is −0.30 exactly; fits like
    this one reach −0.06 to −0.17, so it is not asserted.)"""
    model, guide = curved_flow
    mean, sd, kl = model.exact_posterior()
    draws = _port_a(guide)
    assert ((draws.mean(0) - mean).abs() / sd).max() < 0.25, (draws.mean(0), mean, sd)
    assert ((draws.std(0) / sd) - 1).abs().max() < 0.15, (draws.std(0), sd)
    assert guide.total_kl() == pytest.approx(kl, abs=0.3)
    assert ((_port_a(_set_up(model, "flow")).mean(0) - mean).abs() / sd).max() > 2  # the control


@pytest.mark.slow  # shares the fit above
def test_the_flow_export_resamples_its_draws(curved_flow):
    """The export keeps the flow's own draws and resamples them: the means, sds and correlation
    of fresh draws from the flow. The control, a bank of the prior's draws, has none of them."""
    model, guide = curved_flow
    model.base = SimpleNamespace(num_train_timesteps=1000)
    model.reference = torch.ones(2)
    posterior = SteeringPosterior.from_guide(model, guide)
    assert len(posterior.bank) == len(guide.exported_draws())

    def statistics(draws: torch.Tensor) -> torch.Tensor:
        return torch.cat([draws.mean(0), draws.std(0), torch.corrcoef(draws.T)[0, 1:]])

    def exported(posterior) -> torch.Tensor:
        draws = posterior.draws(20000, torch.Generator().manual_seed(0))
        return torch.stack([draws["fusion"][:, 0].log(), draws["slope"][:, 0]], dim=1)

    expected = statistics(_port_a(guide))
    assert expected[-1] < -0.5  # log w and s of port a trade off a posteriori
    assert (statistics(exported(posterior)) - expected).abs().max() < 0.05
    posterior.bank = _set_up(model, "flow").exported_draws()
    assert (statistics(exported(posterior)) - expected).abs().max() > 0.5


def test_the_flow_scores_each_draw_by_its_forward_pass_not_by_inverting_it():
    """The ELBO's log q of a flow draw must be the exact log N(ξ) − log|det J| of the forward pass.
    A flow whose layers have moved far (every weight redrawn at N(0, 1)) makes the layers'
    sequential inverse lose precision; the control, the same flow scored through that inverse,
    is off by more than a nat on some draws, as the fit that diverged was."""
    model = CurvedToy()
    guide = _set_up(model, "flow")
    with torch.no_grad(), seeded(1):
        for parameter in guide.transform.parameters():
            parameter.normal_()
    latent = f"_{guide._pyro_name}_latent"
    errors, control_errors = [], []
    for seed in range(200):
        with seeded(seed):
            trace = pyro.poutine.trace(guide).get_trace()
        trace.compute_log_prob()
        with seeded(seed), torch.no_grad():
            noise = torch.randn(guide.latent_dim)  # the base draw the guide made
            theta = guide.transform(noise)
            exact = guide.get_base_dist().log_prob(noise) - guide.transform.log_abs_det_jacobian(noise, theta)
        site = trace.nodes[latent]
        torch.testing.assert_close(site["value"].detach(), theta)
        errors.append(float((site["log_prob"].detach() - exact).abs()))
        *layers, affine = guide.transform.parts
        uncached = ComposeTransform([*layers, AffineTransform(affine.loc, affine.scale, event_dim=1)])
        with torch.no_grad():
            control = dist.TransformedDistribution(guide.get_base_dist(), uncached).log_prob(theta.clone())
        control_errors.append(float((control - exact).abs()))
    assert max(errors) < 1e-3
    assert max(control_errors) > 1.0

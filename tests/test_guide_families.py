"""The two variational families of the coefficients: mean-field and full-rank.

The known answer: a linear-Gaussian toy in the guides' own unconstrained coordinates (log w and
s of two ports, with the package's priors) has a Normal posterior in closed form, with a strong
correlation. Set to it, the full-rank guide's closed forms (marginals, correlation, KL) and its
export must give it back; fitted by SVI from the prior, it must learn the correlation, which the
guide at the prior, the control, lacks.
"""

from types import SimpleNamespace

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO
from pyro.nn import PyroModule, PyroSample
from torch.distributions import MultivariateNormal, kl_divergence

from bayes_bps.bayes import FullRankSteeringGuide, SteeringPriors, make_guide, posterior_draws
from bayes_bps.bayes.exported import SteeringPosterior
from bayes_bps.bayes.local_params import module_local
from bayes_bps.training import FitOptions
from bayes_bps.utils.seeding import seeded
from tests.test_bayes import _model
from tests.test_diagnostics import _random_batch
from tests.tiny_models import tiny_pixel_base

NOISE_SD, OBSERVATIONS = 0.5, 40


@module_local  # as the package's model: the guides keep module-local parameters
class LinearToy(PyroModule):
    """y ~ Normal(X θ, NOISE_SD) with θ = (log w_a, log w_b, s_a, s_b) under the package's priors;
    it offers the guides what they read from `BayesianSteering`."""

    port_names, bayesian_heads, kl_weight = ["a", "b"], False, 1.0

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y, self.priors = x, y, SteeringPriors()
        self.log_profile = torch.tensor([1.0, 0.5])
        self.fusion = PyroSample(lambda self: self.priors.coefficient_distributions(self.log_profile)["fusion"])
        self.slope = PyroSample(lambda self: self.priors.coefficient_distributions(self.log_profile)["slope"])

    def unconstrained_prior(self, site):
        return self.priors.unconstrained(site, self.log_profile)

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
    pyro.set_rng_seed(0)
    guide = _set_up(model, "full-rank")
    elbo = Trace_ELBO(num_particles=2)
    optimizer = torch.optim.Adam(guide.parameters(), lr=0.1)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.02 ** (1 / 1000))  # to lr 0.002
    for _ in range(1000):
        loss = elbo.differentiable_loss(model, guide)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    assert (_draws_correlation(guide) - truth).abs().max() < 0.2
    assert (_draws_correlation(_set_up(model, "full-rank")) - truth).abs().max() > 0.7  # the control


def test_a_fresh_full_rank_guide_is_the_prior():
    """q = p at step 0: the prior's locations and sds, uncorrelated, on the steered tiny UNet."""
    base = tiny_pixel_base()
    model = _model(base)
    guide = make_guide(model, "full-rank")
    guide(_random_batch(base, 4))
    guide.start_at_prior()
    assert torch.allclose(guide.marginal("fusion")[0], model.log_profile)
    assert torch.allclose(guide.marginal("slope")[0], torch.zeros(len(model.port_names)))
    ones = torch.ones(len(model.port_names))
    assert all(torch.allclose(guide.marginal(site)[1], ones) for site in ("fusion", "slope"))
    assert torch.equal(guide.correlation_cholesky(), torch.eye(2 * len(model.port_names)))
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


def test_full_rank_refuses_bayesian_heads():
    base = tiny_pixel_base()
    with pytest.raises(ValueError, match="point-estimated heads"):
        make_guide(_model(base, priors=SteeringPriors(head_scale=1.0)), "full-rank")
    with pytest.raises(ValueError, match="--guide mean-field"):
        FitOptions(guide="full-rank", priors=SteeringPriors(head_scale=1.0)).validate()
    with pytest.raises(ValueError, match="unknown guide family"):
        make_guide(_model(base), "low-rank")

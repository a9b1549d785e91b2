"""The Bayesian steering model on a tiny base: priors, guide start, port weights, identification."""

import math
from dataclasses import replace

import pytest
import torch
from torch.distributions import biject_to
from torch.nn.attention import SDPBackend, sdpa_kernel

from bayes_bps.base import TrainingPairs
from bayes_bps.bayes import (
    BayesianSteering,
    ELBOObjective,
    SteeringPriors,
    kl_weight_at,
    per_example_temperature,
    port_weights,
    posterior_draws,
)
from bayes_bps.bayes.likelihood import pointwise_log_likelihood
from bayes_bps.bayes.objective import GUIDE_GROUP, strength_at
from bayes_bps.bayes.temperature import gauss_newton_precision
from bayes_bps.bayes.weights import STEERING_UNIT
from bayes_bps.data import make_dataset
from bayes_bps.steering import build_adapter, find_ports, profile_weights, steered_noise
from bayes_bps.steering.reference import hidden_scales
from tests.tiny_models import tiny_pixel_base


@pytest.fixture(scope="module")
def setup():
    base = tiny_pixel_base()
    pairs = TrainingPairs.encode(base, make_dataset("shapes", "sketch", length=4, resolution=16), 4)
    generator = torch.Generator().manual_seed(0)
    batch = pairs.noisy_batch(base, torch.arange(4), generator)
    return base, pairs, batch


def _model(base, priors=None, profile="head-heavy", pairs=None):
    torch.manual_seed(0)
    reference = ({p.name: 1.0 for p in find_ports(base.unet)} if pairs is None
                 else hidden_scales(base, pairs))
    return BayesianSteering(base, build_adapter(base, "tiny", 1, scale_free=True),
                            profile_weights(base.unet, profile), reference, n_train=4,
                            temperature=per_example_temperature(base), priors=priors)


def test_the_guide_starts_at_the_prior(setup):
    base, _, batch = setup
    priors = SteeringPriors(fusion_scale=0.3, slope_scale=1.5)
    objective = ELBOObjective(_model(base, priors), batch)
    median, guide = objective.guide.median(), objective.guide
    profile = torch.tensor(list(profile_weights(base.unet, "head-heavy").values()))
    torch.testing.assert_close(median["fusion"], profile)
    assert torch.all(median["slope"] == 0.0)
    for site, scale in (("fusion", 0.3), ("slope", 1.5)):
        torch.testing.assert_close(getattr(guide.scales, site), torch.full_like(profile, scale))
    assert per_example_temperature(base) == 1 / (3 * 16 * 16)


@pytest.mark.parametrize("family", ["mean-field", "flow"])
def test_a_guide_gone_non_finite_gives_a_nan_loss_for_the_trainer_to_report(setup, family):
    """A diverged guide (here, one parameter set to NaN) must reach the trainer as a non-finite
    loss, which stops the fit with its last good checkpoint (`test_fit.py`), not as an error of
    Pyro's from inside the guide; the control, the same objective before the NaN, is finite."""
    base, _, batch = setup
    objective = ELBOObjective(_model(base), batch, guide_family=family)
    assert torch.isfinite(objective(batch, 0))
    with torch.no_grad():
        next(objective.guide.parameters()).fill_(float("nan"))
    assert torch.isnan(objective(batch, 0))


@pytest.mark.parametrize("family, rate", [("mean-field", 1e-2), ("full-rank", 1e-2), ("flow", 1e-3)])
def test_the_guide_rate_defaults_to_its_familys_and_an_explicit_one_wins(setup, family, rate):
    """The flow's network takes a tenth of the Normals' rate unless --guide-lr says otherwise."""
    base, _, batch = setup
    objective = ELBOObjective(_model(base), batch, guide_family=family)

    def guide_rate(**rates) -> float:
        return next(group["lr"] for group in objective.parameter_groups(1e-3, **rates) if group["name"] == GUIDE_GROUP)

    assert guide_rate() == rate
    assert guide_rate(guide_lr=0.02) == 0.02


def test_the_posterior_profile_is_the_mean_of_each_ports_fusion_coefficient(setup):
    """At the prior, log w ~ N(log m, s²), so E[w] = m e^{s²/2} (the LogNormal mean, not its
    median m); a guide moved to twice the profile gives twice that (the control)."""
    base, _, batch = setup
    objective = ELBOObjective(_model(base, SteeringPriors(fusion_scale=0.5)), batch)
    profile = profile_weights(base.unet, "head-heavy")
    expected = {name: value * math.exp(0.5**2 / 2) for name, value in profile.items()}
    state = torch.get_rng_state()
    mean = objective.posterior_profile()
    assert torch.equal(torch.get_rng_state(), state) and list(mean) == list(profile)
    for name, value in mean.items():
        assert value == pytest.approx(expected[name], rel=0.05), name
    with torch.no_grad():
        objective.guide.locs.fusion += math.log(2.0)
    assert all(value == pytest.approx(2 * expected[name], rel=0.05)
               for name, value in objective.posterior_profile().items())


def test_the_guides_kl_to_the_prior_is_the_closed_form(setup):
    """0 at the prior; a location one prior sd away with half the sd: log 2 + (1/4 + 1)/2 − 1/2."""
    base, _, batch = setup
    guide = ELBOObjective(_model(base, SteeringPriors(fusion_scale=0.3, slope_scale=1.5)), batch).guide
    assert all(torch.allclose(kl, torch.zeros_like(kl), atol=1e-6) for kl in guide.kl_to_prior().values())
    with torch.no_grad():
        guide.locs.slope.add_(1.5)
    guide.scales.slope = guide.scales.slope.detach() * 0.5  # a PyroParam: set its constrained value
    divergences = guide.kl_to_prior()
    torch.testing.assert_close(divergences["slope"], torch.full_like(divergences["slope"], math.log(2) + 0.125))
    assert torch.allclose(divergences["fusion"], torch.zeros_like(divergences["fusion"]), atol=1e-6)


def test_the_pointwise_log_likelihood_is_each_examples_tempered_gaussian_density(setup):
    base, _, batch = setup
    model = _model(base)
    draws = {name: value[None].repeat(2, 1) for name, value in model.prior_median().items()}
    draws["fusion"][1] *= 3  # a second draw that steers harder
    table = pointwise_log_likelihood(model, draws, batch)
    assert table.shape == (2, len(batch.noise)) and not torch.allclose(table[0], table[1])
    predicted = steered_noise(base, model.adapter, batch, model.weights_for({k: v[0] for k, v in draws.items()}))
    sigma = model.noise_scale(batch.timesteps)[:, None, None, None]
    by_hand = torch.distributions.Normal(predicted, sigma).log_prob(batch.noise).flatten(1).sum(1) * model.temperature
    torch.testing.assert_close(table[0], by_hand)


def test_at_step_zero_the_steered_model_is_the_frozen_base_and_then_it_steers(setup):
    base, _, batch = setup
    model = _model(base)
    with torch.no_grad():
        frozen = base.predict_noise(batch.noisy, batch.timesteps, batch.caption_states)
        assert (model(batch, strength=strength_at(0, 100)) - frozen).abs().max() == 0
        assert (model(batch) - frozen).abs().max() > 1e-3  # random heads, full strength
    assert [strength_at(step, 4) for step in (0, 1, 4, 9)] == [0.0, 0.25, 1.0, 1.0]


def test_port_weights_are_fusion_times_time_profile_times_scale():
    fusion, slope = torch.tensor([2.0, 1.0]), torch.tensor([1.5, 0.0])
    weights = port_weights(fusion, slope, torch.tensor([0, 500, 1000]), 1000, ["a", "b"],
                           scale=torch.tensor([0.5, 1.0]))
    tau = torch.tensor([-1.0, 0.0, 1.0])  # τ(t) = 2t/T − 1
    torch.testing.assert_close(weights["a"], 0.5 * 2.0 * torch.exp(1.5 * tau))
    torch.testing.assert_close(weights["b"], torch.ones(3))


def test_a_residual_is_exactly_as_large_as_its_weight_says(setup):
    """Scale-free heads: the residual added at port k has RMS w_k exp(s_k τ) ρ_k / 16, whatever
    the network's weights, so no parameter of the network can stand in for w_k."""
    base, pairs, batch = setup
    model = _model(base, pairs=pairs)
    coefficients = model.prior_median()
    time_embedding = base.unet.time_embedding(base.unet.get_time_embed(batch.noisy, batch.timesteps))
    with torch.no_grad():
        residuals = model.adapter(batch.conditions, time_embedding)
        weights = model.weights_for(coefficients)(batch.timesteps)
        for head in model.adapter.heads:  # rescaling a head changes nothing
            head.weight.mul_(7.0)
            head.bias.mul_(7.0)
        rescaled = model.adapter(batch.conditions, time_embedding)
    coefficients["slope"] = torch.linspace(-1, 1, len(model.port_names))
    weights = model.weights_for(coefficients)(batch.timesteps)
    tau = 2 * batch.timesteps.float() / base.num_train_timesteps - 1
    for k, name in enumerate(model.port_names):
        rms = (weights[name].view(-1, 1, 1, 1) * residuals[name]).square().mean(dim=(1, 2, 3)).sqrt()
        expected = coefficients["fusion"][k] * torch.exp(coefficients["slope"][k] * tau) * model.reference[k]
        expected = expected * STEERING_UNIT
        torch.testing.assert_close(rms, expected, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(rescaled[name], residuals[name], rtol=1e-4, atol=1e-5)
    assert all(value > 0 for value in model.reference)


def test_a_zero_init_adapter_is_refused(setup):
    base, _, _ = setup
    with pytest.raises(ValueError, match="scale-free adapter"):
        BayesianSteering(base, build_adapter(base, "tiny", 1), profile_weights(base.unet, "head-heavy"),
                         {p.name: 1.0 for p in find_ports(base.unet)}, 4, 1.0)


def test_bayesian_heads_are_drawn_and_exported_as_their_median(setup):
    base, _, batch = setup
    objective = ELBOObjective(_model(base, SteeringPriors(head_scale=0.05)), batch)
    draws = posterior_draws(objective.guide, 3)
    assert "head.0.weight" in draws and draws["head.0.weight"].shape[0] == 3
    assert draws["head.0.weight"].std() > 0.02  # the guide starts at the Normal(0, 0.05) prior
    adapter = objective.export_adapter()
    assert torch.equal(adapter.heads[0].weight, objective.guide.median()["head.0.weight"])
    concentration = objective.guide.head_concentration()
    assert set(concentration) == {site for site in draws if site.startswith("head.")}
    assert all(value == 0.0 for value in concentration.values())  # at the prior: loc 0, every draw random
    with torch.no_grad():
        objective.guide.locs.get_parameter("head.0.weight").fill_(0.1)  # σ = 0.05 everywhere: ‖μ‖/‖σ‖ = 2
    assert objective.guide.head_concentration()["head.0.weight"] == pytest.approx(2.0, rel=1e-4)


def test_a_profile_with_zero_weights_cannot_be_a_lognormal_prior(setup):
    base, _, _ = setup
    with pytest.raises(ValueError, match="positive profile weights"):
        _model(base, profile="encoder-only")


def test_kl_annealing_schedule():
    assert [kl_weight_at(step, 4) for step in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert kl_weight_at(0, 0) == 1.0


def _gradients(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}


def test_one_pass_trains_the_network_the_noise_scale_and_the_guide(setup):
    """The network is fitted on the expected log-likelihood under q, in the same ELBO pass as
    the coefficients: every group gets a gradient from one backward."""
    base, _, batch = setup
    objective = ELBOObjective(_model(base), batch, warmup_steps=0)
    torch.manual_seed(1)
    objective(batch, step=5).backward()
    network, guide = _gradients(objective.model.adapter), _gradients(objective.guide)
    noise = _gradients(objective.model.noise_scale)
    assert len(guide) == 4  # loc and scale of fusion and slope
    for group in (network, guide, noise):
        assert group and all(torch.isfinite(g).all() for g in group.values())
        assert any(g.abs().sum() > 0 for g in group.values())
    groups = objective.parameter_groups(1e-3, guide_lr=1e-2, noise_lr=5e-2)
    assert [g["name"] for g in groups] == ["network", "noise scale", "guide"]
    assert groups[1]["max_grad_norm"] is None and "max_grad_norm" not in groups[0]  # network: trainer's clip
    # an L2 penalty (--weight-decay) is the network's alone: σ(t) and the guide are never decayed
    assert groups[1]["weight_decay"] == groups[2]["weight_decay"] == 0.0 and "weight_decay" not in groups[0]


def test_bayesian_heads_learn_from_the_elbo(setup):
    base, _, batch = setup
    objective = ELBOObjective(_model(base, SteeringPriors(head_scale=0.05)), batch)
    assert objective.loss_label == "-elbo per pair"
    objective(batch, step=3).backward()
    assert any(g.abs().sum() > 0 for g in _gradients(objective.model.adapter).values())


def _elbo_at_prior(base, batch, head_scale: float, guide_scale: float) -> float:
    """The negative ELBO, with seeded draws, of a Bayesian-heads model under a Normal(0,
    `head_scale`) prior whose guide is Normal(0, `guide_scale`) on every head weight."""
    objective = ELBOObjective(_model(base, SteeringPriors(head_scale=head_scale)), batch)
    guide = objective.guide
    with torch.no_grad():
        for name, scale in guide.scales.named_parameters():
            if name.startswith("head."):
                scale.copy_(biject_to(guide.scale_constraint).inv(torch.full_like(scale, guide_scale)))
    torch.manual_seed(3)
    return objective(batch, step=10).item()


def test_the_head_prior_scale_sets_units_not_the_posterior(setup):
    """Scale-free heads predict the same noise for heads W and c·W, and KL(N(cμ, cσ) ‖ N(0, cs))
    = KL(N(μ, σ) ‖ N(0, s)): the negative ELBO is the same at every prior scale s once the guide
    is scaled with it, so s cannot regularise the heads (only the likelihood's weight λ can).
    Control: the same guide under a prior of another scale does change the ELBO."""
    base, _, batch = setup
    small, large = _elbo_at_prior(base, batch, 0.1, 0.1), _elbo_at_prior(base, batch, 1.0, 1.0)
    assert small == pytest.approx(large, rel=1e-4)
    assert abs(_elbo_at_prior(base, batch, 1.0, 0.1) - small) > 100 * abs(large - small)


@pytest.mark.slow  # a Hessian through the UNet: ~5 s
def test_the_gauss_newton_precision_is_the_hessian_where_the_residual_vanishes(setup):
    """Observed noise set to the model's own prediction at θ0: the residual is zero there, so the
    Hessian of the tempered, plate-scaled negative log-likelihood in θ = (log w, s) is exactly
    the Gauss–Newton matrix, which `gauss_newton_precision` builds from forward differences."""
    base, pairs, batch = setup
    model = _model(base, pairs=pairs)
    ports = len(model.port_names)
    theta0 = torch.cat([model.log_profile + 0.3 * torch.randn(ports, generator=torch.Generator().manual_seed(1)),
                        0.5 * torch.ones(ports)]).double()

    def coefficients(theta):
        return {"fusion": theta[:ports].exp().float(), "slope": theta[ports:].float()}

    def predict(theta):
        return steered_noise(base, model.adapter, batch, model.weights_for(coefficients(theta)))

    with torch.no_grad():
        observed = replace(batch, noise=predict(theta0))
    sigma = model.noise_scale(batch.timesteps).detach()
    scale = float(model.temperature) * model.n_train / len(batch.timesteps)

    def negative_log_likelihood(theta):
        residual = (observed.noise - predict(theta)).flatten(1)
        return (0.5 * scale * (residual.square().sum(dim=1) / sigma**2).sum()).double()

    with sdpa_kernel(SDPBackend.MATH):  # the fused CPU attention kernel has no second derivative
        hessian = torch.autograd.functional.hessian(negative_log_likelihood, theta0)
    precision = gauss_newton_precision(model, coefficients(theta0), observed)
    assert precision.shape == (2 * ports, 2 * ports)
    torch.testing.assert_close(precision, hessian, rtol=0.02, atol=0.02 * hessian.diagonal().abs().max().item())
    assert hessian.diagonal().min() > 0  # the ports do steer: a control against an all-zero match

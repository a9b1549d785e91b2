"""The NUTS reference, SVI on the same batch, their comparison, and the InferenceData layout.

The known answer: with the ports' reference scales set to zero no port steers, so the steered
UNet is the frozen one whatever the coefficients are, the likelihood is flat in them, and the
posterior IS the prior. NUTS and SVI must both give back the prior's mean and sd (in the
guide's space: log w).

The shared NUTS run is preconditioned by a guide that is wrong on purpose, so the same check
also shows that the coordinates `whiten_by` sets change NUTS's geometry, not its target.

Every NUTS leapfrog step is a forward and backward pass of the steered UNet, so one short NUTS
run is shared by the tests, on a batch of 4 random 8x8 samples: the tiny UNet takes any grid
divisible by 2, and a quarter of the pixels make each pass about three times cheaper.
"""

import numpy as np
import pytest
import torch
from torch.distributions import biject_to

from bayes_bps.base import NoisyBatch
from bayes_bps.bayes import SteeringGuide, SteeringPriors, nuts, posterior_draws, prior_draws
from bayes_bps.bayes.diagnostics import (
    compare_posteriors,
    comparison_summary,
    tempered_loo,
    to_inference_data,
)
from bayes_bps.bayes.nuts import nuts_reference, svi_on_batch
from bayes_bps.steering import find_ports
from tests.test_bayes import _model
from tests.tiny_models import tiny_pixel_base

CHAINS, WARMUP, DRAWS = 2, 40, 100
SVI_STEPS = 30


def _random_batch(base, size: int) -> NoisyBatch:
    """`size` random 8x8 samples, noised at random timesteps, with random conditions."""
    generator = torch.Generator().manual_seed(0)
    samples, noise = torch.randn(2, size, 3, 8, 8, generator=generator)
    timesteps = torch.randint(0, base.num_train_timesteps, (size,), generator=generator)
    return NoisyBatch(indices=torch.arange(size), noisy=base.add_noise(samples, noise, timesteps),
                      timesteps=timesteps, noise=noise, conditions=torch.rand(size, 1, 8, 8, generator=generator),
                      caption_states=base.encode_captions(["a red circle"] * size))


def _wrong_guide(model, batch) -> SteeringGuide:
    """A guide that is wrong on purpose: locations one prior sd off the prior's, sds halved."""
    wrong = SteeringGuide(model)
    wrong(batch)
    wrong.start_at_prior()
    with torch.no_grad():
        for location in wrong.locs.parameters():
            location.add_(1.0)
        for scale in wrong.scales.parameters():
            scale.copy_(biject_to(wrong.scale_constraint).inv(torch.full_like(scale, 0.5)))
    return wrong


@pytest.fixture(scope="module")
def setup():
    """One NUTS run, preconditioned by the wrong guide: coordinates must change only NUTS's
    geometry, never its target, so with the flat likelihood it still has to give back the prior."""
    base = tiny_pixel_base()
    batch = _random_batch(base, 4)
    model = _model(base)
    model.reference.zero_()  # no port steers: the likelihood is flat in the coefficients
    model.kl_weight = 0.5  # as if a fit stopped mid-annealing: the reference must not care
    wrong = _wrong_guide(model, batch)
    rng_before = torch.get_rng_state()
    reference = nuts_reference(model, batch, num_samples=DRAWS, warmup_steps=WARMUP, num_chains=CHAINS, seed=0,
                               whiten_by=wrong)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's random stream is untouched
    assert model.kl_weight == 0.5 and all(p.requires_grad for p in model.adapter.parameters())
    losses = []
    guide = svi_on_batch(model, batch, steps=SVI_STEPS, lr=0.01, seed=0, losses=losses)
    return base, model, batch, reference, guide, losses, wrong


@pytest.mark.slow
def test_nuts_chains_have_the_promised_shapes_and_mix(setup):
    _, model, _, reference, _, _, _ = setup
    ports = len(model.port_names)
    assert {name: tuple(d.shape) for name, d in reference.draws.items()} == {
        name: (CHAINS, DRAWS, ports) for name in ("fusion", "slope")}
    assert reference.diverging.shape == (CHAINS, DRAWS) and reference.num_divergences == 0
    assert not torch.equal(reference.draws["fusion"][0], reference.draws["fusion"][1])  # own seeds


@pytest.mark.slow
def test_without_steering_nuts_and_svi_recover_the_prior(setup):
    _, model, _, reference, guide, losses, wrong = setup
    table = compare_posteriors(posterior_draws(guide, 4000), reference.draws, model.port_names)
    summary = comparison_summary(table)
    # R-hat < 1.1: the classic threshold, since the max over 14 split R-hats of two 100-draw
    # chains scatters up to about 1.07 even for a perfectly mixing sampler. With a bulk ESS of
    # at least 100 the Monte Carlo s.e. of a NUTS mean is at most 0.1 prior sd, so the stated
    # tolerances (means within 0.3 prior sd, sds within 25 %) are about 3 s.e.
    assert np.isfinite(table.r_hat).all() and table.r_hat.max() < 1.1, summary
    assert table.ess_bulk.min() > 100, summary
    for coefficient, (location, scale) in {"log_fusion": (model.log_profile.numpy(), 1.0),
                                           "slope": (0.0, 1.0)}.items():
        rows = table.loc[coefficient]
        for method in ("nuts", "svi"):
            assert np.abs(rows[f"{method}_mean"] - location).max() < 0.3 * scale, (method, coefficient, summary)
            assert np.abs(rows[f"{method}_sd"] / scale - 1).max() < 0.25, (method, coefficient, summary)
    assert table.discrepancy_sd.max() < 0.5 and len(losses) == SVI_STEPS
    # the control: the guide that set NUTS's coordinates is itself far from that posterior
    wrong_table = compare_posteriors(posterior_draws(wrong, 4000), reference.draws, model.port_names)
    assert wrong_table.discrepancy_sd.min() > 0.6 and wrong_table.sd_ratio.max() < 0.7


@pytest.mark.slow  # NUTS, briefly
def test_nuts_in_its_own_coordinates_has_the_promised_shapes_and_leaves_the_rng_alone():
    """The unpreconditioned path, in a few steps: shapes, own seeds, the caller's RNG untouched."""
    base = tiny_pixel_base()
    batch = _random_batch(base, 2)
    model = _model(base)
    rng_before = torch.get_rng_state()
    reference = nuts_reference(model, batch, num_samples=4, warmup_steps=4, num_chains=2, seed=0)
    assert torch.equal(torch.get_rng_state(), rng_before)
    ports = len(model.port_names)
    assert {name: tuple(d.shape) for name, d in reference.draws.items()} == {
        name: (2, 4, ports) for name in ("fusion", "slope")}
    assert not torch.equal(reference.draws["fusion"][0], reference.draws["fusion"][1])


def test_compare_posteriors_measures_discrepancy_in_reference_sd():
    """SVI draws 1 + 2z against NUTS draws z (z standardised exactly): discrepancy 1, sd ratio 2."""
    def standardised(*shape):
        z = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)), dtype=torch.float64)
        flat = z.flatten(0, -2)
        return (z - flat.mean(0)) / flat.std(0)

    nuts = {"slope": standardised(2, 500, 3)}
    svi = {name: 1 + 2 * standardised(2000, 3) for name in nuts}
    nuts["fusion"], svi["fusion"] = standardised(2, 500, 3).exp(), (1 + 2 * standardised(2000, 3)).exp()
    table = compare_posteriors(svi, nuts, ["a", "b", "c"])
    assert list(table.index.get_level_values("coefficient").unique()) == ["log_fusion", "slope"]
    np.testing.assert_allclose(table.discrepancy_sd, 1.0)
    np.testing.assert_allclose(table.sd_ratio, 2.0)
    assert "max 1.00 NUTS sd" in comparison_summary(table) and "median 1.00" in comparison_summary(table)
    # 1000 independent NUTS draws: a mean's Monte Carlo error is 1/√1000 = 0.032 of the sd
    assert table.mcse_sd.between(0.025, 0.04).all()
    with pytest.raises(ValueError, match="two NUTS chains"):
        compare_posteriors(svi, {name: d[:1] for name, d in nuts.items()}, ["a", "b", "c"])


def test_the_monte_carlo_error_of_a_nuts_mean_grows_with_autocorrelation():
    """AR(1) chains with ρ = 0.9 have ESS ≈ n (1 − ρ)/(1 + ρ), so the mean's error is √19 ≈ 4.4×
    that of independent draws; independent draws (the control) stay at 1/√n."""
    generator = torch.Generator().manual_seed(0)
    innovations = torch.randn(2, 2000, 2, generator=generator, dtype=torch.float64)
    chains = torch.empty_like(innovations)
    chains[:, 0] = innovations[:, 0]
    for i in range(1, chains.shape[1]):
        chains[:, i] = 0.9 * chains[:, i - 1] + (1 - 0.9**2) ** 0.5 * innovations[:, i]
    nuts = {"slope": torch.stack([chains[..., 0], innovations[..., 0]], -1),
            "fusion": torch.stack([chains[..., 1], innovations[..., 1]], -1).exp()}
    svi = {name: draws[0] for name, draws in nuts.items()}
    table = compare_posteriors(svi, nuts, ["correlated", "independent"])
    correlated = table.xs("correlated", level="port").mcse_sd
    independent = table.xs("independent", level="port").mcse_sd
    assert correlated.between(0.05, 0.1).all()  # √(19 / 4000) = 0.069, give or take the ESS estimate's noise
    assert independent.between(0.012, 0.02).all()  # 1/√4000 = 0.016


@pytest.mark.slow  # the NUTS fixture
def test_inference_data_has_the_promised_groups_dims_and_coordinates(setup, tmp_path):
    base, model, _, reference, guide, losses, _ = setup
    ports = find_ports(base.unet)
    idata = to_inference_data(reference.draws, prior_draws(model, 50), model.port_names, ports=ports,
                              sample_stats=reference.sample_stats, svi_losses=losses, loss_name="-elbo")
    assert set(idata.groups()) == {"posterior", "prior", "sample_stats", "svi_trace"}
    assert dict(idata.posterior.sizes) == {"chain": CHAINS, "draw": DRAWS, "port": len(ports)}
    assert dict(idata.prior.sizes) == {"chain": 1, "draw": 50, "port": len(ports)}
    assert idata.posterior.fusion.dims == ("chain", "draw", "port")
    assert list(idata.posterior.level.values) == [p.level for p in ports]
    assert list(idata.prior.stage.values) == [p.stage for p in ports]
    assert idata.sample_stats.diverging.dims == ("chain", "draw")
    assert idata.svi_trace.loss.dims == ("step",) and idata.svi_trace.attrs["loss_name"] == "-elbo"
    idata.to_netcdf(str(tmp_path / "posterior.nc"))  # every group survives the file format

    # the call viz/report.py makes: guide draws (one chain) and prior draws, no extras
    plain = to_inference_data(posterior_draws(guide, 20), prior_draws(model, 20), model.port_names)
    assert set(plain.groups()) == {"posterior", "prior"} and plain.posterior.sizes["chain"] == 1
    with pytest.raises(ValueError, match="do not match"):
        to_inference_data(reference.draws, None, model.port_names, ports=ports[::-1])


@pytest.mark.slow  # the NUTS fixture
def test_nuts_refuses_bayesian_heads(setup):
    base, _, batch, _, _, _, _ = setup
    with pytest.raises(ValueError, match="point-estimated port heads"):
        nuts_reference(_model(base, SteeringPriors(head_scale=0.05)), batch, num_samples=1, warmup_steps=1)


def _conjugate_tempered_loo(temperature: float, draws: int = 4000):
    """θ ~ N(0, 2²), y_i ~ N(θ, 1) tempered by λ: exact posterior draws, their stored terms
    λ log p(y_i | θ), and the closed-form leave-one-out predictive log density of every y_i."""
    generator = np.random.default_rng(0)
    y = generator.normal(1.5, 1.0, size=12)
    prior_precision = 1 / 4

    def posterior(total, count):  # mean and variance of θ given `count` tempered points summing to `total`
        precision = prior_precision + temperature * count
        return temperature * total / precision, 1 / precision

    mean, variance = posterior(y.sum(), len(y))
    theta = generator.normal(mean, variance**0.5, size=draws)
    log_p = -0.5 * (y[:, None] - theta[None]) ** 2 - 0.5 * np.log(2 * np.pi)
    exact = []
    for i in range(len(y)):
        loo_mean, loo_variance = posterior(y.sum() - y[i], len(y) - 1)
        spread = 1 + loo_variance
        exact.append(-0.5 * (y[i] - loo_mean) ** 2 / spread - 0.5 * np.log(2 * np.pi * spread))
    tempered = torch.as_tensor(temperature * log_p.T)  # (draws, examples), as posterior.nc stores it
    coefficients = {"fusion": torch.as_tensor(theta)[:, None], "slope": torch.zeros(draws, 1)}
    idata = to_inference_data(coefficients, None, ["port"], log_likelihood=tempered, temperature=temperature)
    return idata, np.array(exact)


@pytest.mark.parametrize("temperature", [1.0, 0.05])
def test_tempered_loo_matches_the_closed_form_leave_one_out_predictive(temperature):
    import arviz as az

    idata, exact = _conjugate_tempered_loo(temperature)
    loo = tempered_loo(idata)
    np.testing.assert_allclose(loo["loo_i"].values, exact, atol=0.02)
    assert loo["elpd_loo"] == pytest.approx(exact.sum(), abs=0.1)
    assert (loo["pareto_k"].values < 0.5).all() and loo["n_data_points"] == len(exact)
    naive = az.loo(idata, pointwise=True)  # ArviZ's own, which reads the stored terms as the likelihood
    if temperature == 1.0:
        np.testing.assert_allclose(naive["loo_i"].values, loo["loo_i"].values, rtol=1e-10)
    else:  # the control: the tempered terms taken for the likelihood are nowhere near the answer
        assert np.abs(naive["loo_i"].values - exact).min() > 0.5
    assert set(az.compare({"a": loo, "b": tempered_loo(_conjugate_tempered_loo(1.0)[0])}).index) == {"a", "b"}
    with pytest.raises(ValueError, match="temperature"):
        to_inference_data({"fusion": torch.zeros(4, 1), "slope": torch.zeros(4, 1)}, None, ["port"],
                          log_likelihood=torch.zeros(4, 3))


@pytest.mark.parametrize("family", ["mean-field", "flow"])
def test_a_killed_svi_on_the_batch_resumes_where_it_stopped(family, tmp_path, monkeypatch):
    """Killed after its first checkpoint (step 3 of 6), SVI resumes from it and ends where an
    uninterrupted run ends, to the last bit; the losses of all six steps are kept."""
    base = tiny_pixel_base()
    batch = _random_batch(base, 4)
    model = _model(base)
    settings = {"steps": 6, "lr": 0.05, "final_lr": 0.01, "seed": 0, "num_particles": 2, "family": family}
    uninterrupted_losses = []
    uninterrupted = svi_on_batch(model, batch, losses=uninterrupted_losses, **settings)

    checkpoint, save = tmp_path / "svi.partial", nuts.save_atomic

    def save_then_die(value, path):
        save(value, path)
        raise KeyboardInterrupt

    monkeypatch.setattr(nuts, "save_atomic", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        svi_on_batch(model, batch, checkpoint=checkpoint, checkpoint_every=3, **settings)
    monkeypatch.setattr(nuts, "save_atomic", save)
    assert len(torch.load(checkpoint, weights_only=False)["losses"]) == 3
    losses = []
    resumed = svi_on_batch(model, batch, checkpoint=checkpoint, checkpoint_every=3, losses=losses, **settings)
    assert losses == uninterrupted_losses and len(losses) == 6
    for (name, value), (_, expected) in zip(resumed.state_dict().items(), uninterrupted.state_dict().items()):
        assert torch.equal(value, expected), name

"""Parameter recovery: data simulated from a steered tiny UNet with known coefficients w*.

The synthetic ε targets are the steered UNet's own prediction at w* plus Gaussian noise, so the
model is exactly right and the planted truth is known. The fitted posterior must cover w* and
sit closer to it than the prior does where w* departs from the prior median; simulation-based
calibration repeats that with w* drawn from the prior; the sandwich temperature must come out
near 1 for independent pixel noise and far below 1 when the noise is shared by blocks of pixels.
"""

import math

import pytest
import torch

from bayes_bps.base import NoisyBatch, TrainingPairs
from bayes_bps.bayes import BayesianSteering, ELBOObjective, per_example_temperature, posterior_draws
from bayes_bps.bayes.temperature import batch_traces
from bayes_bps.data import make_dataset
from bayes_bps.steering import build_adapter, profile_weights, steered_noise
from bayes_bps.steering.reference import hidden_scales
from bayes_bps.utils.seeding import seeded
from tests.tiny_models import tiny_pixel_base

EXAMPLES, NOISE_SD, STEPS = 32, 0.05, 250


@pytest.fixture(scope="module")
def world():
    """The tiny base, 16 shapes pairs, and a fixed random scale-free network θ*."""
    base = tiny_pixel_base()
    pairs = TrainingPairs.encode(base, make_dataset("shapes", "sketch", length=16, resolution=16), 16)
    torch.manual_seed(0)
    adapter = build_adapter(base, "tiny", 1, scale_free=True).requires_grad_(False)
    return base, pairs, adapter, hidden_scales(base, pairs)


def _model(world, temperature=None):
    base, pairs, adapter, reference = world
    return BayesianSteering(base, adapter, profile_weights(base.unet, "head-heavy"), reference, EXAMPLES,
                            temperature or per_example_temperature(base))


def simulate(world, model, truth, seed, block_noise=False):
    """EXAMPLES noised pairs and targets ε̂(θ*, w*) + noise; `block_noise`: one noise value per
    8x8 block of pixels (per channel), a residual correlated over 64 pixels."""
    base, pairs, adapter, _ = world
    generator = torch.Generator().manual_seed(seed)
    which = torch.arange(EXAMPLES) % len(pairs)
    timesteps = torch.randint(0, base.num_train_timesteps, (EXAMPLES,), generator=generator)
    noisy = base.add_noise(pairs.samples[which], torch.randn(pairs.samples[which].shape, generator=generator),
                           timesteps)
    full = NoisyBatch(torch.arange(EXAMPLES), noisy, timesteps, noisy, pairs.conditions[which],
                      pairs.caption_states[which])
    with torch.no_grad():
        clean = steered_noise(base, adapter, full, model.weights_for(truth))
    if block_noise:
        noise = torch.randn(EXAMPLES, clean.shape[1], 2, 2, generator=generator).repeat_interleave(8, -1)
        noise = noise.repeat_interleave(8, -2)
    else:
        noise = torch.randn(clean.shape, generator=generator)
    full.noise = clean + NOISE_SD * noise
    return full


def _subset(full: NoisyBatch, indices: torch.Tensor) -> NoisyBatch:
    return NoisyBatch(indices, full.noisy[indices], full.timesteps[indices], full.noise[indices],
                      full.conditions[indices], full.caption_states[indices])


def fit_posterior(model, data, seed=0, steps=STEPS):
    """SVI on the simulated data with the network fixed at θ*: the guide and σ(t) learn."""
    generator = torch.Generator().manual_seed(seed)
    objective = ELBOObjective(model, _subset(data, torch.arange(8)), warmup_steps=0)
    optimizer = torch.optim.Adam([{"params": list(objective.guide.parameters()), "lr": 0.03},
                                  {"params": list(model.noise_scale.parameters()), "lr": 0.05}])
    for step in range(1, steps + 1):
        loss = objective(_subset(data, torch.randperm(EXAMPLES, generator=generator)[:8]), step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with seeded(seed):
        return posterior_draws(objective.guide, 2000)


@pytest.mark.slow  # about 45 s
def test_the_posterior_recovers_planted_fusion_coefficients(world):
    model = _model(world)
    prior = model.prior_median()
    factors = torch.tensor([4.0, 1.0, 0.25, 1.0, 1.0, 1.0, 1.0])  # down.0.0 up, mid down, the rest at the prior
    truth = {**prior, "fusion": prior["fusion"] * factors}
    draws = fit_posterior(model, simulate(world, model, truth, seed=1))
    low, median, high = draws["fusion"].log().quantile(torch.tensor([0.03, 0.5, 0.97]), dim=0)
    target = truth["fusion"].log()
    assert torch.all((low <= target) & (target <= high)), (low.exp(), truth["fusion"], high.exp())
    moved = factors != 1
    assert torch.all((median - target)[moved].abs() < (prior["fusion"].log() - target)[moved].abs())
    assert torch.all((high - low)[moved] < 2 * 1.96 * model.priors.fusion_scale / 2)  # informed, not the prior
    # type-II ML σ(t), from 1 at the start, ends within 2x of the true noise (its σ² estimates the
    # expected residual under q, which q's spread inflates; measured 1.2-1.6x after 250 steps)
    sigma = model.noise_scale.log_scale.exp()
    assert torch.all((sigma > 0.8 * NOISE_SD) & (sigma < 2 * NOISE_SD)), sigma


def test_a_guide_that_never_moved_misses_the_truth(world):
    """The control: the prior (the guide before any step) does not cover the planted w*."""
    model = _model(world)
    prior = model.prior_median()
    objective = ELBOObjective(model, simulate(world, model, prior, seed=1), warmup_steps=0)
    with seeded(0):
        draws = posterior_draws(objective.guide, 2000)
    low, high = draws["fusion"].log().quantile(torch.tensor([0.03, 0.97]), dim=0)
    target = (prior["fusion"] * 4.0)[0].log()
    assert (high[0] - low[0]) > 3.5 and (target < high[0])  # wide: it says nothing about the data


@pytest.mark.slow
def test_simulation_based_calibration_of_the_fusion_posterior(world):
    """w* drawn from the prior, data simulated, posterior fitted: over replicates and ports the
    truth's rank among the posterior draws is roughly uniform (its 94 % interval covers it in
    about 94 % of cases)."""
    ranks, covered = [], []
    for replicate in range(3):
        model = _model(world)
        with seeded(100 + replicate):
            truth = {**model.prior_median(), "fusion": model.coefficient_priors()["fusion"].sample()}
        draws = fit_posterior(model, simulate(world, model, truth, seed=200 + replicate), seed=replicate)
        log_draws, target = draws["fusion"].log(), truth["fusion"].log()
        ranks.append((log_draws < target).double().mean(dim=0))
        low, high = log_draws.quantile(torch.tensor([0.03, 0.97]), dim=0)
        covered.append((low <= target) & (target <= high))
    ranks, covered = torch.cat(ranks), torch.cat(covered).double()
    assert covered.mean() >= 0.8, covered.mean()
    assert 0.25 < ranks.mean() < 0.75 and ranks.std() > 0.15, (ranks.mean(), ranks.std())


@pytest.mark.slow  # ~6 s
def test_the_sandwich_temperature_is_one_for_independent_noise_and_small_for_correlated_noise(world):
    model = _model(world)
    truth = model.prior_median()
    estimates = {}
    for correlated in (False, True):
        data = simulate(world, model, truth, seed=3, block_noise=correlated)
        with torch.no_grad():
            model.noise_scale.log_scale.fill_(math.log(NOISE_SD))
        traces = [batch_traces(model, truth, _subset(data, torch.arange(i, i + 8))) for i in (0, 8, 16, 24)]
        estimates[correlated] = sum(h for h, _ in traces) / sum(j for _, j in traces)
    assert 0.7 < estimates[False] < 1.4, estimates  # well specified: λ = 1
    assert estimates[True] < 0.5 * estimates[False], estimates  # correlated pixels count for less

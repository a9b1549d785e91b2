"""The Bayesian steering model on a tiny base: priors, guide start, port weights, errors."""

import pytest
import torch

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
from bayes_bps.data import make_dataset
from bayes_bps.steering import build_adapter, profile_weights
from tests.tiny_models import tiny_pixel_base


@pytest.fixture(scope="module")
def setup():
    base = tiny_pixel_base()
    pairs = TrainingPairs.encode(base, make_dataset("shapes", "sketch", length=4, resolution=16), 4)
    generator = torch.Generator().manual_seed(0)
    batch = pairs.noisy_batch(base, torch.arange(4), generator)
    return base, pairs, batch


def _model(base, priors=None, profile="head-heavy"):
    torch.manual_seed(0)
    return BayesianSteering(base, build_adapter(base, "tiny", 1), profile_weights(base.unet, profile),
                            n_train=4, temperature=per_example_temperature(base), priors=priors)


def test_the_guide_starts_at_the_prior(setup):
    base, _, batch = setup
    priors = SteeringPriors(fusion_scale=0.3, gate_bias_scale=0.7, gate_slope_scale=1.5)
    objective = ELBOObjective(_model(base, priors), batch)
    median, guide = objective.guide.median(), objective.guide
    profile = torch.tensor(list(profile_weights(base.unet, "head-heavy").values()))
    torch.testing.assert_close(median["fusion"], profile)
    assert torch.all(median["gate_bias"] == 3.0) and torch.all(median["gate_slope"] == 0.0)
    for site, scale in (("fusion", 0.3), ("gate_bias", 0.7), ("gate_slope", 1.5)):
        torch.testing.assert_close(getattr(guide.scales, site), torch.full_like(profile, scale))
    assert per_example_temperature(base) == 1 / (3 * 16 * 16)


def test_at_initialisation_the_steered_model_is_the_frozen_prior(setup):
    base, _, batch = setup
    model = _model(base)
    with torch.no_grad():
        steered = model(batch)
        frozen = base.predict_noise(batch.noisy, batch.timesteps, batch.caption_states)
    assert (steered - frozen).abs().max() == 0  # the heads are zero, whatever w and g are drawn


def test_port_weights_are_fusion_times_gate():
    fusion, bias, slope = torch.tensor([2.0, 1.0]), torch.tensor([0.0, 3.0]), torch.tensor([4.0, 0.0])
    weights = port_weights(fusion, bias, slope, torch.tensor([0, 500, 1000]), 1000, ["a", "b"])
    tau = torch.tensor([-0.5, 0.0, 0.5])
    torch.testing.assert_close(weights["a"], 2.0 * torch.sigmoid(4.0 * tau))
    torch.testing.assert_close(weights["b"], torch.sigmoid(torch.tensor(3.0)).expand(3))


def test_bayesian_heads_are_drawn_and_exported_as_their_median(setup):
    base, _, batch = setup
    objective = ELBOObjective(_model(base, SteeringPriors(head_scale=0.05)), batch)
    draws = posterior_draws(objective.guide, 3)
    assert "head.0.weight" in draws and draws["head.0.weight"].shape[0] == 3
    assert draws["head.0.weight"].std() > 0.02  # the guide starts at the Normal(0, 0.05) prior
    adapter = objective.export_adapter()
    assert torch.equal(adapter.heads[0].weight, objective.guide.median()["head.0.weight"])


def test_a_profile_with_zero_weights_cannot_be_a_lognormal_prior(setup):
    base, _, _ = setup
    with pytest.raises(ValueError, match="positive profile weights"):
        _model(base, profile="encoder-only")


def test_kl_annealing_schedule():
    assert [kl_weight_at(step, 4) for step in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert kl_weight_at(0, 0) == 1.0


def _gradients(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}


def test_point_estimated_network_is_fitted_at_the_prior_median_only(setup):
    """w_k and the scale of head k are not separately identified, so the network must learn
    from the prior-median loss alone, and the ELBO only moves the guide and σ."""
    base, _, batch = setup
    objective = ELBOObjective(_model(base), batch)
    model = objective.model
    with torch.no_grad():  # non-zero heads, so the steering (and its gradients) are not trivial
        for head in model.adapter.heads:
            head.weight.normal_(0, 0.05)

    torch.manual_seed(1)
    objective(batch, step=0).backward()
    joint = _gradients(model.adapter)
    guide_gradients = _gradients(objective.guide)
    model.adapter.zero_grad()
    model.network_loss(batch).backward()
    torch.testing.assert_close(_gradients(model.adapter), joint)
    assert len(guide_gradients) == 6  # loc and scale of fusion, gate bias, gate slope
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in guide_gradients.values())


def test_bayesian_heads_learn_from_the_elbo(setup):
    base, _, batch = setup
    objective = ELBOObjective(_model(base, SteeringPriors(head_scale=0.05)), batch)
    assert objective.loss_label == "-elbo"
    objective(batch, step=0).backward()
    assert any(g.abs().sum() > 0 for g in _gradients(objective.model.adapter).values())

"""The deterministic steering recipe on a tiny pixel-space prior."""

import pytest
import torch
import torch.nn.functional as F

from bayes_bps.base import TrainingPairs
from bayes_bps.data import make_dataset
from bayes_bps.steering import build_adapter, profile_weights, steered_noise
from bayes_bps.training import DeterministicObjective, SteeringTrainer, train_adapter
from tests.tiny_models import tiny_pixel_base


@pytest.fixture(scope="module")
def prior_and_pairs():
    base = tiny_pixel_base()
    dataset = make_dataset("shapes", "sketch", length=8, resolution=16)
    return base, TrainingPairs.encode(base, dataset, 4)


def _fixed_batch_loss(base, adapter, pairs, weights):
    batch = pairs.noisy_batch(base, torch.arange(len(pairs)), torch.Generator().manual_seed(9))
    with torch.no_grad():
        return F.mse_loss(steered_noise(base, adapter, batch, weights), batch.noise).item()


def test_training_fits_the_adapter_and_leaves_the_prior_untouched(prior_and_pairs):
    base, pairs = prior_and_pairs
    frozen = {k: v.clone() for k, v in base.state_dict().items()}
    adapter = build_adapter(base, "tiny", pairs.condition_channels)
    weights = profile_weights(base.unet, "head-heavy")
    before = _fixed_batch_loss(base, adapter, pairs, weights)
    losses = train_adapter(base, adapter, pairs, steps=40, batch_size=4, lr=2e-3, progress=False)
    after = _fixed_batch_loss(base, adapter, pairs, weights)
    assert len(losses) == 40 and all(torch.isfinite(torch.tensor(losses)))
    assert after < 0.9 * before, (before, after)
    assert all(torch.equal(v, frozen[k]) for k, v in base.state_dict().items())


def test_training_is_reproducible_from_the_seed(prior_and_pairs):
    base, pairs = prior_and_pairs
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        adapter = build_adapter(base, "tiny", pairs.condition_channels)
        runs.append(train_adapter(base, adapter, pairs, steps=3, batch_size=2, progress=False))
    assert runs[0] == runs[1]


@pytest.mark.parametrize("weight_decay", [0.0, 0.5])
def test_the_trainers_step_is_a_plain_adamw_loop_within_float_tolerance(prior_and_pairs, weight_decay):
    """The trainer's speed-ups (fused AdamW) change no numbers beyond rounding: three steps
    match a hand-written loop of unfused AdamW on the same minibatches, with and without an L2
    penalty (`weight_decay`, which must then change the result: the control)."""
    base, pairs = prior_and_pairs
    torch.manual_seed(0)
    adapter = build_adapter(base, "tiny", pairs.condition_channels)
    reference = build_adapter(base, "tiny", pairs.condition_channels)
    reference.load_state_dict(adapter.state_dict())
    weights = profile_weights(base.unet, "head-heavy")
    with torch.no_grad():  # a non-zero start, so that every parameter gets a gradient
        for head in [*adapter.heads, *reference.heads]:
            head.weight.fill_(1e-3)
    undecayed = build_adapter(base, "tiny", pairs.condition_channels)
    undecayed.load_state_dict(adapter.state_dict())
    for trained, decay in ((adapter, weight_decay), (undecayed, 0.0)):
        trainer = SteeringTrainer(base, pairs, DeterministicObjective(base, trained, weights), batch_size=2,
                                  lr=1e-3, weight_decay=decay)
        trainer.train(3, progress=False)
    optimizer = torch.optim.AdamW(reference.parameters(), lr=1e-3, weight_decay=weight_decay, foreach=False)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        batch = pairs.noisy_batch(base, pairs.draw_indices(2, generator), generator)
        loss = F.mse_loss(steered_noise(base, reference, batch, weights), batch.noise)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(reference.parameters()), 1.0)
        optimizer.step()
    for (name, value), expected in zip(adapter.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6, msg=name)
    changed = max((a - b).abs().max().item() for a, b in zip(adapter.parameters(), undecayed.parameters()))
    assert (changed > 1e-5) == (weight_decay > 0), changed


def test_pairs_that_do_not_fit_the_base_are_clear_errors(prior_and_pairs):
    base, _ = prior_and_pairs
    with pytest.raises(ValueError, match=r"has 8 pairs; cannot take n=9"):
        TrainingPairs.encode(base, make_dataset("shapes", length=8, resolution=16), 9)
    with pytest.raises(ValueError, match=r"\(3, 32, 32\) but the base takes \(3, 16, 16\)"):
        TrainingPairs.encode(base, make_dataset("shapes", length=2), 2)
    digits = make_dataset("digits", length=2, resolution=16)
    with pytest.raises(ValueError, match=r"\(1, 16, 16\) but the base takes \(3, 16, 16\)"):
        TrainingPairs.encode(base, digits, 2)
    with pytest.raises(ValueError, match="unknown profile"):
        profile_weights(base.unet, "foot-heavy")


def test_high_noise_timestep_sampling_follows_the_cubic_law():
    from bayes_bps.base.pairs import draw_timesteps

    generator = torch.Generator().manual_seed(0)
    uniform = draw_timesteps(1000, 20000, generator).float()
    high = draw_timesteps(1000, 20000, generator, "high-noise").float()
    assert abs(uniform.mean().item() - 499.5) < 10 and high.max() <= 999 and high.min() >= 0
    # P(t >= 800) = P(1 - u^3 >= 0.8) = P(u <= 0.2^(1/3)) = 0.585
    assert abs((high >= 800).float().mean().item() - 0.2 ** (1 / 3)) < 0.02
    with pytest.raises(ValueError, match="unknown timestep sampling"):
        draw_timesteps(1000, 4, generator, "low-noise")


def test_caption_dropout_replaces_that_fraction_of_captions_by_the_empty_one(prior_and_pairs):
    base, pairs = prior_and_pairs
    empty = base.encode_captions([""])
    indices = torch.arange(len(pairs)).repeat(64)  # 256 examples of the 4 pairs
    kept = pairs.noisy_batch(base, indices, torch.Generator().manual_seed(0))
    dropped = pairs.noisy_batch(base, indices, torch.Generator().manual_seed(0), caption_dropout=0.5,
                                empty_caption_states=empty)
    is_empty = [torch.equal(states, empty[0]) for states in dropped.caption_states]
    assert not any(torch.equal(states, empty[0]) for states in kept.caption_states)
    assert 0.4 < sum(is_empty) / len(is_empty) < 0.6
    originals = pairs.caption_states[indices]
    assert all(torch.equal(d, o) for d, o, e in zip(dropped.caption_states, originals, is_empty) if not e)


def test_the_conditioning_scale_multiplies_every_port_weight(prior_and_pairs):
    """Scale 0 is the frozen UNet, and scale s steers as weights × s do."""
    base, pairs = prior_and_pairs
    torch.manual_seed(0)
    adapter = build_adapter(base, "tiny", pairs.condition_channels)
    with torch.no_grad():
        for head in adapter.heads:
            head.weight.normal_()
    weights = profile_weights(base.unet, "head-heavy")
    batch = pairs.noisy_batch(base, torch.arange(len(pairs)), torch.Generator().manual_seed(1))

    def predict(scale, port_weights):
        with torch.no_grad(), DeterministicObjective(base, adapter, port_weights).steering(batch.conditions, scale):
            return base.predict_noise(batch.noisy, batch.timesteps, batch.caption_states)

    with torch.no_grad():
        frozen = base.predict_noise(batch.noisy, batch.timesteps, batch.caption_states)
    assert torch.equal(predict(0.0, weights), frozen) and not torch.allclose(predict(1.0, weights), frozen)
    doubled = {name: 2 * value for name, value in weights.items()}
    torch.testing.assert_close(predict(2.0, weights), predict(1.0, doubled))
    assert not torch.allclose(predict(2.0, weights), predict(1.0, weights))

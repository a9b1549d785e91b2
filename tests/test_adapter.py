"""The BPS adapter: shapes, zero initialisation, steering, gradients, save/load, SD1.5 sizes."""

import pytest
import torch
from diffusers import UNet2DConditionModel

from bayes_bps.steering import (
    BPSAdapter,
    find_ports,
    head_heavy_profile,
    port_table,
    steer,
    uniform_profile,
)
from tests.tiny_models import no_hooks, tiny_unet, unet_inputs

UNSHUFFLE = 2  # a 32x32 condition onto the tiny UNet's 16x16 sample grid


def tiny_adapter(unet: torch.nn.Module) -> BPSAdapter:
    torch.manual_seed(2)
    return BPSAdapter.from_unet(unet, preset="tiny", condition_channels=3, unshuffle_factor=UNSHUFFLE)


def condition(batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, 3, 16 * UNSHUFFLE, 16 * UNSHUFFLE, generator=torch.Generator().manual_seed(3))


def randomize_heads(adapter: BPSAdapter) -> None:
    with torch.no_grad():
        for head in adapter.heads:
            head.weight.normal_(std=0.05)


def test_residuals_have_port_shapes_and_start_at_zero():
    unet = tiny_unet(layers_per_block=2)
    adapter = tiny_adapter(unet)
    time_embedding = torch.randn(2, unet.time_embedding.linear_2.out_features)
    residuals = adapter(condition(), time_embedding, sample_size=(16, 16))
    ports = find_ports(unet)
    assert list(residuals) == [p.name for p in ports]
    assert all(residuals[p.name].shape == (2, p.channels, *p.spatial_size(16)) for p in ports)
    assert all(r.abs().max() == 0 for r in residuals.values())


@torch.no_grad()
def test_steered_unet_equals_frozen_at_init_then_changes_with_nonzero_heads():
    unet = tiny_unet()
    adapter = tiny_adapter(unet)
    sample, timesteps, text = unet_inputs()
    frozen = unet(sample, timesteps, text).sample
    weights = head_heavy_profile(find_ports(unet))
    with steer(unet, adapter, condition(), weights):
        assert (unet(sample, timesteps, text).sample - frozen).abs().max() == 0

    randomize_heads(adapter)
    with steer(unet, adapter, condition(), weights):
        steered = unet(sample, timesteps, text).sample
    assert (steered - frozen).abs().max() > 1e-3
    assert no_hooks(unet) and torch.equal(unet(sample, timesteps, text).sample, frozen)

    with pytest.raises(RuntimeError, match="boom"), steer(unet, adapter, condition(), weights):
        unet(sample, timesteps, text)
        raise RuntimeError("boom")
    assert no_hooks(unet) and torch.equal(unet(sample, timesteps, text).sample, frozen)


def test_gradients_reach_only_the_adapter():
    unet = tiny_unet().requires_grad_(False)
    adapter = tiny_adapter(unet)
    frozen_state = {k: v.clone() for k, v in unet.state_dict().items()}
    heads_before = [head.weight.clone() for head in adapter.heads]
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=1e-3)
    sample, timesteps, text = unet_inputs()
    noise = torch.randn_like(sample)
    with steer(unet, adapter, condition(), head_heavy_profile(find_ports(unet))):
        for _ in range(3):
            loss = torch.nn.functional.mse_loss(unet(sample, timesteps, text).sample, noise)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    assert all(torch.equal(v, frozen_state[k]) for k, v in unet.state_dict().items())
    assert all(p.grad is None for p in unet.parameters())
    assert all(not torch.equal(head.weight, before) for head, before in zip(adapter.heads, heads_before))


@torch.no_grad()
def test_classifier_free_guidance_batch_and_per_example_scales():
    unet = tiny_unet()
    adapter = tiny_adapter(unet)
    randomize_heads(adapter)
    sample, _, text = unet_inputs(batch=2)
    doubled = (torch.cat([sample, sample]), 250, torch.cat([text, text]))  # CFG batch, scalar timestep
    weights = uniform_profile(find_ports(unet))
    with steer(unet, adapter, condition(batch=2), weights):
        from_repeat = unet(*doubled).sample
    with steer(unet, adapter, condition(batch=2).repeat(2, 1, 1, 1), weights):
        explicit = unet(*doubled).sample
    assert torch.equal(from_repeat, explicit) and torch.equal(from_repeat[:2], from_repeat[2:])

    # time-dependent, per-example gates: closed for the first half of the batch, open for the second
    def gates(timesteps: torch.Tensor) -> dict[str, torch.Tensor]:
        open_half = (torch.arange(len(timesteps)) >= 2).float()
        return {name: open_half for name in weights}

    with steer(unet, adapter, condition(batch=2), gates):
        gated = unet(*doubled).sample
    assert torch.equal(gated[:2], unet(*doubled).sample[:2]) and torch.equal(gated[2:], from_repeat[2:])


def test_all_zero_weights_skip_the_adapter_in_sampling_but_not_in_training():
    unet = tiny_unet()
    adapter = tiny_adapter(unet)
    randomize_heads(adapter)
    calls = []
    counted = lambda *args, **kwargs: calls.append(1) or adapter(*args, **kwargs)
    sample, _, text = unet_inputs(batch=2)
    weights = uniform_profile(find_ports(unet))
    # steering only from t = 500 on, per example as the model's time-dependent weights are
    gated = lambda timesteps: {name: (timesteps >= 500).float() * value for name, value in weights.items()}
    with torch.no_grad():
        frozen = unet(sample, 100, text).sample
        with steer(unet, counted, condition(), gated):
            low, high = unet(sample, 100, text).sample, unet(sample, 900, text).sample
        with steer(unet, adapter, condition(), weights):
            steered_high = unet(sample, 900, text).sample
    assert len(calls) == 1 and torch.equal(low, frozen) and torch.equal(high, steered_high)
    with steer(unet, counted, condition(), gated):
        unet(sample, 100, text).sample.sum().backward()
    assert len(calls) == 2 and all(torch.count_nonzero(head.weight.grad) == 0 for head in adapter.heads)


def test_save_and_load_give_identical_outputs(tmp_path):
    unet = tiny_unet()
    adapter = tiny_adapter(unet)
    randomize_heads(adapter)
    adapter.save_pretrained(tmp_path)
    loaded = BPSAdapter.from_pretrained(tmp_path)
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}
    assert public(loaded.config) == public(adapter.config)
    time_embedding = torch.randn(2, unet.time_embedding.linear_2.out_features)
    with torch.no_grad():
        before, after = adapter(condition(), time_embedding), loaded(condition(), time_embedding)
    assert all(torch.equal(before[name], after[name]) for name in before)


@torch.no_grad()
def test_bad_conditions_and_scales_raise_clear_errors():
    unet = tiny_unet()
    adapter = tiny_adapter(unet)
    sample, timesteps, text = unet_inputs()
    weights = uniform_profile(find_ports(unet))
    with pytest.raises(ValueError, match=r"shape \(batch, 3, H, W\); got \(2, 1, 32, 32\)"):
        adapter(torch.zeros(2, 1, 32, 32), torch.zeros(2, 128))
    with pytest.raises(ValueError, match="expected a multiple of 4"):
        adapter(torch.zeros(2, 3, 30, 30), torch.zeros(2, 128))
    with pytest.raises(ValueError, match="does not unshuffle to the UNet sample grid 16x16: expected 32x32"):
        with steer(unet, adapter, torch.zeros(2, 3, 64, 64), weights):
            unet(sample, timesteps, text)
    with pytest.raises(ValueError, match=r"UNet batch \(2\) is not a multiple of the condition batch \(3\)"):
        with steer(unet, adapter, condition(batch=3), weights):
            unet(sample, timesteps, text)
    with pytest.raises(ValueError, match=r"missing \['mid'\]"):
        with steer(unet, adapter, condition(), {k: v for k, v in weights.items() if k != "mid"}):
            pass
    assert no_hooks(unet)


def test_sd15_parameter_counts():
    with torch.device("meta"):  # counts need no memory
        unet = UNet2DConditionModel(cross_attention_dim=768, sample_size=64)
        # the official sketch setting: a 1-channel condition, unshuffled by 8 into 64 channels
        official = BPSAdapter.from_unet(unet, preset="official-sd15", condition_channels=1, unshuffle_factor=8)
        lite = BPSAdapter.from_unet(unet, preset="lite", condition_channels=3, unshuffle_factor=8)
    count = lambda model: sum(p.numel() for p in model.parameters())
    assert count(unet) == pytest.approx(859.52e6, rel=1e-3)
    assert official.config.widths == [320, 640, 1280, 1280] and official.config.norm_num_groups == 32
    # The official module also allocates a CxC 3x3 zero conv at each unsteered encoder position
    # (conv_in, 3 downsamplers; used only by its ControlNet mode) and 14 scalar fusion weights.
    unused = sum(9 * r.channels**2 + r.channels for r in port_table(unet) if r.times_added == 0)
    assert count(official) == 672_093_120
    assert count(official) + unused + 14 == pytest.approx(692.37e6, rel=0.01)
    assert count(lite) / count(unet) <= 0.10


@torch.no_grad()
def test_pruned_ports_are_not_computed_and_the_kept_ones_are_unchanged():
    from torch.utils.flop_counter import FlopCounterMode

    unet = tiny_unet(layers_per_block=2)
    adapter = tiny_adapter(unet)
    randomize_heads(adapter)
    time_embedding = torch.randn(2, unet.time_embedding.linear_2.out_features)
    names = adapter.port_names

    def flops_and_residuals(ports=None):
        with FlopCounterMode(display=False) as counter:
            residuals = adapter(condition(), time_embedding, ports=ports)
        return counter.get_total_flops(), residuals

    total, full = flops_and_residuals()
    # the decoder's last (full-resolution) level pruned: its blocks and heads are not run
    kept = [name for name in names if name not in adapter.decoder_ports[-1]]
    pruned_flops, pruned = flops_and_residuals(kept)
    assert list(pruned) == kept and all(torch.equal(pruned[name], full[name]) for name in kept)
    assert pruned_flops < total
    # a port inside the network: only its head goes, the blocks after it still run
    inner_flops, inner = flops_and_residuals([name for name in names if name != "down.0.0"])
    assert "down.0.0" not in inner and pruned_flops < inner_flops < total
    assert flops_and_residuals([]) == (0, {})
    with pytest.raises(ValueError, match=r"unknown ports \['nope'\]"):
        adapter(condition(), time_embedding, ports=["nope"])

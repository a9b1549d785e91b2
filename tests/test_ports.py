"""Port discovery, the port table against the official SD1.5 network, profiles and injection."""

import json

import pytest
import torch
from diffusers import UNet2DConditionModel

from bayes_bps.steering import (
    PROFILES,
    encoder_only_profile,
    find_ports,
    format_port_table,
    head_heavy_profile,
    inject,
    port_table,
    position_counts,
    profile_weights,
    uniform_profile,
)
from tests.tiny_models import no_hooks, tiny_unet, unet_inputs


@pytest.fixture(scope="module")
def sd15_unet() -> UNet2DConditionModel:
    with torch.device("meta"):  # the SD1.5 layout without allocating 860M parameters
        return UNet2DConditionModel(cross_attention_dim=768, sample_size=64)


def test_find_ports_tiny():
    ports = {p.name: p for p in find_ports(tiny_unet(layers_per_block=2))}
    decoder = [f"up.{i}.{j}" for i in range(2) for j in range(3)]
    assert list(ports) == ["down.0.0", "down.0.1", "down.1.0", "down.1.1", "mid"] + decoder
    assert ports["down.0.1"].modules == ("down_blocks.0.resnets.1", "down_blocks.0.attentions.1")
    assert ports["down.1.0"].modules == ("down_blocks.1.resnets.0",)  # no attention, nothing on the downsampler
    assert ports["mid"].modules == ("mid_block.resnets.0", "mid_block.resnets.1", "mid_block.attentions.0")
    some = [ports[name] for name in ("down.0.0", "mid", "up.0.2", "up.1.0")]
    assert [(p.stage, p.level, p.channels) for p in some] == [
        ("encoder", 0, 32), ("middle", 1, 64), ("decoder", 1, 64), ("decoder", 0, 32)
    ]
    assert ports["up.1.2"].spatial_size(16) == (16, 16) and ports["mid"].spatial_size((16, 24)) == (8, 12)


def test_sd15_port_table_matches_the_official_network(sd15_unet):
    rows = port_table(sd15_unet, sample_size=64)
    assert position_counts(rows) == {
        "encoder": 12, "encoder_active": 8, "middle": 1, "middle_active": 1, "decoder": 12, "decoder_active": 12
    }
    active = [r for r in rows if r.times_added > 0]
    encoder = [(r.channels, r.height, r.times_added) for r in active if r.stage == "encoder"]
    assert encoder == [(320, 64, 2)] * 2 + [(640, 32, 2)] * 2 + [(1280, 16, 2)] * 2 + [(1280, 8, 1)] * 2
    assert [(r.channels, r.height, r.times_added) for r in rows if r.stage == "middle"] == [(1280, 8, 3)]
    decoder = [(r.channels, r.height, r.times_added) for r in rows if r.stage == "decoder"]
    assert decoder == [(1280, 8, 1)] * 3 + [(1280, 16, 2)] * 3 + [(640, 32, 2)] * 3 + [(320, 64, 2)] * 3
    inactive = [r.name for r in rows if r.times_added == 0]
    assert inactive == ["conv_in", "down.0.downsample", "down.1.downsample", "down.2.downsample"]
    assert all(r.height == r.width for r in rows) and "down.2.downsample" in format_port_table(rows)


def test_profiles(sd15_unet):
    ports = find_ports(sd15_unet)
    heavy = head_heavy_profile(ports)
    assert [heavy[f"down.{level}.{j}"] for level in range(4) for j in range(2)] == [16, 16, 8, 8, 4, 4, 2, 2]
    assert heavy["mid"] == 16 and {heavy[p.name] for p in ports if p.stage == "decoder"} == {1}
    assert set(uniform_profile(ports).values()) == {1.0}
    only = encoder_only_profile(ports)
    assert all(only[p.name] == (p.stage == "encoder") for p in ports)
    assert PROFILES["head-heavy"] is head_heavy_profile and set(PROFILES) == {"head-heavy", "uniform", "encoder-only"}
    # the generalisation to a two-level UNet: 2**(L - level) with L = 2, middle = top encoder weight
    tiny = head_heavy_profile(find_ports(tiny_unet()))
    assert (tiny["down.0.0"], tiny["down.1.0"], tiny["mid"], tiny["up.1.0"]) == (4, 2, 4, 1)


def test_a_profile_file_gives_its_weights_and_bad_files_are_named(tmp_path):
    unet = tiny_unet()
    names = [port.name for port in find_ports(unet)]
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({name: 0.5 * i for i, name in enumerate(names)}))
    assert profile_weights(unet, str(path)) == {name: 0.5 * i for i, name in enumerate(names)}
    cases = [({name: 1.0 for name in names[1:]}, rf"missing \['{names[0]}'\], unknown \[\]"),
             ({**{name: 1.0 for name in names}, "up.9.9": 1.0}, r"unknown \['up.9.9'\]"),
             ({**{name: 1.0 for name in names}, names[0]: -1.0}, "finite numbers ≥ 0"),
             ({**{name: 1.0 for name in names}, names[0]: True}, "finite numbers ≥ 0"),
             ([1.0, 2.0], "a JSON object")]
    for content, message in cases:
        path.write_text(json.dumps(content))
        with pytest.raises(ValueError, match=rf"profile.json: .*{message}"):
            profile_weights(unet, str(path))
    path.write_text("{not json")
    with pytest.raises(ValueError, match="profile.json: not JSON"):
        profile_weights(unet, str(path))
    with pytest.raises(ValueError, match="nowhere.json: no such profile file"):
        profile_weights(unet, str(tmp_path / "nowhere.json"))


@torch.no_grad()
def test_inject_adds_residuals_and_cleans_up():
    unet = tiny_unet()
    sample, timesteps, text = unet_inputs()
    frozen = unet(sample, timesteps, text).sample
    ports = find_ports(unet)
    zeros = {p.name: torch.zeros(2, p.channels, *p.spatial_size(16)) for p in ports}
    with inject(unet, zeros):
        assert (unet(sample, timesteps, text).sample - frozen).abs().max() == 0
    # one non-zero residual, on a port whose attention returns a tuple
    with inject(unet, {"up.1.0": torch.ones(2, 32, 16, 16)}):
        assert not torch.allclose(unet(sample, timesteps, text).sample, frozen)
    assert no_hooks(unet) and torch.equal(unet(sample, timesteps, text).sample, frozen)

    with pytest.raises(RuntimeError, match="boom"), inject(unet, {"mid": torch.ones(2, 64, 8, 8)}):
        raise RuntimeError("boom")
    assert no_hooks(unet)


@torch.no_grad()
def test_inject_rejects_unknown_ports_and_wrong_shapes():
    unet = tiny_unet()
    sample, timesteps, text = unet_inputs()
    with pytest.raises(ValueError, match="unknown ports"), inject(unet, {"down.9.0": torch.zeros(1)}):
        pass
    with pytest.raises(ValueError, match=r"port 'mid'.*\(2, 64, 4, 4\).*\(2, 64, 8, 8\)"):
        with inject(unet, {"mid": torch.zeros(2, 64, 4, 4)}):
            unet(sample, timesteps, text)
    assert no_hooks(unet)

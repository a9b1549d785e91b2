"""The ControlNet and T2I-Adapter baselines: shapes, exact zero start, training and sampling."""

from types import SimpleNamespace

import pytest
import torch
from diffusers import ControlNetModel, T2IAdapter, UNet2DConditionModel

from bayes_bps.base import TrainingPairs, sample_images
from bayes_bps.experiments.baselines import (
    BASELINES,
    BaselineObjective,
    controlnet_for,
    controlnet_steering,
    t2i_adapter_for,
    t2i_adapter_steering,
)
from bayes_bps.training import SteeringTrainer, trainable_parameters
from tests.tiny_models import no_hooks, tiny_pixel_base, tiny_unet

CAPTIONS = ["a red circle", "a circle", "red"]


@pytest.fixture(scope="module")
def base():
    return tiny_pixel_base()


def inputs(base, batch: int = 2):
    generator = torch.Generator().manual_seed(3)
    sample = torch.randn(batch, 3, 16, 16, generator=generator)
    timesteps = torch.randint(0, 1000, (batch,), generator=generator)
    conditions = torch.rand(batch, 1, 16, 16, generator=generator)
    return sample, timesteps, base.encode_captions(CAPTIONS[:batch]), conditions


def randomise_zero_convs(controlnet: ControlNetModel) -> None:
    """Leave the zero start, so that the ControlNet's residuals are not all zero."""
    torch.manual_seed(5)
    heads = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
             controlnet.controlnet_cond_embedding.conv_out]
    with torch.no_grad():
        for head in heads:
            head.weight.normal_(0, 0.05)


def test_controlnet_starts_as_the_frozen_unet_exactly(base):
    controlnet = controlnet_for(base, condition_channels=1)
    assert controlnet.config.conditioning_embedding_out_channels == (16,)  # pixel space: no downsampling
    sample, timesteps, states, conditions = inputs(base)
    frozen = base.predict_noise(sample, timesteps, states)
    with controlnet_steering(base.unet, controlnet, conditions):
        steered = base.predict_noise(sample, timesteps, states)
    assert torch.equal(steered, frozen) and no_hooks(base.unet)


def test_controlnet_steering_is_diffusers_controlnet_call(base):
    """Under guidance the UNet batch is [uncond; cond]: the conditions repeat as in the pipeline."""
    controlnet = controlnet_for(base, condition_channels=1)
    randomise_zero_convs(controlnet)
    sample, timesteps, states, conditions = inputs(base)
    doubled = (torch.cat([sample, sample]), timesteps.repeat(2), torch.cat([states, states]))
    down, mid = controlnet(*doubled, controlnet_cond=conditions.repeat(2, 1, 1, 1), conditioning_scale=0.5,
                           return_dict=False)
    expected = base.unet(*doubled, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
    with controlnet_steering(base.unet, controlnet, conditions, scale=0.5):
        steered = base.predict_noise(*doubled)
    frozen = base.predict_noise(*doubled)
    assert torch.allclose(steered, expected, atol=1e-6) and not torch.allclose(steered, frozen, atol=1e-3)


def test_t2i_adapter_features_fit_the_down_blocks_and_steer(base):
    adapter = t2i_adapter_for(base, condition_channels=1)
    sample, timesteps, states, conditions = inputs(base)
    features = adapter(conditions)
    assert [tuple(f.shape) for f in features] == [(2, 32, 16, 16), (2, 64, 8, 8)]
    # on this SD-like layout, the hooks add exactly what diffusers' own intrablock path adds
    expected = base.unet(sample, timesteps, states, down_intrablock_additional_residuals=list(features)).sample
    with t2i_adapter_steering(base.unet, adapter, conditions):
        steered = base.predict_noise(sample, timesteps, states)
    frozen = base.predict_noise(sample, timesteps, states)
    assert torch.allclose(steered, expected, atol=1e-6) and not torch.allclose(steered, frozen, atol=1e-3)
    assert no_hooks(base.unet)


def test_latent_base_keeps_diffusers_downsampling():
    """A base with latent factor 8 (SD's VAE): 128-pixel conditions steer a 16x16 latent UNet."""
    latent_base = SimpleNamespace(unet=tiny_unet(), latent_factor=8, device=torch.device("cpu"))
    controlnet, adapter = controlnet_for(latent_base, 1), t2i_adapter_for(latent_base, 1)
    assert controlnet.config.conditioning_embedding_out_channels == (16, 32, 96, 256)
    assert adapter.downscale_factor == 8 and adapter.config.num_res_blocks == 2
    generator = torch.Generator().manual_seed(0)
    sample, states = torch.randn(2, 4, 16, 16, generator=generator), torch.randn(2, 5, 32, generator=generator)
    conditions = torch.rand(2, 1, 128, 128, generator=generator)
    randomise_zero_convs(controlnet)
    frozen = latent_base.unet(sample, 500, states).sample
    for steering, module in ((controlnet_steering, controlnet), (t2i_adapter_steering, adapter)):
        with steering(latent_base.unet, module, conditions):
            steered = latent_base.unet(sample, 500, states).sample
        assert steered.shape == frozen.shape and not torch.allclose(steered, frozen, atol=1e-3)
    with pytest.raises(ValueError, match="latent factor 3"):
        controlnet_for(SimpleNamespace(unet=latent_base.unet, latent_factor=3, device="cpu"), 1)


@pytest.mark.parametrize("method", sorted(BASELINES))
def test_clear_errors_and_no_hooks_left(base, method):
    baseline = BASELINES[method]
    module = baseline.build(base, 1)
    sample, timesteps, states, conditions = inputs(base)
    cases = [(conditions[..., :8, :8], "needs \\(16, 16\\)"), (conditions[:1].repeat(1, 2, 1, 1), "shape"),
             (torch.cat([conditions, conditions[:1]]), "not a multiple")]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message), baseline.steering(base.unet, module, bad):
            base.predict_noise(sample, timesteps, states)
        assert no_hooks(base.unet)


@pytest.mark.parametrize("method", sorted(BASELINES))
def test_training_moves_only_the_baseline(base, method):
    baseline = BASELINES[method]
    module = baseline.build(base, 1)
    generator = torch.Generator().manual_seed(0)
    pairs = TrainingPairs(samples=torch.randn(4, 3, 16, 16, generator=generator),
                          conditions=torch.rand(4, 1, 16, 16, generator=generator),
                          caption_states=base.encode_captions(CAPTIONS + CAPTIONS[:1]),
                          captions=CAPTIONS + CAPTIONS[:1])
    frozen = {k: v.clone() for k, v in base.unet.state_dict().items()}
    before = {k: v.clone() for k, v in module.state_dict().items()}
    objective = baseline.objective(base, module)
    assert isinstance(objective, BaselineObjective) and objective.export_adapter() is module
    assert sum(p.numel() for g in objective.parameter_groups(1e-3, guide_lr=1e-2) for p in g["params"]) == \
        trainable_parameters(module) > 0
    losses = SteeringTrainer(base, pairs, objective, batch_size=2, lr=1e-3).train(3, progress=False)
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    grads = [p.grad for p in module.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in base.unet.parameters()) and no_hooks(base.unet)
    assert all(torch.equal(v, frozen[k]) for k, v in base.unet.state_dict().items())
    assert any(not torch.equal(v, before[k]) for k, v in module.state_dict().items())


@pytest.mark.parametrize("method", sorted(BASELINES))
def test_ddim_sampling_inside_the_context(base, method, tmp_path):
    baseline = BASELINES[method]
    module = baseline.build(base, 1)
    if method == "controlnet":
        randomise_zero_convs(module)
    conditions = inputs(base)[3]
    with baseline.steering(base.unet, module, conditions):
        images = sample_images(base, CAPTIONS[:2], steps=2, guidance_scale=2.0, progress=False)
    assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all() and no_hooks(base.unet)
    # the exported module reloads through diffusers and steers the same
    module.save_pretrained(tmp_path)
    reloaded = (ControlNetModel if method == "controlnet" else T2IAdapter).from_pretrained(tmp_path)
    with baseline.steering(base.unet, reloaded, conditions):
        again = sample_images(base, CAPTIONS[:2], steps=2, guidance_scale=2.0, progress=False)
    assert torch.allclose(again, images, atol=1e-5)


def test_parameter_counts(base):
    frozen = sum(p.numel() for p in base.unet.parameters())
    controlnet, adapter = controlnet_for(base, 1), t2i_adapter_for(base, 1)
    assert trainable_parameters(base.unet) == 0
    # ControlNet copies the encoder and middle, so it is a large fraction of the UNet; the adapter is small
    assert trainable_parameters(adapter) < trainable_parameters(controlnet) < frozen


def test_t2i_adapter_fits_a_base_that_downsamples_in_a_plain_block():
    """The embedded bases start with DownBlock2D + downsampler, where diffusers' intrablock path
    adds after the downsampler and so cannot take a full adapter's features; the hooks can."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(32, 64),
                             down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                             up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), layers_per_block=1,
                             norm_num_groups=8, cross_attention_dim=32, attention_head_dim=8)
    adapter = t2i_adapter_for(SimpleNamespace(unet=unet, latent_factor=1, device="cpu"), 1)
    sample, states, conditions = torch.randn(2, 3, 16, 16), torch.randn(2, 5, 32), torch.rand(1, 1, 16, 16)
    with pytest.raises(RuntimeError, match="size of tensor"):
        unet(sample, 10, states, down_intrablock_additional_residuals=list(adapter(conditions.repeat(2, 1, 1, 1))))
    frozen = unet(sample, 10, states).sample
    with t2i_adapter_steering(unet, adapter, conditions):
        steered = unet(sample, 10, states).sample
    assert steered.shape == frozen.shape and not torch.allclose(steered, frozen, atol=1e-3) and no_hooks(unet)

"""The loading code for Stable-Diffusion-shaped folders, on a tiny pipeline built here.

Weights cannot be downloaded, so the test writes a tiny SD1.5-layout folder with
`save_pretrained` (UNet, VAE, CLIP text encoder, a CLIP tokenizer with a 54-word vocabulary)
and loads it back through `FrozenBase.from_pretrained`, the code path real SD1.5 takes.
"""

import json
import shutil
import string

import pytest
import torch
from diffusers import (
    AutoencoderKL,
    PNDMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from bayes_bps.base import FrozenBase, sample_images


def _tiny_clip_tokenizer(folder):
    """A byte-pair tokenizer over single letters, saved as SD1.5 ships it (vocab + merges)."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for letter in string.ascii_lowercase:
            vocab[letter + suffix] = len(vocab)
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny_sd")
    tokenizer = _tiny_clip_tokenizer(root / "vocab_source")
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=16, bos_token_id=0, eos_token_id=1,
        pad_token_id=1))
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 64),
        layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
        attention_head_dim=4, norm_num_groups=8)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(32, 64), latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=8, sample_size=32)
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              skip_prk_steps=True, steps_offset=1)
    pipeline = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    folder = root / "sd"
    pipeline.save_pretrained(folder)
    # SD1.5 ships the slow-tokenizer files; keep them beside what transformers writes.
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(root / "vocab_source" / name, folder / "tokenizer" / name)
    return folder, pipeline


def test_sd_folder_loads_frozen_with_every_component(tiny_sd):
    folder, pipeline = tiny_sd
    base = FrozenBase.from_pretrained(folder)
    assert base.vae is not None and base.tokenizer is not None and base.classifier is None
    assert not any(p.requires_grad for p in base.parameters())
    base.train()
    assert not base.unet.training, "a frozen base never enters training mode"
    for name, value in pipeline.unet.state_dict().items():
        assert torch.equal(base.unet.state_dict()[name], value), name
    assert (base.latent_factor, base.resolution, base.image_channels) == (2, 32, 3)


def test_encoders_and_noise_schedule(tiny_sd):
    folder, pipeline = tiny_sd
    base = FrozenBase.from_pretrained(folder)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    latents = base.encode_images(images)
    assert latents.shape == (2, 4, 16, 16)
    expected = pipeline.vae.encode(images).latent_dist.mean * pipeline.vae.config.scaling_factor
    torch.testing.assert_close(latents, expected)
    decoded = base.decode_samples(latents)
    assert decoded.shape == images.shape and decoded.abs().max() <= 1

    states = base.encode_captions(["a cat", "a dog"])
    ids = pipeline.tokenizer(["a cat", "a dog"], padding="max_length", max_length=16,
                             return_tensors="pt").input_ids
    torch.testing.assert_close(states, pipeline.text_encoder(ids)[0])
    assert not torch.equal(states[0], states[1])

    noise, t = torch.randn_like(latents), torch.tensor([10, 900])
    alpha_bar = base.scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(base.add_noise(latents, noise, t),
                               alpha_bar.sqrt() * latents + (1 - alpha_bar).sqrt() * noise)
    assert base.num_train_timesteps == 1000


def test_sampling_runs_in_latent_space(tiny_sd):
    base = FrozenBase.from_pretrained(tiny_sd[0])
    images = sample_images(base, ["a cat"], steps=2, guidance_scale=2.0, progress=False)
    assert images.shape == (1, 3, 32, 32)


def test_wrong_image_size_is_a_clear_error(tiny_sd):
    base = FrozenBase.from_pretrained(tiny_sd[0])
    with pytest.raises(ValueError, match=r"\(3, 32, 32\)"):
        base.encode_images(torch.zeros(1, 3, 64, 64))


def test_missing_or_unsupported_folder_is_a_clear_error(tiny_sd, tmp_path):
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        FrozenBase.from_pretrained(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_sd[0], copy)
    index = json.loads((copy / "model_index.json").read_text())
    index["text_encoder"] = ["transformers", "T5EncoderModel"]
    (copy / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="T5EncoderModel"):
        FrozenBase.from_pretrained(copy)

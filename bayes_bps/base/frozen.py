"""The frozen base: the pretrained diffusion prior p(x), one class for the embedded bases and SD.

A base is a local folder in diffusers layout, described by its `model_index.json`:

    model_index.json   {"unet": ["diffusers", "UNet2DConditionModel"], ...}
    unet/              UNet2DConditionModel (the same class as SD1.5's, so one code path)
    scheduler/         the training noise schedule (any diffusers scheduler config)
    text_encoder/      CLIPTextModel (SD) or bayes_bps CaptionEncoder (embedded)
    tokenizer/         CLIPTokenizer (SD only; CaptionEncoder carries its vocabulary)
    vae/               AutoencoderKL (optional: latent-space bases)
    classifier/        bayes_bps DomainClassifier (optional: embedded bases)

Everything is frozen. "Model space" is what the UNet denoises: latents for a VAE base,
pixels in [-1, 1] for the embedded pixel-space bases.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from torch import nn

from .caption_encoder import CaptionEncoder
from .classifier import DomainClassifier

EMBEDDED_BASES_DIR = Path(__file__).resolve().parents[1] / "bases"
# The shipped bases, by folder name (each pretrained on the built-in domain of that name).
EMBEDDED_BASES = tuple(sorted(path.parent.name for path in EMBEDDED_BASES_DIR.glob("*/model_index.json")))


def _load_clip_text_encoder(path: Path):
    from transformers import (
        CLIPTextModel,  # imported lazily: only SD-style bases need it
    )

    return CLIPTextModel.from_pretrained(path)


def _load_clip_tokenizer(path: Path):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(path)


# (library, class) as written in model_index.json -> loader of that component's subfolder
_LOADERS = {
    ("diffusers", "UNet2DConditionModel"): UNet2DConditionModel.from_pretrained,
    ("diffusers", "AutoencoderKL"): AutoencoderKL.from_pretrained,
    ("transformers", "CLIPTextModel"): _load_clip_text_encoder,
    ("transformers", "CLIPTokenizer"): _load_clip_tokenizer,
    ("bayes_bps", "CaptionEncoder"): CaptionEncoder.from_pretrained,
    ("bayes_bps", "DomainClassifier"): DomainClassifier.from_pretrained,
}
_USED_COMPONENTS = ("unet", "text_encoder", "tokenizer", "vae", "classifier")


def resolve_base(name_or_path: str | Path) -> Path:
    """An embedded base name ('shapes', 'digits') or a local diffusers folder -> its path."""
    path = EMBEDDED_BASES_DIR / name_or_path if name_or_path in EMBEDDED_BASES else Path(name_or_path)
    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(
            f"{path / 'model_index.json'} not found: a base is an embedded name "
            f"{EMBEDDED_BASES} or a local folder in diffusers layout (weights cannot be "
            "downloaded here; point to a folder saved with save_pretrained)"
        )
    return path


class FrozenBase(nn.Module):
    """The pretrained denoiser ε_prior(x_t, t, c_text) with its scheduler and encoders."""

    def __init__(self, unet, scheduler, text_encoder, tokenizer=None, vae=None, classifier=None,
                 domain: str | None = None):
        super().__init__()
        if scheduler.config.prediction_type != "epsilon":
            raise ValueError(f"prediction_type {scheduler.config.prediction_type!r} is not "
                             "supported: BPS's likelihood is on the noise ε")
        self.unet, self.text_encoder, self.vae, self.classifier = unet, text_encoder, vae, classifier
        self.scheduler, self.tokenizer = scheduler, tokenizer
        self.domain = domain  # the built-in domain an embedded base was pretrained on, if any
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path) -> FrozenBase:
        root = resolve_base(name_or_path)
        index = json.loads((root / "model_index.json").read_text())
        components = {}
        for name in _USED_COMPONENTS:
            if name not in index or index[name] is None or index[name][0] is None:
                continue
            library, class_name = index[name]
            loader = _LOADERS.get((library.split(".")[0], class_name))  # "bayes_bps.base.x" is bayes_bps
            if loader is None:
                raise ValueError(f"{root / 'model_index.json'}: component {name!r} is "
                                 f"{library}.{class_name}, which bayes_bps cannot load")
            components[name] = loader(root / name)
        for required in ("unet", "text_encoder"):
            if required not in components:
                raise ValueError(f"{root / 'model_index.json'} names no {required!r}")
        # The training schedule (betas) is shared by every scheduler class; DDPM adds noise.
        scheduler = DDPMScheduler.from_config(DDPMScheduler.load_config(root / "scheduler"))
        return cls(scheduler=scheduler, domain=index.get("_bayes_bps_domain"), **components)

    def train(self, mode: bool = True) -> FrozenBase:
        return super().train(False)  # frozen: never in training mode

    # --- shapes of things -------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def latent_factor(self) -> int:
        """Pixels per model-space cell: 8 for SD1.5's VAE, 1 for a pixel-space base."""
        return 1 if self.vae is None else 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def resolution(self) -> int:
        """Image side length in pixels."""
        return self.unet.config.sample_size * self.latent_factor

    @property
    def image_channels(self) -> int:
        return self.unet.config.in_channels if self.vae is None else self.vae.config.in_channels

    @property
    def num_train_timesteps(self) -> int:
        return self.scheduler.config.num_train_timesteps

    # --- encoders ---------------------------------------------------------------------
    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> model space (the VAE posterior mean, scaled, for latent bases)."""
        expected = (self.image_channels, self.resolution, self.resolution)
        if tuple(images.shape[1:]) != expected:
            raise ValueError(f"images of shape {tuple(images.shape[1:])} do not fit this base, "
                             f"which takes (channels, height, width) = {expected}")
        if self.vae is None:
            return images
        return self.vae.encode(images).latent_dist.mean * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode_samples(self, samples: torch.Tensor) -> torch.Tensor:
        """Model space -> images, clamped to [-1, 1]."""
        if self.vae is not None:
            samples = self.vae.decode(samples / self.vae.config.scaling_factor).sample
        return samples.clamp(-1, 1)

    @torch.no_grad()
    def encode_captions(self, captions: list[str]) -> torch.Tensor:
        """Captions -> `(batch, tokens, cross_attention_dim)` hidden states."""
        if self.tokenizer is None:
            return self.text_encoder(list(captions))
        ids = self.tokenizer(list(captions), padding="max_length", truncation=True,
                             max_length=self.tokenizer.model_max_length,
                             return_tensors="pt").input_ids
        return self.text_encoder(ids.to(self.device))[0]

    # --- the diffusion ----------------------------------------------------------------
    def add_noise(self, samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor):
        """x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε."""
        return self.scheduler.add_noise(samples, noise, timesteps)

    def predict_noise(self, noisy: torch.Tensor, timesteps: torch.Tensor,
                      caption_states: torch.Tensor) -> torch.Tensor:
        """ε_prior(x_t, t, c). Not under no_grad: steering gradients flow through it."""
        return self.unet(noisy, timesteps, encoder_hidden_states=caption_states).sample

"""The options of `python -m bayes_bps.pretrain`, one field per flag."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...data import parse_domain
from ...utils.options import option
from ..sampler import DEFAULT_GUIDANCE_SCALE
from .denoiser import BASE_UNET_PRESETS


@dataclass
class PretrainOptions:
    out: Path = option(help="folder to write the base to")
    domain: str = option("shapes", "training data: shapes, digits, or folder:PATH (source/, target/, "
                         "prompt.json)", flags=("--domain", "--data"))
    resolution: int = option(32, "image side in pixels", low=16)
    unet_preset: str = option("small", "denoiser size", choices=BASE_UNET_PRESETS)
    caption_dim: int = option(64, "width of the caption encoder", low=1)
    steps: int = option(4000, "training steps", low=1)
    batch_size: int = option(32, "images per step", low=1)
    lr: float = option(1e-3, "peak AdamW learning rate", above=0)
    warmup_steps: int = option(200, "linear learning-rate warm-up steps", low=0)
    ema_decay: float = option(0.999, "decay of the weights' exponential moving average", low=0, high=1)
    min_snr_gamma: float = option(5.0, "Min-SNR-γ loss weighting (0: plain ε-MSE)", low=0)
    caption_dropout: float = option(0.1, "fraction of captions dropped, for classifier-free guidance",
                                    low=0, high=1)
    train_scenes: int = option(20000, "pool of training scenes for the unlimited shapes domain", low=1)
    classifier_steps: int = option(800, "training steps of the domain classifier", low=1)
    eval_samples: int = option(200, "generated samples for the caption-agreement check", low=1)
    eval_ddim_steps: int = option(50, "DDIM steps of those samples", low=1)
    guidance_scale: float = option(DEFAULT_GUIDANCE_SCALE, "classifier-free guidance of those samples", above=0)
    seed: int = option(0, "seed of every random draw", low=0)
    init_from: Path | None = option(None, "an earlier base to continue training (a later stage)")

    def validate(self) -> None:
        parse_domain(self.domain)

    @property
    def domain_name(self) -> str:
        return parse_domain(self.domain)[0].name

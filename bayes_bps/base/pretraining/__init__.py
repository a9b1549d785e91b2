"""Pretraining an embedded base: options, denoiser, loop, evaluation, model card, and `pretrain`."""

from .build import pretrain
from .denoiser import build_scheduler, build_unet, min_snr_weights
from .options import PretrainOptions

__all__ = ["PretrainOptions", "build_scheduler", "build_unet", "min_snr_weights", "pretrain"]

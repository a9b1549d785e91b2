"""The frozen base: the pretrained diffusion prior, its caption encoder and domain classifier,
the training pairs encoded into its spaces, its sampler, and how to pretrain one."""

from .frozen import EMBEDDED_BASES, FrozenBase, resolve_base
from .pairs import NoisyBatch, TrainingPairs
from .sampler import DEFAULT_GUIDANCE_SCALE, SCHEDULERS, sample_images, start_noise

__all__ = ["DEFAULT_GUIDANCE_SCALE", "EMBEDDED_BASES", "SCHEDULERS", "FrozenBase", "NoisyBatch", "TrainingPairs",
           "sample_images", "resolve_base", "start_noise"]

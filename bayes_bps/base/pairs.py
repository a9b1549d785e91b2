"""Training pairs for steering, encoded once into the frozen base's spaces.

Few-shot adaptation uses N of order 10-1000 pairs, so targets (as model-space samples) and
captions (as hidden states) are encoded once up front; every step then only draws t and ε.
The checks here are where a dataset meets a base, so a mismatch is reported with both sizes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..utils.files import save_atomic
from .frozen import FrozenBase

TIMESTEP_SAMPLING = ("uniform", "high-noise")


def draw_timesteps(num_train_timesteps: int, count: int, generator: torch.Generator,
                   sampling: str = "uniform") -> Tensor:
    """Training timesteps: uniform over the schedule, or T2I-Adapter's high-noise sampling
    t = (1 − u³) T, u uniform, which puts about half the steps in the noisiest fifth of the
    schedule, where an image's structure is decided."""
    if sampling == "uniform":
        return torch.randint(0, num_train_timesteps, (count,), generator=generator)
    if sampling == "high-noise":
        u = torch.rand(count, generator=generator)
        return ((1 - u**3) * num_train_timesteps).long().clamp(max=num_train_timesteps - 1)
    raise ValueError(f"unknown timestep sampling {sampling!r}; choose one of {', '.join(TIMESTEP_SAMPLING)}")


@dataclass
class NoisyBatch:
    """One minibatch: which pairs, their noised samples, the noise to predict, and the inputs."""

    indices: Tensor  # (B,) into the N training pairs
    noisy: Tensor  # x_t
    timesteps: Tensor  # (B,) uniform over the training schedule
    noise: Tensor  # ε, the regression target
    conditions: Tensor
    caption_states: Tensor


@dataclass
class TrainingPairs:
    samples: Tensor  # (N, ...) targets in model space
    conditions: Tensor  # (N, Cc, H, W) in [0, 1]
    caption_states: Tensor  # (N, tokens, dim)
    captions: list[str]

    @classmethod
    def encode(cls, base: FrozenBase, dataset: Dataset, n: int, name: str = "dataset") -> TrainingPairs:
        """The first `n` pairs of `dataset`, checked against the base and encoded."""
        if not 1 <= n <= len(dataset):
            raise ValueError(f"{name} has {len(dataset)} pairs; cannot take n={n}")
        targets, conditions, captions = zip(*(dataset[i] for i in range(n)))
        targets, conditions = torch.stack(targets), torch.stack(conditions)
        expected = (base.image_channels, base.resolution, base.resolution)
        if tuple(targets.shape[1:]) != expected:
            raise ValueError(f"{name}: images are (channels, height, width) = {tuple(targets.shape[1:])} "
                             f"but the base takes {expected}")
        if tuple(conditions.shape[-2:]) != expected[1:]:
            raise ValueError(f"{name}: conditions are {tuple(conditions.shape[-2:])} pixels but the base "
                             f"draws {expected[1:]}; resize the conditions to the base's resolution")
        device = base.device
        return cls(samples=base.encode_images(targets.to(device)), conditions=conditions.to(device),
                   caption_states=base.encode_captions(list(captions)), captions=list(captions))

    def save(self, path: str | Path) -> None:
        """Write the encoded pairs to `path` atomically (a temporary file, renamed into place)."""
        save_atomic({name: value.cpu() if isinstance(value, Tensor) else value
                     for name, value in asdict(self).items()}, path)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> TrainingPairs:
        """Pairs written by `save`, on `device`."""
        saved = torch.load(path, weights_only=True)
        return cls(**{name: value.to(device) if isinstance(value, Tensor) else value
                      for name, value in saved.items()})

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def condition_channels(self) -> int:
        return self.conditions.shape[1]

    def draw_indices(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """A minibatch of distinct pairs (the whole set when it is smaller than the batch)."""
        return torch.randperm(len(self), generator=generator)[: min(batch_size, len(self))]

    def noisy_batch(self, base: FrozenBase, indices: Tensor, generator: torch.Generator,
                    timestep_sampling: str = "uniform", caption_dropout: float = 0.0,
                    empty_caption_states: Tensor | None = None) -> NoisyBatch:
        """Noise the pairs at `indices`: one t (see `draw_timesteps`) and one ε per example.

        `caption_dropout` replaces that fraction of captions (drawn per example) by the empty
        caption, as ControlNet's recipe does with half of them, so the network must read the
        content from the condition; pass `base.encode_captions([""])` as `empty_caption_states`
        to encode it once per run rather than once per batch."""
        samples = self.samples[indices.to(self.samples.device)]
        timesteps = draw_timesteps(base.num_train_timesteps, len(indices), generator, timestep_sampling)
        noise = torch.randn(samples.shape, generator=generator).to(samples.device)
        timesteps = timesteps.to(samples.device)
        states = self.caption_states[indices.to(self.caption_states.device)]
        if caption_dropout > 0:
            dropped = (torch.rand(len(indices), generator=generator) < caption_dropout).to(states.device)
            empty = base.encode_captions([""]) if empty_caption_states is None else empty_caption_states
            states = torch.where(dropped[:, None, None], empty.to(states.device, states.dtype), states)
        return NoisyBatch(indices=indices, noisy=base.add_noise(samples, noise, timesteps),
                          timesteps=timesteps, noise=noise,
                          conditions=self.conditions[indices.to(self.conditions.device)],
                          caption_states=states)

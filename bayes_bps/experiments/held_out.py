"""What a fitted method is scored on, and how: held-out conditions, a reference set, per-image scores.

Both stages of the study score a method the same way: it samples one image per held-out
condition from seeded DDIM noise (the same noise for every method of a seed), and each image
gets every condition-fidelity score of its task (`metrics.condition_fidelity`) and its
distribution features. Distribution distances compare those features with the reference
split's real images, never with the targets of the scored conditions (`metrics.distances`
says why).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..base import FrozenBase
from ..data import make_dataset
from ..metrics import FeatureSpace, condition_fidelity
from .methods import FittedMethod


@dataclass
class HeldOut:
    """The first `count` conditions of a held-out split, with their captions."""

    split: str
    conditions: Tensor
    captions: list[str]

    def __len__(self) -> int:
        return len(self.captions)


def held_out(domain: str, task: str, split: str, count: int, resolution: int) -> HeldOut:
    dataset = make_dataset(domain, task, split=split, length=count, resolution=resolution)
    _, conditions, captions = zip(*(dataset[i] for i in range(len(dataset))))
    return HeldOut(split, torch.stack(conditions), list(captions))


def reference_images(domain: str, task: str, count: int, resolution: int) -> Tensor:
    """Real target images of the reference split: the distribution the methods should match."""
    dataset = make_dataset(domain, task, split="reference", length=count, resolution=resolution)
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


@dataclass
class Scored:
    images: Tensor
    scores: dict[str, Tensor]  # name -> (count,) per-image scores
    features: np.ndarray | None  # (count, d) distribution features, when asked for


def score(fitted: FittedMethod, base: FrozenBase, task: str, conditions: HeldOut, *, ddim_steps: int, seed: int,
          scale: float = 1.0, space: FeatureSpace | None = None) -> Scored:
    """Sample `fitted` on the held-out conditions and score every image."""
    images = fitted.sample(base, conditions.conditions, conditions.captions, steps=ddim_steps, seed=seed,
                           scale=scale)
    scores = condition_fidelity(task, images, conditions.conditions, conditions.captions,
                                classifier=base.classifier)
    return Scored(images, scores, None if space is None else space.extract(images))

"""Style fidelity: does a generated image wear the target style (the shapes' diagonal hatching)?

The style task re-renders a plain scene hatched, so its condition is the plain image and no
pixel comparison says whether the style was taken. A small classifier (the domain
classifier's architecture, two labels) learns plain against hatched from the train split's
scenes, both renderings of each; `style_agreement` is 1 where it reads an image as hatched.
It is trained once per process and resolution (seeded, a few seconds) rather than shipped: it
depends on nothing but the renderer.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch.utils.data import Dataset

from ..base.classifier import DomainClassifier, train_classifier
from ..data import ShapesDataset

STYLE_LABELS = ["plain scene", "hatched scene"]
TRAIN_SCENES = 512
TRAIN_STEPS = 100


class PlainAndHatched(Dataset):
    """Both renderings of each scene of a shapes split: (image, unused, "a plain/hatched scene")."""

    def __init__(self, split: str, scenes: int, resolution: int, seed: int = 0):
        dataset = ShapesDataset("style", length=scenes, seed=seed, split=split, resolution=resolution)
        rendered = [dataset.scene(i) for i in range(scenes)]  # once: an epoch would re-render
        self.images = torch.stack([image for scene in rendered for image in (scene.image, scene.styled)])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        hatched = index % 2 == 1
        return self.images[index], self.images[index, :1], f"a {STYLE_LABELS[hatched]}"


def train_style_classifier(resolution: int = 32, scenes: int = TRAIN_SCENES, steps: int = TRAIN_STEPS,
                           seed: int = 0) -> DomainClassifier:
    torch.manual_seed(seed)
    classifier = DomainClassifier(3, STYLE_LABELS, multi_label=False, width=8)
    train_classifier(classifier, PlainAndHatched("train", scenes, resolution, seed), steps, batch_size=32,
                     seed=seed)
    return classifier


@lru_cache(maxsize=2)
def style_classifier(resolution: int) -> DomainClassifier:
    """The style classifier of a resolution, trained on first use."""
    return train_style_classifier(resolution)


def style_agreement(images: torch.Tensor, classifier: DomainClassifier | None = None) -> torch.Tensor:
    """1 where an image in [-1, 1] reads as hatched, else 0 `(B,)`."""
    classifier = classifier or style_classifier(images.shape[-1])
    hatched = STYLE_LABELS.index("hatched scene")
    return (classifier.predict(images.to(classifier.device)).cpu() == hatched).float()

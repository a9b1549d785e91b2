"""Real handwriting: scikit-learn's bundled 8x8 digits (1797 images, works offline).

The images are upsampled to the requested resolution, ink bright (+1) on a dark
(-1) background. The split is a fixed permutation drawn from ``seed``: the first
80% is "train", the rest "test", so the two never share an image.
"""

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import Tensor
from torch.utils.data import Dataset

from .extractors import sketch_from_image

SPLITS = ("train", "test")
TRAIN_FRACTION = 0.8
MAX_INTENSITY = 16  # load_digits pixels are integers 0..16


class DigitsDataset(Dataset):
    """Items are (digit (1,H,W) in [-1,1], its sketch (1,H,W) in [0,1], "a handwritten digit k")."""

    TASKS = ("sketch",)
    image_channels = 1
    condition_channels = 1

    def __init__(
        self,
        task: str = "sketch",
        split: str = "train",
        seed: int = 0,
        length: int | None = None,
        resolution: int = 32,
    ) -> None:
        if task not in self.TASKS:
            raise ValueError(f"DigitsDataset has no task {task!r}; its tasks are {', '.join(self.TASKS)}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if resolution < 8:
            raise ValueError(f"resolution must be at least the native 8 pixels, got {resolution}")
        digits = load_digits()
        order = np.random.default_rng(seed).permutation(len(digits.images))
        train_count = int(TRAIN_FRACTION * len(order))
        indices = order[:train_count] if split == "train" else order[train_count:]
        if length is not None:
            if not 1 <= length <= len(indices):
                raise ValueError(
                    f"length must be between 1 and the {len(indices)} digits of the {split} split "
                    f"({len(order)} in all), got {length}"
                )
            indices = indices[:length]
        pixels = torch.from_numpy(digits.images[indices] / MAX_INTENSITY).to(torch.float32)[:, None]
        upsampled = F.interpolate(pixels, size=(resolution, resolution), mode="bilinear", align_corners=False)
        self.images = upsampled.clamp(0, 1) * 2 - 1
        self.labels = [int(label) for label in digits.target[indices]]
        self.task = task
        self.split = split
        self.resolution = resolution

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, str]:
        image = self.images[index]
        return image, sketch_from_image(image), _caption(self.labels[index])

    def label(self, index: int) -> int:
        return self.labels[index]

    def captions(self) -> list[str]:
        return [_caption(label) for label in self.labels]


def digit_labels() -> list[str]:
    """The caption phrases a digits classifier predicts, one per class."""
    return [f"digit {k}" for k in range(10)]


def _caption(label: int) -> str:
    return f"a handwritten digit {label}"

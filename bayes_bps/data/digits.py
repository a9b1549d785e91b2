"""Real handwriting: scikit-learn's bundled 8x8 digits (1797 images, works offline).

The images are upsampled to the requested resolution, ink bright (+1) on a dark
(-1) background. One fixed permutation (drawn with `HELD_OUT_SEED`, whatever `seed` is)
splits them: the first 80% is "train", what the embedded digits base and its classifier were
pretrained on; the other 360 digits are cut in three equal held-out splits, "validation",
"test" and "reference" (see `splits.py`). `seed` only orders the train split, so the first N
training digits differ between seeds while the held-out splits never move.
"""

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import Tensor
from torch.utils.data import Dataset

from .extractors import sketch_from_image
from .splits import HELD_OUT, HELD_OUT_SEED, check_split

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
        check_split(split)
        if resolution < 8:
            raise ValueError(f"resolution must be at least the native 8 pixels, got {resolution}")
        digits = load_digits()
        indices = split_indices(len(digits.images), split, seed)
        if length is not None:
            if not 1 <= length <= len(indices):
                raise ValueError(
                    f"length must be between 1 and the {len(indices)} digits of the {split} split "
                    f"({len(digits.images)} in all), got {length}"
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


def split_indices(count: int, split: str, seed: int) -> np.ndarray:
    """Which of the `count` digits form `split`; only the train split's order depends on `seed`."""
    order = np.random.default_rng(HELD_OUT_SEED).permutation(count)
    train_count = int(TRAIN_FRACTION * count)
    if split == "train":
        return order[:train_count][np.random.default_rng([seed, 0]).permutation(train_count)]
    return np.array_split(order[train_count:], len(HELD_OUT))[HELD_OUT.index(split)]


def digit_labels() -> list[str]:
    """The caption phrases a digits classifier predicts, one per class."""
    return [f"digit {k}" for k in range(10)]


def _caption(label: int) -> str:
    return f"a handwritten digit {label}"

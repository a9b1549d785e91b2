"""Image tensors to files and back: the pixel conventions shared by every stage.

Images are float tensors, channels first: samples and targets in [-1, 1], conditions and
anything written to a file in [0, 1]. Nothing is resized or converted between grey and colour
on the way in: a mismatch is an error naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

GRAYSCALE_MODES = {"1", "L", "LA", "I", "I;16", "F"}
PIL_MODES = {1: "L", 3: "RGB"}


class ImageFileError(ValueError):
    """An image file is missing, unreadable or of the wrong shape; the message names the file."""


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> [0, 1], the range image files and plots take."""
    return ((images + 1) / 2).clamp(0, 1)


def load_image(path: Path, mode: str | None = None) -> Image.Image:
    """Fully decode an image file, converted to PIL `mode` if given; ImageFileError names the file."""
    try:
        with Image.open(path) as image:
            # Decode inside the block: closing the file discards undecoded data.
            return image.convert(mode) if mode else image.copy()
    except (OSError, SyntaxError, ValueError) as error:  # PIL's ways of saying "not an image"
        raise ImageFileError(f"cannot read image {path}: {error}") from error


def channels_of(image: Image.Image) -> int:
    """1 for a grayscale image, 3 otherwise."""
    return 1 if image.mode in GRAYSCALE_MODES else 3


def load_png(path: Path, channels: int, resolution: int, wanted_by: str = "expected") -> torch.Tensor:
    """An image file as a (channels, resolution, resolution) tensor in [0, 1], exactly as stored;
    a mismatch is an ImageFileError: "<path> is (channels, height, width) = ...; <wanted_by> ..."."""
    image = load_image(path)
    found = (channels_of(image), image.height, image.width)
    if found != (channels, resolution, resolution):
        raise ImageFileError(f"{path} is (channels, height, width) = {found}; {wanted_by} "
                             f"{(channels, resolution, resolution)}")
    pixels = np.asarray(image.convert(PIL_MODES[channels]), dtype=np.float32) / 255
    return torch.from_numpy(pixels.reshape(resolution, resolution, channels)).permute(2, 0, 1).contiguous()


def save_png(image: torch.Tensor, path: Path) -> Path:
    """One (C, H, W) image in [0, 1] as an 8-bit PNG, pixel for pixel."""
    pixels = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0)
    Image.fromarray(pixels.squeeze(-1).numpy() if pixels.shape[-1] == 1 else pixels.numpy()).save(path)
    return Path(path)

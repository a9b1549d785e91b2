"""User-supplied paired data in the ControlNet / official BPS folder layout.

    ROOT/source/*.png   conditions (e.g. sketches)
    ROOT/target/*.png   images
    ROOT/prompt.json    one JSON object per line:
                        {"source": "source/0.png", "target": "target/0.png", "prompt": "..."}

Paths in prompt.json are relative to ROOT. The whole index is read and every
referenced file is checked at construction, so a broken dataset fails at once
with the line to fix; images are decoded lazily, one item at a time.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from ..utils.images import PIL_MODES, ImageFileError, channels_of, load_image

PROMPT_FILE = "prompt.json"
REQUIRED_KEYS = ("source", "target", "prompt")


class DatasetError(ValueError):
    """A dataset on disk is missing, malformed or unreadable; the message names the file."""


@dataclass(frozen=True)
class Pair:
    """One line of prompt.json, with its paths resolved against the dataset root."""

    source: Path
    target: Path
    prompt: str


class FolderDataset(Dataset):
    """Items are (target (C,H,W) in [-1,1], condition (Cc,H,W) in [0,1], prompt)."""

    TASKS = ("sketch",)

    def __init__(
        self,
        root: str | Path,
        resolution: int,
        image_channels: int = 3,
        condition_channels: int | None = None,
        task: str = "sketch",
        *,
        length: int | None = None,
    ) -> None:
        if task not in self.TASKS:
            raise ValueError(f"FolderDataset has no task {task!r}; its tasks are {', '.join(self.TASKS)}")
        if resolution < 1:
            raise ValueError(f"resolution must be positive, got {resolution}")
        channel_counts = {"image_channels": image_channels, "condition_channels": condition_channels}
        for name, channels in channel_counts.items():
            if channels is not None and channels not in PIL_MODES:
                raise ValueError(f"{name} must be 1 or 3, got {channels}")
        pairs = read_prompt_file(Path(root))
        if length is not None:
            if not 1 <= length <= len(pairs):
                raise ValueError(
                    f"length must be between 1 and the {len(pairs)} pairs available in {root}, got {length}"
                )
            pairs = pairs[:length]
        self.pairs = pairs
        self.task = task
        self.resolution = resolution
        self.image_channels = image_channels
        if condition_channels is None:
            condition_channels = channels_of(read_image(pairs[0].source))
        self.condition_channels = condition_channels

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, str]:
        pair = self.pairs[index]
        target = self._load(pair.target, self.image_channels) * 2 - 1
        condition = self._load(pair.source, self.condition_channels)
        return target, condition, pair.prompt

    def captions(self) -> list[str]:
        return [pair.prompt for pair in self.pairs]

    def _load(self, path: Path, channels: int) -> Tensor:
        """Decode, resize (bilinear, so thin sketch lines fade rather than vanish) and scale to [0, 1]."""
        image = read_image(path, PIL_MODES[channels])
        image = image.resize((self.resolution, self.resolution), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.float32).reshape(self.resolution, self.resolution, channels) / 255
        return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()


def read_image(path: Path, mode: str | None = None) -> Image.Image:
    """`utils.images.load_image`, failing with a DatasetError that names the file."""
    try:
        return load_image(path, mode)
    except ImageFileError as error:
        raise DatasetError(str(error)) from error


def read_prompt_file(root: Path) -> list[Pair]:
    """Parse and check ROOT/prompt.json; blank lines are skipped."""
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    prompt_file = root / PROMPT_FILE
    if not prompt_file.is_file():
        raise DatasetError(f"{prompt_file} not found: a folder dataset needs one JSON object per line there")
    try:
        text = prompt_file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DatasetError(f"{prompt_file} is not UTF-8 text: {error}") from error
    pairs = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            pairs.append(_parse_line(root, line, prompt_file, line_number))
    if not pairs:
        raise DatasetError(f"{prompt_file} has no entries")
    return pairs


def _parse_line(root: Path, line: str, prompt_file: Path, line_number: int) -> Pair:
    where = f"{prompt_file} line {line_number}"
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as error:
        raise DatasetError(f"{where}: not valid JSON ({error.msg})") from error
    if not isinstance(entry, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {type(entry).__name__}")
    for key in REQUIRED_KEYS:
        if key not in entry:
            raise DatasetError(f"{where}: missing key {key!r}")
        if not isinstance(entry[key], str):
            raise DatasetError(f"{where}: {key!r} must be a string, got {type(entry[key]).__name__}")
    source, target = root / entry["source"], root / entry["target"]
    for key, path in (("source", source), ("target", target)):
        if not path.is_file():
            raise DatasetError(f"{where}: {key} file {path} does not exist")
    return Pair(source, target, entry["prompt"])

"""Procedural scenes of coloured shapes, with every condition known exactly.

A scene holds 1-3 non-overlapping shapes (circle, square, triangle) in one of
six colours over a dark background. Because the generator knows each object,
it can render all four conditions (sketch, segmentation, layout, style) without
any learned extractor, and tests can check a model's output against the truth.

Scenes are few enough to repeat (a lone shape has some 36 000 colourings, sizes and places), so
a split is not just a stream of random draws. Every scene belongs to one split, named by a
hash of its objects (`scene_split`: 70% train, 10% each held-out split), and each split's
stream ``np.random.default_rng([seed, stream, j])`` keeps only its own scenes: scene ``i`` is
the i-th kept draw. So no scene is in two splits, for any seeds and lengths, and scene ``i``
depends only on (seed, split, i), never on the length or the order of access. The held-out
splits (see `splits.py`) always use `HELD_OUT_SEED`: the same scenes for every `seed`.

The embedded shapes base was pretrained before this partition, on the first 20 000 draws of
the unfiltered seed-0 train stream (`embedded_base_scenes`); at its 32-pixel resolution the
held-out splits skip those scenes too (measured: 56 of 512 would have repeated one).
"""

import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .splits import HELD_OUT, HELD_OUT_SEED, check_split
from .tasks import TASKS

SHAPES = ("circle", "square", "triangle")
COLOURS = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "magenta": (1.0, 0.0, 1.0),
    "cyan": (0.0, 1.0, 1.0),
}
BACKGROUND = (0.12, 0.12, 0.15)
# One class colour per shape, used by the segmentation condition.
SEGMENTATION_PALETTE = {"circle": (1.0, 0.0, 0.0), "square": (0.0, 1.0, 0.0), "triangle": (0.0, 0.0, 1.0)}
STREAMS = {"train": 0, "validation": 1, "test": 2, "reference": 3}
SPLIT_BUCKETS = {"train": range(7), "validation": (7,), "test": (8,), "reference": (9,)}  # of 10
# What the embedded shapes base saw: draws 0..19 999 of the unfiltered train stream of seed 0.
EMBEDDED_BASE_POOL = {"seed": 0, "scenes": 20000, "resolution": 32}

MAX_OBJECTS = 3
SIZE_FRACTION = (0.30, 0.45)  # object side length, as a fraction of the resolution
MARGIN = 2  # pixels kept free between boxes, so outlines never touch
PLACEMENT_TRIES = 50
SUPERSAMPLING = 4  # masks are computed on a 4x finer grid and averaged: soft edges
HATCH_PERIOD = 4  # pixels between the diagonal stripes of the "style" rendering


@dataclass(frozen=True)
class ShapeObject:
    """One object of a scene; ``box`` is (x0, y0, x1, y1) in pixels, x1/y1 exclusive."""

    shape: str
    colour: str
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class Scene:
    """A rendered scene: plain and styled images in [-1, 1], conditions in [0, 1]."""

    image: Tensor  # (3, H, W)
    styled: Tensor  # (3, H, W), the target of the "style" task
    caption: str
    objects: list[ShapeObject]  # left to right, as in the caption
    conditions: dict[str, Tensor]  # one entry per task in TASKS


class ShapesDataset(Dataset):
    """``length`` scenes for one task; items are (target, condition, caption)."""

    TASKS = TASKS
    image_channels = 3

    def __init__(
        self,
        task: str = "sketch",
        length: int = 1000,
        seed: int = 0,
        split: str = "train",
        resolution: int = 32,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"ShapesDataset has no task {task!r}; its tasks are {', '.join(TASKS)}")
        check_split(split)
        if length < 1:
            raise ValueError(f"length must be at least 1, got {length}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        if resolution < 16:
            raise ValueError(f"resolution must be at least 16 pixels, got {resolution}")
        self.task = task
        self.length = length
        self.seed = seed
        self.split = split
        self.resolution = resolution
        self.condition_channels = 1 if task == "sketch" else 3

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, str]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} scenes")
        scene = self.scene(index)
        target = scene.styled if self.task == "style" else scene.image
        return target, scene.conditions[self.task], scene.caption

    def factors(self, index: int) -> list[ShapeObject]:
        """The objects of scene ``index``, left to right, without rendering it."""
        if index < 0:
            raise IndexError(f"scene index must be non-negative, got {index}")
        seed = HELD_OUT_SEED if self.split in HELD_OUT else self.seed
        draw = _kept_draws(seed, self.split, self.resolution, index + 1)[index]
        return stream_draw(seed, STREAMS[self.split], draw, self.resolution)

    def scene(self, index: int) -> Scene:
        """Scene ``index`` with every condition; any index >= 0 is valid."""
        return _render(self.factors(index), self.resolution)

    def captions(self) -> list[str]:
        return [caption_for(self.factors(i)) for i in range(self.length)]


def scene_split(objects: list[ShapeObject]) -> str:
    """The one split a scene belongs to: a stable hash of its objects picks a bucket of ten."""
    key = ";".join(f"{obj.shape} {obj.colour} {obj.box}" for obj in objects)
    bucket = zlib.crc32(key.encode()) % 10
    return next(split for split, buckets in SPLIT_BUCKETS.items() if bucket in buckets)


def stream_draw(seed: int, stream: int, draw: int, resolution: int) -> list[ShapeObject]:
    """Draw ``draw`` of a stream, before any split keeps or skips it."""
    return _sample_objects(np.random.default_rng([seed, stream, draw]), resolution)


@lru_cache(maxsize=1)
def embedded_base_scenes() -> frozenset[tuple[ShapeObject, ...]]:
    """The scenes the embedded shapes base was pretrained on (a few seconds, once a process)."""
    pool = EMBEDDED_BASE_POOL
    return frozenset(tuple(stream_draw(pool["seed"], STREAMS["train"], draw, pool["resolution"]))
                     for draw in range(pool["scenes"]))


_KEPT: dict[tuple[int, str, int], list[int]] = {}


def _kept_draws(seed: int, split: str, resolution: int, count: int) -> list[int]:
    """The first `count` draws of the split's stream that belong to it, extended on demand."""
    kept = _KEPT.setdefault((seed, split, resolution), [])
    skip_base_scenes = split in HELD_OUT and resolution == EMBEDDED_BASE_POOL["resolution"]
    draw = kept[-1] + 1 if kept else 0
    while len(kept) < count:
        objects = stream_draw(seed, STREAMS[split], draw, resolution)
        if scene_split(objects) == split and not (skip_base_scenes and tuple(objects) in embedded_base_scenes()):
            kept.append(draw)
        draw += 1
    return kept


def shape_labels() -> list[str]:
    """The caption phrases a shapes classifier predicts, one per (colour, shape)."""
    return [f"{colour} {shape}" for colour in COLOURS for shape in SHAPES]


def caption_for(objects: list[ShapeObject]) -> str:
    """'a red circle', 'a red circle and a blue square', 'a, b and c'."""
    phrases = [f"a {obj.colour} {obj.shape}" for obj in objects]
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _sample_objects(rng: np.random.Generator, resolution: int) -> list[ShapeObject]:
    count = int(rng.integers(1, MAX_OBJECTS + 1))
    objects: list[ShapeObject] = []
    for _ in range(count):
        shape = SHAPES[rng.integers(len(SHAPES))]
        colour = list(COLOURS)[rng.integers(len(COLOURS))]
        box = _place_box(rng, resolution, [obj.box for obj in objects])
        if box is None:  # no room left: keep the objects placed so far
            break
        objects.append(ShapeObject(shape, colour, box))
    return sorted(objects, key=lambda obj: (obj.box[0] + obj.box[2], obj.box[1] + obj.box[3]))


def _place_box(
    rng: np.random.Generator, resolution: int, taken: list[tuple[int, int, int, int]]
) -> tuple[int, int, int, int] | None:
    smallest, largest = (round(fraction * resolution) for fraction in SIZE_FRACTION)
    size = int(rng.integers(smallest, largest + 1))
    for _ in range(PLACEMENT_TRIES):
        x0, y0 = (int(v) for v in rng.integers(0, resolution - size + 1, size=2))
        box = (x0, y0, x0 + size, y0 + size)
        if not any(_too_close(box, other) for other in taken):
            return box
    return None


def _too_close(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] + MARGIN and b[0] < a[2] + MARGIN and a[1] < b[3] + MARGIN and b[1] < a[3] + MARGIN


@dataclass(frozen=True)
class _Grid:
    """Sample-point coordinates (in pixels) of the supersampled grid."""

    x: np.ndarray  # (1, N)
    y: np.ndarray  # (N, 1)
    stripes: np.ndarray  # (N, N) bool, diagonal hatching


@lru_cache(maxsize=8)
def _grid(resolution: int) -> _Grid:
    centres = (np.arange(resolution * SUPERSAMPLING) + 0.5) / SUPERSAMPLING
    x, y = centres[None, :], centres[:, None]
    stripes = (x + y) % HATCH_PERIOD < HATCH_PERIOD / 2
    return _Grid(x, y, stripes)


def _inside(obj: ShapeObject, grid: _Grid) -> np.ndarray:
    """Boolean mask of the supersampled points covered by the object."""
    x0, y0, x1, y1 = obj.box
    centre_x, centre_y, half = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    if obj.shape == "circle":
        return (grid.x - centre_x) ** 2 + (grid.y - centre_y) ** 2 <= half**2
    if obj.shape == "square":
        return (grid.x >= x0) & (grid.x < x1) & (grid.y >= y0) & (grid.y < y1)
    # Upright isosceles triangle: apex at the top centre, base along the bottom.
    height_fraction = (grid.y - y0) / (y1 - y0)
    return (grid.y >= y0) & (grid.y < y1) & (np.abs(grid.x - centre_x) <= half * height_fraction)


def _downsample(mask: np.ndarray, resolution: int) -> np.ndarray:
    """Average each SUPERSAMPLING x SUPERSAMPLING block: pixel coverage in [0, 1]."""
    blocks = mask.reshape(resolution, SUPERSAMPLING, resolution, SUPERSAMPLING)
    return blocks.mean(axis=(1, 3))


def _inner_boundary(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask (the image border counts as outside)."""
    padded = np.pad(mask, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def _render(objects: list[ShapeObject], resolution: int) -> Scene:
    grid = _grid(resolution)
    plain = np.empty((resolution, resolution, 3))
    plain[:] = BACKGROUND
    styled = plain.copy()
    sketch = np.zeros((resolution, resolution), dtype=bool)
    segmentation = np.zeros((3, resolution, resolution))
    layout = np.zeros((3, resolution, resolution))
    for obj in objects:
        inside = _inside(obj, grid)
        coverage = _downsample(inside, resolution)
        solid = coverage >= 0.5
        outline = _inner_boundary(solid)
        colour = np.array(COLOURS[obj.colour])
        plain += coverage[..., None] * (colour - plain)
        styled_coverage = np.maximum(_downsample(inside & grid.stripes, resolution), outline)
        styled += styled_coverage[..., None] * (colour - styled)
        sketch |= outline
        segmentation[:, solid] = np.array(SEGMENTATION_PALETTE[obj.shape])[:, None]
        x0, y0, x1, y1 = obj.box
        layout[SHAPES.index(obj.shape), y0:y1, x0:x1] = 1.0
    plain_image = _to_tensor(plain.transpose(2, 0, 1))
    conditions = {
        "sketch": _to_tensor(sketch[None]),
        "segmentation": _to_tensor(segmentation),
        "layout": _to_tensor(layout),
        "style": plain_image,  # the style task restyles the plain scene
    }
    return Scene(
        image=plain_image * 2 - 1,
        styled=_to_tensor(styled.transpose(2, 0, 1)) * 2 - 1,
        caption=caption_for(objects),
        objects=objects,
        conditions=conditions,
    )


def _to_tensor(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

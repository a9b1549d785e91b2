"""Agreement of generated images with a layout: are the objects in their boxes, and is every box
filled?

A layout condition `(B, classes, H, W)` marks each object's box in its class's channel (shapes.py
draws boxes kept apart, so each connected region of a channel is one object). Against the image's
foreground (`foreground.py`):

- `box_precision`: the fraction of foreground pixels inside some box (1 for a real scene, whose
  objects lie in their boxes; 1 for an empty image too, so read it with the recall);
- `box_recall`: the fraction of boxes whose area is at least `min_fill` foreground. A triangle
  fills half its box and a circle 79 %, so the default 1/4 asks that something object-sized is
  there, not that it has the right shape; the class is the domain classifier's business
  (`labels.py`);
- `box_f1`: their harmonic mean, the one number a tuning run can maximise.
"""

from __future__ import annotations

import torch
from scipy import ndimage

from .foreground import FOREGROUND_THRESHOLD, foreground_mask

MIN_FILL = 0.25


def _box_fills(foreground: torch.Tensor, layout: torch.Tensor) -> list[float]:
    """Foreground fraction of each box of one layout `(classes, H, W)`."""
    fills = []
    for channel in layout.numpy() > 0.5:
        regions, _ = ndimage.label(channel)
        fills += [foreground[box].float().mean().item() for box in ndimage.find_objects(regions)]
    return fills


def layout_agreement(images: torch.Tensor, layouts: torch.Tensor, min_fill: float = MIN_FILL,
                     threshold: float = FOREGROUND_THRESHOLD) -> dict[str, torch.Tensor]:
    """Per-image `box_precision`, `box_recall` and `box_f1` `(B,)` of images in [-1, 1] against layouts."""
    if images.shape[0] != layouts.shape[0] or images.shape[-2:] != layouts.shape[-2:]:
        raise ValueError(f"images {tuple(images.shape)} and layouts {tuple(layouts.shape)} "
                         "must match in batch and size")
    foreground = foreground_mask(images, threshold)
    layouts = layouts.detach().cpu()
    inside = layouts.amax(dim=1) > 0.5
    found = (foreground & inside).flatten(1).sum(dim=1).float()
    total = foreground.flatten(1).sum(dim=1).float()
    precision = torch.where(total > 0, found / total.clamp(min=1), 1.0)
    recall = []
    for mask, layout in zip(foreground, layouts):
        fills = torch.tensor(_box_fills(mask, layout))
        recall.append((fills >= min_fill).float().mean().item() if len(fills) else 1.0)
    recall = torch.tensor(recall)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), 0.0)
    return {"box_precision": precision, "box_recall": recall, "box_f1": f1}

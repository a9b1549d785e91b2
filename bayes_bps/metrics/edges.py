"""Edge agreement for the sketch task.

Canny edges of the generated image (the same extractor that makes sketches from images) against
the condition sketch, as an F1 score where an edge within `tolerance` pixels of the other map
counts as a hit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import sketch_from_image


def _dilate(mask: torch.Tensor, tolerance: int) -> torch.Tensor:
    return F.max_pool2d(mask.float(), 2 * tolerance + 1, stride=1, padding=tolerance) > 0


def edge_f1(images: torch.Tensor, sketches: torch.Tensor, tolerance: int = 1) -> torch.Tensor:
    """Per-image edge F1 `(B,)` of images in [-1, 1] against sketches `(B, 1, H, W)` in [0, 1].

    Precision: generated edge pixels near a sketch edge. Recall: sketch edge pixels near a
    generated edge. An image with no edges against a sketch with none scores 1.
    """
    if images.shape[0] != sketches.shape[0] or images.shape[-2:] != sketches.shape[-2:]:
        raise ValueError(f"images {tuple(images.shape)} and sketches {tuple(sketches.shape)} "
                         "must match in batch and size")
    generated = sketch_from_image(images.cpu()) > 0.5
    wanted = sketches.cpu() > 0.5
    hits_generated = (generated & _dilate(wanted, tolerance)).sum(dim=(1, 2, 3)).float()
    hits_wanted = (wanted & _dilate(generated, tolerance)).sum(dim=(1, 2, 3)).float()
    n_generated, n_wanted = generated.sum(dim=(1, 2, 3)).float(), wanted.sum(dim=(1, 2, 3)).float()
    precision = torch.where(n_generated > 0, hits_generated / n_generated.clamp(min=1), 1.0)
    recall = torch.where(n_wanted > 0, hits_wanted / n_wanted.clamp(min=1), 1.0)
    return torch.where(precision + recall > 0,
                       2 * precision * recall / (precision + recall).clamp(min=1e-12), 0.0)

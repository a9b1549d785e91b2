"""Foreground of an image without a segmenter, and its agreement with a segmentation mask.

The built-in scenes put saturated objects on a flat background, so "foreground" is measured
directly: the background colour is the median colour of the image border (objects rarely cover
half of it), and a pixel is foreground when some channel differs from it by more than
`threshold` on the [0, 1] scale. The default 0.4 is about half the contrast of every shapes
colour against the dark background (>= 0.85 in some channel), so a pixel counts when an object
covers about half of it, as in the segmentation masks. This is a foreground IoU, not a semantic
segmentation score: it ignores which class an object is.
"""

from __future__ import annotations

import torch

FOREGROUND_THRESHOLD = 0.4


def background_colour(images: torch.Tensor) -> torch.Tensor:
    """Median colour `(B, C)` of the one-pixel border of images `(B, C, H, W)`."""
    border = torch.cat([images[..., 0, :], images[..., -1, :], images[..., :, 0], images[..., :, -1]], dim=-1)
    return border.median(dim=-1).values


def foreground_mask(images: torch.Tensor, threshold: float = FOREGROUND_THRESHOLD) -> torch.Tensor:
    """Boolean `(B, H, W)`: pixels of images in [-1, 1] that differ from the background colour."""
    if images.dim() != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(images.shape)}")
    images = images.detach().cpu().float()
    difference = (images - background_colour(images)[..., None, None]).abs() / 2  # [0, 1] scale
    return difference.amax(dim=1) > threshold


def mask_iou(predicted: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
    """Per-image IoU `(B,)` of boolean masks `(B, H, W)`; two empty masks agree (1)."""
    intersection = (predicted & wanted).flatten(1).sum(dim=1).float()
    union = (predicted | wanted).flatten(1).sum(dim=1).float()
    return torch.where(union > 0, intersection / union.clamp(min=1), 1.0)


def foreground_iou(images: torch.Tensor, segmentations: torch.Tensor,
                   threshold: float = FOREGROUND_THRESHOLD) -> torch.Tensor:
    """Per-image IoU `(B,)` between the foreground of images in [-1, 1] and the non-background
    pixels of class-coloured masks `(B, 3, H, W)` in [0, 1] (background black, as shapes.py draws)."""
    if images.shape[0] != segmentations.shape[0] or images.shape[-2:] != segmentations.shape[-2:]:
        raise ValueError(f"images {tuple(images.shape)} and segmentations {tuple(segmentations.shape)} "
                         "must match in batch and size")
    wanted = segmentations.detach().cpu().amax(dim=1) > 0.5
    return mask_iou(foreground_mask(images, threshold), wanted)

"""What the pipelines share: one seed from the caller's generator, and images as PIL or tensors."""

from __future__ import annotations

import PIL.Image
import torch
from torch import Tensor

OUTPUT_TYPES = ("pil", "pt")


def seed_from(generator: torch.Generator | None) -> int:
    """The seed of a call: drawn from `generator` (so consecutive calls differ, as in diffusers),
    0 without one. The initial noise, posterior draws and stochastic scheduler steps follow from it."""
    return 0 if generator is None else int(torch.randint(0, 2**31 - 1, (1,), generator=generator))


def as_output(images: Tensor, output_type: str) -> list[PIL.Image.Image] | Tensor:
    """Images (N, C, H, W) in [0, 1] as PIL images or as the tensor itself."""
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
    if output_type == "pt":
        return images
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [PIL.Image.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture) for picture in pixels]

"""Unsteered samples of a base, computed once and cached by the content of what made them.

Every fit of a base evaluates against the same unsteered samples (the test split's captions,
the same seed, steps and guidance), and drawing them is a quarter of a fit's closing
evaluation. The cache key hashes everything the samples depend on: the base's weights and
noise schedule, the captions, the sampling arguments, and the torch version. A changed base or
caption is a new key, never a stale hit. Files are written atomically.

The folder is $BAYES_BPS_CACHE, or ~/.cache/bayes_bps; `cache=None` turns caching off.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from ..utils.files import save_atomic
from .frozen import FrozenBase
from .sampler import sample_images


def default_cache() -> Path:
    return Path(os.environ.get("BAYES_BPS_CACHE", Path.home() / ".cache" / "bayes_bps")) / "samples"


def base_fingerprint(base: FrozenBase) -> str:
    """A hash of the base's parameters and buffers (UNet, encoders, VAE) and its schedule."""
    digest = hashlib.sha256(json.dumps(base.scheduler.config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(base.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def cached_sample_images(base: FrozenBase, captions: list[str], *, cache: Path | None = None,
                       **sampling) -> torch.Tensor:
    """`sample_images(base, captions, **sampling)`, read from the cache when it was drawn before."""
    if cache is None:
        return sample_images(base, captions, **sampling)
    shown = {key: value for key, value in sampling.items() if key != "progress"}
    if any(isinstance(value, torch.Tensor) for value in shown.values()):
        return sample_images(base, captions, **sampling)  # explicit noise: not worth hashing
    key = hashlib.sha256(json.dumps({"base": base_fingerprint(base), "captions": list(captions),
                                     "sampling": shown, "torch": torch.__version__,
                                     "device": base.device.type}, sort_keys=True).encode()).hexdigest()
    path = Path(cache) / f"{key}.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    images = sample_images(base, captions, **sampling)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(images.cpu(), path)
    return images

"""Which features the distribution distances use, and the names their results must carry.

A Fréchet distance is only an "FID" on pytorch-fid's Inception features; on anything else it is
a different number on a different scale. Without an Inception weights file (none can be
downloaded here) the distances use the penultimate features of the domain classifier shipped
with an embedded base, and are labelled "domain FD" and "domain KID", never FID or KID.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..base import FrozenBase
from ..base.classifier import DomainClassifier
from .distances import frechet_distance, kernel_inception_distance
from .inception import WEIGHTS_FILE, find_inception_weights, inception_features
from .intervals import Estimate, bootstrap_interval

DISTANCE_RESAMPLES = 200  # each resample costs an FD and a KID, not a mean


class FeatureSpace(NamedTuple):
    """`name` is the Fréchet distance's name ("FID" or "domain FD"); `extract` maps images
    `(B, C, H, W)` in [-1, 1] to features `(B, F)` float64."""

    name: str
    extract: Callable[[torch.Tensor], np.ndarray]

    @property
    def kid_name(self) -> str:
        return "KID" if self.name == "FID" else "domain KID"


def domain_features(classifier: DomainClassifier, batch_size: int = 256) -> Callable[[torch.Tensor], np.ndarray]:
    """An extractor: images in [-1, 1] -> the domain classifier's penultimate features, float64."""

    @torch.no_grad()
    def extract(images: torch.Tensor) -> np.ndarray:
        device = classifier.device
        chunks = [classifier.features(batch.to(device)).cpu() for batch in images.split(batch_size)]
        return torch.cat(chunks).double().numpy()

    return extract


def distribution_features(base: FrozenBase, inception_weights: str | Path | None = None) -> FeatureSpace:
    """("FID", Inception features) when a weights file is given or in the torch hub cache, else
    ("domain FD", the base's domain-classifier features)."""
    weights = find_inception_weights(inception_weights)
    if weights is not None:
        return FeatureSpace("FID", inception_features(weights, device=base.device))
    if base.classifier is not None:
        return FeatureSpace("domain FD", domain_features(base.classifier))
    raise ValueError("no features for distribution distances: this base ships no domain classifier "
                     "and no Inception weights file was given or found in the torch hub cache "
                     f"({Path(torch.hub.get_dir()) / 'checkpoints'}); pass the path of pytorch-fid's {WEIGHTS_FILE}")


def distribution_distances(space: FeatureSpace, real: torch.Tensor, generated: torch.Tensor,
                           resamples: int = DISTANCE_RESAMPLES, seed: int = 0) -> dict[str, Estimate]:
    """Fréchet distance and KID between real and generated images, named for their features,
    each with its bootstrap interval over both image sets (`resamples` FDs and KIDs: cheap for
    the hundreds of images evaluated here, slow for sets past the KID's 1000-image subsets).
    The real images should not be the targets of the generated ones' conditions
    (`distances.py` says why)."""
    return feature_distances(space, space.extract(real), space.extract(generated), resamples, seed)


def feature_distances(space: FeatureSpace, real_features: np.ndarray, generated_features: np.ndarray,
                      resamples: int = DISTANCE_RESAMPLES, seed: int = 0) -> dict[str, Estimate]:
    """`distribution_distances` on features already extracted in `space`."""
    return {name: bootstrap_interval(distance, real_features, generated_features,
                                     resamples=resamples, seed=seed)
            for name, distance in ((space.name, frechet_distance),
                                   (space.kid_name, kernel_inception_distance))}

"""Metrics of generated images: condition fidelity, distribution distances, and their intervals.

One concept per module: `edges`, `foreground`, `layout`, `labels` (per-image condition
fidelity, gathered by `fidelity`), `distances` (Fréchet distance, KID), `inception` and
`distribution` (which features, hence which names: "FID" or "domain FD"), `intervals`
(sample size and bootstrap interval of every number).
"""

from .distances import frechet_distance, kernel_inception_distance
from .distribution import (
    FeatureSpace,
    distribution_distances,
    distribution_features,
    domain_features,
    feature_distances,
)
from .edges import edge_f1
from .fidelity import PRIMARY_SCORE, condition_fidelity
from .foreground import background_colour, foreground_iou, foreground_mask
from .inception import find_inception_weights, inception_features, load_fid_inception
from .intervals import Estimate, bootstrap_interval, mean_estimate
from .labels import label_agreement
from .layout import layout_agreement

__all__ = [
    "PRIMARY_SCORE",
    "Estimate",
    "FeatureSpace",
    "background_colour",
    "bootstrap_interval",
    "condition_fidelity",
    "distribution_distances",
    "distribution_features",
    "domain_features",
    "edge_f1",
    "feature_distances",
    "find_inception_weights",
    "foreground_iou",
    "foreground_mask",
    "frechet_distance",
    "inception_features",
    "kernel_inception_distance",
    "label_agreement",
    "layout_agreement",
    "load_fid_inception",
    "mean_estimate",
]

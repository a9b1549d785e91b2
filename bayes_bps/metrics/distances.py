"""Distances between two sets of image features: the Fréchet distance and the KID.

Both take feature arrays `(n, d)` (numpy or torch) and know nothing of where the features come
from; which network made them decides the metric's name ("FID" only for pytorch-fid's Inception,
see `distribution.py`).

- Fréchet distance: fit a Gaussian to each set and compare them in closed form,
  ||μ_a − μ_b||² + tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^{1/2}), the quantity pytorch-fid and torchmetrics
  compute (a test checks ours against torchmetrics'). We do not call pytorch-fid's
  `calculate_frechet_distance`: it takes
  `scipy.linalg.sqrtm` of the d×d product, which is slow and fragile for the rank-deficient
  covariances of small samples (n < d, every evaluation here) and passes `sqrtm` the `disp`
  argument that SciPy 1.17 deprecates and 1.18 removes. Instead, with factors Σ = FᵀF, the
  eigenvalues of Σ_a Σ_b are the squared singular values of F_a F_bᵀ, so tr (Σ_a Σ_b)^{1/2} is
  its nuclear norm: exact, and for n < d a small
  n_a × n_b problem, cheap enough to bootstrap 2048-d Inception features on a CPU. The FD is
  biased upward at small n (Chong & Forsyth 2020): compare FDs only at equal sample sizes.
- KID (Bińkowski et al. 2018): the squared maximum mean discrepancy under the cubic polynomial
  kernel k(x, y) = (x·y / d + 1)³, with the unbiased estimator, so it is ≈ 0 for two samples of
  one distribution at any n ≥ 2 and can be slightly negative. Unbiased only for independent
  samples: generated images compared with their own targets share the targets' deviations and
  push it negative (a test measures this), so the study compares them with a disjoint reference
  split. It is the estimator of Bińkowski et al. and of torchmetrics (a test checks the two
  agree); we prefer it to the FD for small sets because it has no small-n bias.
"""

from __future__ import annotations

import numpy as np
import torch

KID_SUBSETS = 100  # Bińkowski et al.'s defaults for large sets
KID_SUBSET_SIZE = 1000


def _features(features, name: str) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2 or len(array) < 2:
        raise ValueError(f"{name} must be a feature array (n, d) with n >= 2, got shape {array.shape}")
    return array


def _pair(features_a, features_b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _features(features_a, "features_a"), _features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"features_a has {a.shape[1]} features per image and features_b {b.shape[1]}")
    return a, b


def _covariance_factor(x: np.ndarray) -> np.ndarray:
    """F with FᵀF = the sample covariance: the scaled centred data when it has fewer rows than
    columns, else the symmetric square root Σ^{1/2} (d × d)."""
    centred = (x - x.mean(axis=0)) / np.sqrt(len(x) - 1)
    if len(x) <= x.shape[1]:
        return centred
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
    return (eigenvectors * np.sqrt(eigenvalues.clip(min=0))) @ eigenvectors.T


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets `(n_a, d)`, `(n_b, d)`."""
    a, b = _pair(features_a, features_b)
    factor_a, factor_b = _covariance_factor(a), _covariance_factor(b)
    trace_sqrt = np.linalg.svd(factor_a @ factor_b.T, compute_uv=False).sum()
    mean_gap = a.mean(axis=0) - b.mean(axis=0)
    return float(mean_gap @ mean_gap + (factor_a**2).sum() + (factor_b**2).sum() - 2 * trace_sqrt)


def _mmd2_unbiased(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD² under the cubic kernel: within-set sums leave out the i = j terms."""
    dim = a.shape[1]
    k_aa, k_bb, k_ab = ((x @ y.T / dim + 1) ** 3 for x, y in ((a, a), (b, b), (a, b)))
    m, n = len(a), len(b)
    within_a = (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
    within_b = (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
    return float(within_a + within_b - 2 * k_ab.mean())


def kernel_inception_distance(features_a, features_b, subsets: int = KID_SUBSETS,
                              subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> float:
    """Unbiased KID between two feature sets `(n_a, d)`, `(n_b, d)`, each n >= 2.

    Sets no larger than `subset_size` are compared whole (exact, no randomness). Larger ones
    are compared as the mean over `subsets` random subsets of `subset_size` drawn without
    replacement (seeded), which bounds the quadratic cost as Bińkowski et al. do.
    """
    a, b = _pair(features_a, features_b)
    if len(a) <= subset_size and len(b) <= subset_size:
        return _mmd2_unbiased(a, b)
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"need subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
    rng = np.random.default_rng(seed)

    def subset(x: np.ndarray) -> np.ndarray:
        return x[rng.choice(len(x), min(subset_size, len(x)), replace=False)]

    return float(np.mean([_mmd2_unbiased(subset(a), subset(b)) for _ in range(subsets)]))

"""Failure detection: does the posterior-predictive spread say which samples will fail?

For each held-out condition j of a Bayesian run:

- **the deployed sample**: one posterior-predictive image (its own coefficient draw) from its
  own initial noise. Its task fidelity below `FAILURE_THRESHOLD` makes j a failure;
- **three detectors**, each K images of j from the same K initial noises, none of them the
  deployed sample's:
  - `posterior`: K posterior draws of the coefficients (the posterior predictive);
  - `deterministic`: the deterministic BPS run on the same pairs and seed, K noises alone;
  - `prior`: K prior draws of the coefficients through the Bayesian run's network.

Each detector scores j twice: by its **spread** (the mean per-pixel sd of its K images; no
label is used) and by its **self-check** (1 − the mean fidelity of its K images against j's
own condition, which is known at sampling time). The AUROC of each score for the failures, and
the paired differences posterior − null with bootstrap intervals over conditions, say whether
the posterior adds anything to what the noise and the prior already tell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from ..base import start_noise
from ..bayes import posterior_draws, prior_draws
from ..metrics import PRIMARY_SCORE, condition_fidelity
from ..sampling import steered_draws, steered_sample_images
from ..training import FittedRun
from ..utils.seeding import seeded
from .held_out import HeldOut

FAILURE_THRESHOLD = {"sketch": 0.5, "segmentation": 0.5, "layout": 0.5, "style": 0.5}  # of PRIMARY_SCORE
DETECTORS = ("posterior", "deterministic", "prior")
NULLS = ("deterministic", "prior")
SCORES = ("spread", "self_check")


def _check_runs(bayesian: FittedRun, deterministic: FittedRun) -> None:
    if not bayesian.bayesian or deterministic.bayesian:
        raise ValueError("failure detection needs a Bayesian run and a deterministic one, in that order; got "
                         f"{bayesian.options.run_dir} and {deterministic.options.run_dir}")
    same = ("domain", "task", "n_train", "seed")
    differ = [name for name in same if getattr(bayesian.options, name) != getattr(deterministic.options, name)]
    if differ:
        raise ValueError(f"{bayesian.options.run_dir} and {deterministic.options.run_dir} were fitted on different "
                         f"pairs ({', '.join(differ)} differ): the null must see the same data")
    if bayesian.objective.model.bayesian_heads:
        raise ValueError(f"{bayesian.options.run_dir} has Bayesian port heads: one adapter call cannot give each "
                         "deployed sample its own head weights")


def spread(images: torch.Tensor) -> torch.Tensor:
    """(K, B, C, H, W) images -> (B,): the per-pixel sd across the K, averaged over pixels."""
    return images.std(dim=0).mean(dim=(1, 2, 3))


def _fidelity(run: FittedRun, images: torch.Tensor, conditions: torch.Tensor, captions: list[str]) -> torch.Tensor:
    task = run.options.task
    return condition_fidelity(task, images, conditions, captions)[PRIMARY_SCORE[task]]


def _detector_images(bayesian: FittedRun, deterministic: FittedRun, coefficients: dict, conditions: torch.Tensor,
                     captions: list[str], noise: torch.Tensor, sampling: dict) -> dict[str, torch.Tensor]:
    """Each detector's (K, B, C, H, W) images of one chunk of conditions, all from `noise` (K·B x_T)."""
    num_draws, batch = len(noise) // len(captions), len(captions)
    model = bayesian.objective.model
    images = {name: steered_draws(model, coefficients[name], conditions, captions, noise=noise, **sampling)
              for name in ("posterior", "prior")}
    objective = deterministic.objective
    images["deterministic"] = steered_sample_images(
        deterministic.base, objective.adapter, objective.weights, conditions, list(captions) * num_draws,
        noise=noise, **sampling).unflatten(0, (num_draws, batch))
    return images


@torch.no_grad()
def detection_table(bayesian: FittedRun, deterministic: FittedRun, held_out: HeldOut, num_draws: int = 4, *,
                    steps: int = 20, seed: int = 0, chunk: int = 32, progress: bool = True) -> pd.DataFrame:
    """One row per held-out condition: the deployed sample's fidelity and failure, and each
    detector's spread and self-check. The posterior and prior coefficient draws (K of each) and
    all noises come from `seed`, independently of `chunk` (conditions per DDIM batch); the
    deployed samples' noise and draws are independent of the detectors'."""
    _check_runs(bayesian, deterministic)
    if num_draws < 2:
        raise ValueError(f"a spread needs at least 2 images per condition; got num_draws={num_draws}")
    task, count = bayesian.options.task, len(held_out)
    model = bayesian.objective.model
    with seeded(seed):
        coefficients = {"posterior": posterior_draws(bayesian.objective.guide, num_draws),
                        "prior": prior_draws(model, num_draws)}
        deployed_draws = posterior_draws(bayesian.objective.guide, count)  # one per condition
    generator = torch.Generator().manual_seed(seed)
    deployed_noise = start_noise(bayesian.base, count, generator)
    detector_noise = start_noise(bayesian.base, num_draws * count, generator).unflatten(0, (num_draws, count))
    sampling = {"steps": steps, "progress": False}
    rows = []
    for start in tqdm(range(0, count, chunk), desc="failure detection", disable=not progress):
        index = slice(start, min(start + chunk, count))
        conditions, captions = held_out.conditions[index], held_out.captions[index]
        draws = {site: value[index] for site, value in deployed_draws.items()}
        deployed = steered_sample_images(bayesian.base, model.adapter, model.weights_per_image(draws, 1), conditions,
                                         captions, noise=deployed_noise[index], **sampling)
        fidelity = _fidelity(bayesian, deployed, conditions, captions)
        noise = detector_noise[:, index].flatten(0, 1)
        images = _detector_images(bayesian, deterministic, coefficients, conditions, captions, noise, sampling)
        columns = {"condition": range(index.start, index.stop), "caption": captions,
                   "fidelity": fidelity.numpy(), "failed": (fidelity < FAILURE_THRESHOLD[task]).numpy()}
        for name in DETECTORS:
            scores = torch.stack([_fidelity(bayesian, image, conditions, captions) for image in images[name]])
            columns[f"{name}_spread"] = spread(images[name]).numpy()
            columns[f"{name}_self_check"] = (1 - scores.mean(dim=0)).numpy()
        rows.append(pd.DataFrame(columns))
    return pd.concat(rows, ignore_index=True)


@dataclass
class DetectionSummary:
    """AUROCs of every (detector, score) and posterior − null differences, with intervals."""

    n_conditions: int
    n_failures: int
    auroc: dict[str, float]  # "posterior_spread" -> AUROC
    differences: dict[str, tuple[float, float, float]]  # "spread_vs_prior" -> (value, low, high)

    def to_dict(self) -> dict:
        return {"n_conditions": self.n_conditions, "n_failures": self.n_failures, "auroc": self.auroc,
                "differences": {name: dict(zip(("value", "low", "high"), values))
                                for name, values in self.differences.items()}}


def summarize(table: pd.DataFrame, resamples: int = 2000, seed: int = 0, level: float = 0.95) -> DetectionSummary:
    """AUROC of each detector score for the `failed` column, and the paired bootstrap (over
    conditions, the same resample for every detector) of posterior − null. With no failures or
    no successes an AUROC is undefined: nan, and so are the differences."""
    failed = table["failed"].to_numpy(dtype=bool)
    columns = [f"{name}_{score}" for name in DETECTORS for score in SCORES]
    values = table[columns].to_numpy(dtype=float)
    if failed.all() or not failed.any():
        auroc = {column: float("nan") for column in columns}
        differences = {f"{score}_vs_{null}": (float("nan"),) * 3 for score in SCORES for null in NULLS}
        return DetectionSummary(len(table), int(failed.sum()), auroc, differences)
    auroc = {column: float(roc_auc_score(failed, values[:, i])) for i, column in enumerate(columns)}
    generator = np.random.default_rng(seed)
    replicates = []
    while len(replicates) < resamples:
        index = generator.integers(0, len(table), len(table))
        if failed[index].all() or not failed[index].any():
            continue  # an AUROC needs both classes
        replicates.append([roc_auc_score(failed[index], values[index, i]) for i in range(len(columns))])
    replicates = pd.DataFrame(replicates, columns=columns)
    tail = (1 - level) / 2
    differences = {}
    for score in SCORES:
        for null in NULLS:
            delta = replicates[f"posterior_{score}"] - replicates[f"{null}_{score}"]
            low, high = np.quantile(delta, [tail, 1 - tail])
            differences[f"{score}_vs_{null}"] = (auroc[f"posterior_{score}"] - auroc[f"{null}_{score}"],
                                                 float(low), float(high))
    return DetectionSummary(len(table), int(failed.sum()), auroc, differences)

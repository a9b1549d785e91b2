"""The data-efficiency grid: every method at every N, seed, task and domain, on the test split.

For each cell (domain, task, N, seed) every method is fitted by its recipe (`recipes.py`,
tuned on validation by the tune stage) on the first N training pairs of that seed, then samples
the same test conditions from the same DDIM noise at its tuned conditioning scale. The test
conditions and the reference images are fixed splits (`data.splits`): the same for every seed,
never seen by the base, its classifier or the tuning. A cell records:

- `results-<domain>.csv`: per metric, the cell's value with its sample size and bootstrap
  interval, the method's recipe (lr, steps, scale), its trainable parameters and its step
  time relative to a forward pass of the frozen base. Distribution distances (FD, KID) compare
  the generated images with the reference split;
- `scores-<domain>.csv`: every image's condition-fidelity scores, and
  `features-<domain>/<cell>.npy` its distribution features, from which `paired.py`
  computes method − reference differences over the same conditions and noise;
- `profiles-<domain>.csv`: each Bayesian cell's posterior-mean fusion coefficient per port,
  the empirical-Bayes profile a deterministic refit can take as its constants.

Rows are appended as each cell finishes, so a killed study resumes where it stopped (finished
cells are skipped) and domains may run as separate processes into one folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..base import FrozenBase, TrainingPairs
from ..metrics import Estimate, FeatureSpace, distribution_features, feature_distances, mean_estimate
from .held_out import HeldOut, held_out, reference_images, score
from .methods import fit_method, training_pairs
from .options import StudyOptions
from .recipes import Recipe
from .records import (
    append_rows,
    features_path,
    profiles_path,
    read_rows,
    reference_features_path,
    result_domains,
    results_path,
    scores_path,
)

COLUMNS = ["domain", "task", "n_train", "seed", "method", "metric", "value", "low", "high", "confidence",
           "n", "lr", "steps", "scale", "trainable_parameters", "step_time_ratio"]
SCORE_COLUMNS = ["domain", "task", "n_train", "seed", "method", "metric", "index", "score"]
PROFILE_COLUMNS = ["domain", "task", "n_train", "seed", "method", "port", "fusion_mean"]


def finished_cells(options: StudyOptions, domain: str) -> set[tuple[str, int, int, str]]:
    return {(row["task"], int(row["n_train"]), int(row["seed"]), row["method"])
            for row in read_rows(results_path(options.out, domain))}


def frozen_forward_seconds(base: FrozenBase, pairs: TrainingPairs, batch_size: int, repeats: int = 5) -> float:
    """Median time of one forward pass of the frozen base at the training batch size."""
    generator = torch.Generator().manual_seed(0)
    batch = pairs.noisy_batch(base, pairs.draw_indices(batch_size, generator), generator)
    times = []
    with torch.no_grad():
        for _ in range(repeats + 1):  # the first call warms up
            start = time.perf_counter()
            base.predict_noise(batch.noisy, batch.timesteps, batch.caption_states)
            times.append(time.perf_counter() - start)
    return float(torch.tensor(times[1:]).median())


def sample_size(estimate: Estimate) -> str:
    """'64', or '120 vs 64' (reference vs generated images) for a distance between two sets."""
    return str(estimate.n) if isinstance(estimate.n, int) else " vs ".join(map(str, estimate.n))


@dataclass
class TaskSets:
    """What every cell of a (domain, task) is scored on: the test conditions and the reference
    split's features (the same for every N, seed and method, so made once)."""

    test: HeldOut
    reference_features: np.ndarray


def task_sets(options: StudyOptions, base: FrozenBase, space: FeatureSpace, domain: str, task: str) -> TaskSets:
    """The (domain, task)'s test conditions and reference features; the features are saved for
    the paired distances (`tables.paired_rows`)."""
    test = held_out(domain, task, "test", options.eval_samples, base.resolution)
    reference_features = space.extract(reference_images(domain, task, options.reference_samples, base.resolution))
    reference_path = reference_features_path(options.out, domain, task)
    reference_path.parent.mkdir(parents=True, exist_ok=True)
    np.save(reference_path, reference_features.astype(np.float32))
    return TaskSets(test, reference_features)


def run_cell(options: StudyOptions, base: FrozenBase, space: FeatureSpace, sets: TaskSets, recipes: dict[str, Recipe],
             domain: str, task: str, n: int, seed: int, methods: list[str], progress: bool, bar) -> None:
    """Fit and score `methods` on one (domain, task, N, seed)."""
    test, reference_features = sets.test, sets.reference_features
    pairs = training_pairs(base, domain, task, n, seed)
    frozen = frozen_forward_seconds(base, pairs, options.batch_size)
    for method in methods:
        recipe = recipes.get(method)  # None: nothing to train (unsteered)
        fit_options = None if recipe is None else options.fit_options(domain, task, n, seed, recipe)
        fitted = fit_method(method, base, pairs, fit_options, progress=progress)
        scale = 1.0 if recipe is None else recipe.conditioning_scale
        scored = score(fitted, base, task, test, ddim_steps=options.ddim_steps, seed=seed, scale=scale, space=space)
        features = features_path(options.out, domain, task, n, seed, method)
        features.parent.mkdir(parents=True, exist_ok=True)
        np.save(features, scored.features.astype(np.float32))
        resamples = options.bootstrap_resamples
        metrics = feature_distances(space, reference_features, scored.features, resamples=resamples)
        metrics.update({name: mean_estimate(values, resamples=resamples) for name, values in scored.scores.items()})
        ratio = None if fitted.seconds_per_step is None else fitted.seconds_per_step / frozen
        cell = {"domain": domain, "task": task, "n_train": n, "seed": seed, "method": method}
        recipe_columns = ({"lr": "", "steps": 0, "scale": ""} if fit_options is None else
                          {"lr": fit_options.lr, "steps": fit_options.steps, "scale": scale})
        if fitted.posterior_profile is not None:  # before the results row, which marks the cell done
            append_rows(profiles_path(options.out, domain), PROFILE_COLUMNS, [
                {**cell, "port": port, "fusion_mean": f"{value:.6g}"}
                for port, value in fitted.posterior_profile.items()])
        append_rows(scores_path(options.out, domain), SCORE_COLUMNS, [
            {**cell, "metric": name, "index": i, "score": f"{value:.6g}"}
            for name, values in scored.scores.items() for i, value in enumerate(values.tolist())])
        append_rows(results_path(options.out, domain), COLUMNS, [
            {**cell, "metric": name, **estimate.to_dict(), "n": sample_size(estimate), **recipe_columns,
             "trainable_parameters": fitted.trainable_parameters,
             "step_time_ratio": "" if ratio is None else f"{ratio:.3f}"}
            for name, estimate in metrics.items()])
        bar.update()


def run_domain(options: StudyOptions, domain: str, recipes: dict[str, Recipe], progress: bool) -> None:
    done = finished_cells(options, domain)
    todo = {(task, n, seed): [m for m in options.methods if (task, n, seed, m) not in done]
            for task, n, seed in options.cells(domain)}
    todo = {cell: methods for cell, methods in todo.items() if methods}
    if not todo:
        return
    base = FrozenBase.from_pretrained(options.base(domain))
    space = distribution_features(base, options.inception_weights)
    sets: dict[str, TaskSets] = {}
    with tqdm(total=sum(map(len, todo.values())), desc=f"study {domain}", disable=not progress) as bar:
        for (task, n, seed), methods in todo.items():
            if task not in sets:
                sets[task] = task_sets(options, base, space, domain, task)
            run_cell(options, base, space, sets[task], recipes, domain, task, n, seed, methods, progress, bar)


def read_results(folder) -> list[dict]:
    """The rows of every domain's results CSV in the study folder."""
    return read_rows(*(results_path(folder, domain) for domain in result_domains(folder)))


def data_efficiency(options: StudyOptions, progress: bool = True) -> list[dict]:
    """Run (or resume) the grid into `options.out`; return every row of the folder's results."""
    options.out.mkdir(parents=True, exist_ok=True)
    recipes = options.recipes()  # a missing or malformed settings file fails before any fit
    for domain in options.domains:
        run_domain(options, domain, recipes, progress)
    return read_results(options.out)

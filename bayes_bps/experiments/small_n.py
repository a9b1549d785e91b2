"""Bayesian port heads at small N against a regularised deterministic BPS (#15, item 5).

With a handful of pairs a deterministic adapter may overfit. Its usual cures are an L2 penalty
(AdamW's decoupled weight decay, `FitOptions.weight_decay`) and early stopping; the Bayesian
layer's answer is Bayesian port heads (`SteeringPriors.head_scale`: a Normal(0, s) prior on the
heads' weights, which the guide then averages over). The heads are scale-free, so s sets only
units (a test checks that the ELBO is the same at every s); what sets how far the data move the
heads from their prior, uniform over directions, is the likelihood's temperature λ. The
calibrated λ (≈ 0.002) leaves them at the prior: every draw is a random head, and the fit does
not steer (`benchmarks/RESULTS.md`). So Bayesian heads are regularised by λ, a fixed value
instead of the calibrated one (1: every pixel an observation; above 1, a cold posterior). Each
method gets the same search, and its winner is scored on test:

1. **search**: on seed `search_seed`'s N pairs, one run per regularisation strength (weight decay
   for deterministic BPS, the temperature λ for Bayesian heads), scored on the validation
   conditions at every checkpoint. The checkpoints are the early-stopping axis, so weight
   decay 0 at its best checkpoint is early stopping alone;
2. **test**: each method's best (strength, step) refitted on every seed's N pairs and sampled on
   the test conditions from that seed's noise, the same noise for both methods;
3. **paired**: Bayesian heads − regularised deterministic over the same seeds and conditions
   (`paired.paired_difference`, the crossed bootstrap).

Both methods keep the study's tuned learning rate and conditioning scale (the tune stage's
`settings.csv`). Each finished run appends its rows to its method's own CSVs at once, so a
killed search resumes at the next run and the two methods may run as two processes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..base import FrozenBase, TrainingPairs
from ..metrics import PRIMARY_SCORE, mean_estimate
from ..training import FitOptions
from .held_out import HeldOut, held_out, score
from .methods import fit_method, training_pairs
from .paired import PairedDifference, paired_difference
from .recipes import Recipe
from .records import append_rows, read_rows, scores_by_seed

SEARCH_COLUMNS = ["method", "strength", "step", "metric", "value", "low", "high", "n"]
TEST_COLUMNS = ["method", "strength", "steps", "seed", "metric", "index", "score"]
# this experiment's name of each method -> (the study's method it fits, what its strength sets)
METHODS = {"deterministic": ("deterministic", "weight decay"),
           "bayesian-heads": ("bayesian", "likelihood temperature")}
HEAD_PRIOR_SCALE = 1.0  # any scale gives the same fit (module docstring)


@dataclass(frozen=True)
class SmallN:
    """What the comparison runs on; the defaults are the issue's (shapes sketches, N = 10)."""

    out: Path
    recipes: dict[str, Recipe]  # the study's tuned recipes of "deterministic" and "bayesian"
    domain: str = "shapes"
    base: str = "shapes"  # an embedded base's name or a diffusers folder
    task: str = "sketch"
    n: int = 10
    search_seed: int = 0
    seeds: tuple[int, ...] = (0, 1, 2)
    strengths: tuple[tuple[str, tuple[float, ...]], ...] = (
        ("deterministic", (0.0, 0.1, 1.0, 10.0)),   # weight decay: AdamW shrinks by e^(−lr·wd·steps)
        ("bayesian-heads", (0.1, 1.0, 10.0)))      # likelihood temperature λ
    checkpoints: tuple[int, ...] = (250, 500, 1000, 2000)
    validation_conditions: int = 64
    test_conditions: int = 64
    ddim_steps: int = 20
    batch_size: int = 8
    preset: str = "lite"
    resamples: int = 1000

    def search_path(self, method: str) -> Path:
        return self.out / f"search-{method}.csv"

    def test_path(self, method: str) -> Path:
        return self.out / f"test-{method}.csv"

    @property
    def primary(self) -> str:
        return PRIMARY_SCORE[self.task]


def fit_options(setup: SmallN, method: str, strength: float, seed: int, steps: int) -> FitOptions:
    """The study's recipe of the method, regularised at `strength`, for `steps` steps."""
    fitted_as, _ = METHODS[method]
    options = FitOptions(base=setup.base, domain=setup.domain, task=setup.task, n_train=setup.n, seed=seed,
                         batch_size=setup.batch_size, preset=setup.preset)
    options = replace(setup.recipes[fitted_as].fit_options(options), steps=steps)
    if method == "deterministic":
        return replace(options, weight_decay=strength)
    return replace(options, temperature=strength, priors=replace(options.priors, head_scale=HEAD_PRIOR_SCALE))


class Fits:
    """The frozen base and each seed's training pairs, loaded once."""

    def __init__(self, setup: SmallN):
        self.setup = setup
        self.base = FrozenBase.from_pretrained(setup.base)
        self._pairs: dict[int, TrainingPairs] = {}

    def pairs(self, seed: int) -> TrainingPairs:
        if seed not in self._pairs:
            setup = self.setup
            self._pairs[seed] = training_pairs(self.base, setup.domain, setup.task, setup.n, seed)
        return self._pairs[seed]

    def held_out(self, split: str, count: int) -> HeldOut:
        return held_out(self.setup.domain, self.setup.task, split, count, self.base.resolution)

    def fit(self, method: str, strength: float, seed: int, steps: int, progress: bool, **checkpointing):
        fitted_as, _ = METHODS[method]
        options = fit_options(self.setup, method, strength, seed, steps)
        return fit_method(fitted_as, self.base, self.pairs(seed), options, progress=progress, **checkpointing)

    def scale(self, method: str) -> float:
        return self.setup.recipes[METHODS[method][0]].conditioning_scale


def search(setup: SmallN, methods: list[str], progress: bool = True) -> None:
    """One run per (method, strength) not yet in its CSV, scored on validation at every checkpoint."""
    todo = {method: [strength for strength in strengths if strength not in
                     {float(row["strength"]) for row in read_rows(setup.search_path(method))}]
            for method, strengths in setup.strengths if method in methods}
    if not any(todo.values()):
        return
    fits = Fits(setup)
    validation = fits.held_out("validation", setup.validation_conditions)
    for method, strengths in todo.items():
        for strength in strengths:
            rows = []

            def on_checkpoint(fitted, step: int, seconds: float, method=method, strength=strength, rows=rows):
                scored = score(fitted, fits.base, setup.task, validation, ddim_steps=setup.ddim_steps,
                               seed=setup.search_seed, scale=fits.scale(method))
                for metric, values in scored.scores.items():
                    estimate = mean_estimate(values, resamples=setup.resamples).to_dict()
                    rows.append({"method": method, "strength": strength, "step": step, "metric": metric,
                                 **{key: estimate[key] for key in ("value", "low", "high", "n")}})

            fits.fit(method, strength, setup.search_seed, setup.checkpoints[-1], progress,
                     checkpoints=setup.checkpoints, on_checkpoint=on_checkpoint)
            append_rows(setup.search_path(method), SEARCH_COLUMNS, rows)


def chosen(setup: SmallN, method: str) -> tuple[float, int] | None:
    """The method's best (strength, step) by validation fidelity; None before its search is done."""
    rows = [row for row in read_rows(setup.search_path(method)) if row["metric"] == setup.primary]
    strengths = dict(setup.strengths)[method]
    if {float(row["strength"]) for row in rows} != set(strengths):
        return None
    best = max(rows, key=lambda row: float(row["value"]))
    return float(best["strength"]), int(best["step"])


def test(setup: SmallN, methods: list[str], progress: bool = True) -> None:
    """Each searched method's winner, refitted on every seed not yet in its CSV and scored on test."""
    todo = {}
    for method in methods:
        winner = chosen(setup, method)
        if winner is not None:
            done = {int(row["seed"]) for row in read_rows(setup.test_path(method))
                    if (float(row["strength"]), int(row["steps"])) == winner}
            todo[method] = (winner, [seed for seed in setup.seeds if seed not in done])
    if not any(seeds for _, seeds in todo.values()):
        return
    fits = Fits(setup)
    conditions = fits.held_out("test", setup.test_conditions)
    for method, ((strength, steps), seeds) in todo.items():
        for seed in seeds:
            fitted = fits.fit(method, strength, seed, steps, progress)
            scored = score(fitted, fits.base, setup.task, conditions, ddim_steps=setup.ddim_steps, seed=seed,
                           scale=fits.scale(method))
            append_rows(setup.test_path(method), TEST_COLUMNS, [
                {"method": method, "strength": strength, "steps": steps, "seed": seed, "metric": metric,
                 "index": i, "score": f"{value:.6g}"}
                for metric, values in scored.scores.items() for i, value in enumerate(values.tolist())])


def test_scores(setup: SmallN, method: str, metric: str) -> np.ndarray | None:
    """(seeds, conditions) test scores of the method's current winner; None until every seed is in."""
    winner = chosen(setup, method)
    if winner is None:
        return None
    by_seed = scores_by_seed([row for row in read_rows(setup.test_path(method))
                              if (float(row["strength"]), int(row["steps"])) == winner], metric)
    if set(by_seed) != set(setup.seeds):
        return None
    return np.array([scores for _, scores in sorted(by_seed.items())])


def heads_against_regularised(setup: SmallN) -> PairedDifference | None:
    """Bayesian heads − regularised deterministic BPS on test, paired; None until both are scored."""
    heads, deterministic = (test_scores(setup, method, setup.primary) for method in ("bayesian-heads", "deterministic"))
    if heads is None or deterministic is None:
        return None
    return paired_difference(heads, deterministic, resamples=setup.resamples)


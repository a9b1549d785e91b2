"""Empirical-Bayes fusion profiles (#15, item 3): deterministic BPS refitted with the posterior's constants.

Each Bayesian cell of the grid records every port's posterior-mean fusion coefficient E[w_k]
(`profiles-<domain>.csv`). Refitting deterministic BPS with those as its fixed constants, in
place of the official head-heavy ones, asks whether the posterior found a better profile. The
refit keeps everything else of the grid's deterministic cell (its tuned recipe and scale, its
pairs and seed, its test conditions and noise), so its per-image scores pair with that cell's
(`scores-<domain>.csv`): Δ = EB profile − official constants, with the crossed bootstrap over
seeds and conditions.

A refit is named by where its profile came from (the source cell) and where it is fitted and
scored (the target cell): the same cell for the main comparison, another N or the other
domain for transfer. Each finished refit appends its per-image scores to
`eb-scores-<domain>.csv` at once, so a killed run resumes at the next refit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..base import FrozenBase, TrainingPairs
from ..metrics import PRIMARY_SCORE
from ..utils.files import write_text_atomic
from .data_efficiency import PROFILE_COLUMNS
from .held_out import held_out, score
from .methods import fit_method, training_pairs
from .options import StudyOptions
from .paired import PairedDifference, paired_difference
from .records import append_rows, profiles_path, read_rows, scores_by_seed, scores_path

EB_SCORE_COLUMNS = ["domain", "task", "n_train", "seed", "source", "metric", "index", "score"]


@dataclass(frozen=True)
class Cell:
    domain: str
    task: str
    n: int
    seed: int

    def __str__(self) -> str:
        return f"{self.domain}/{self.task}/n{self.n}/seed{self.seed}"


def eb_scores_path(folder: Path, domain: str) -> Path:
    return Path(folder) / f"eb-scores-{domain}.csv"


def recorded_profiles(folder: Path, domain: str) -> dict[Cell, dict[str, float]]:
    """Every Bayesian cell's posterior-mean profile in the study folder (the last record of a cell)."""
    profiles: dict[Cell, dict[str, float]] = {}
    for row in read_rows(profiles_path(folder, domain)):
        cell = Cell(row["domain"], row["task"], int(row["n_train"]), int(row["seed"]))
        profiles.setdefault(cell, {})[row["port"]] = float(row["fusion_mean"])
    return profiles


def _pairs(options: StudyOptions, cell: Cell) -> tuple[FrozenBase, TrainingPairs]:
    base = FrozenBase.from_pretrained(options.base(cell.domain))
    return base, training_pairs(base, cell.domain, cell.task, cell.n, cell.seed)


def record_profile(options: StudyOptions, cell: Cell, progress: bool = True) -> None:
    """Fit the grid's Bayesian cell again by its recipe and record its profile, for a cell the grid
    finished before it recorded profiles (nothing is scored; the grid's scores stand)."""
    if cell in recorded_profiles(options.out, cell.domain):
        return
    base, pairs = _pairs(options, cell)
    fit_options = options.fit_options(cell.domain, cell.task, cell.n, cell.seed, options.recipes()["bayesian"])
    fitted = fit_method("bayesian", base, pairs, fit_options, progress=progress)
    append_rows(profiles_path(options.out, cell.domain), PROFILE_COLUMNS, [
        {"domain": cell.domain, "task": cell.task, "n_train": cell.n, "seed": cell.seed, "method": "bayesian",
         "port": port, "fusion_mean": f"{value:.6g}"} for port, value in fitted.posterior_profile.items()])


def refit(options: StudyOptions, source: Cell, target: Cell, progress: bool = True) -> None:
    """Deterministic BPS on the target cell with the source cell's profile as its constants,
    scored like the grid's deterministic cell; appends the per-image scores. Does nothing when
    this (source, target) refit is already in the file."""
    out = options.out
    done = {(row["source"], int(row["seed"]), int(row["n_train"]), row["task"])
            for row in read_rows(eb_scores_path(out, target.domain))}
    if (str(source), target.seed, target.n, target.task) in done:
        return
    profile = recorded_profiles(out, source.domain).get(source)
    if profile is None:
        raise ValueError(f"{profiles_path(out, source.domain)}: no profile of {source}; the grid records one "
                         "for each Bayesian cell it finishes")
    profile_file = out / "eb-profiles" / f"{source.domain}-{source.task}-n{source.n}-seed{source.seed}.json"
    profile_file.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(profile_file, json.dumps(profile, indent=2) + "\n")

    recipe = options.recipes()["deterministic"]
    base, pairs = _pairs(options, target)
    fit_options = replace(options.fit_options(target.domain, target.task, target.n, target.seed, recipe),
                          profile=str(profile_file))
    fitted = fit_method("deterministic", base, pairs, fit_options, progress=progress)
    test = held_out(target.domain, target.task, "test", options.eval_samples, base.resolution)
    scored = score(fitted, base, target.task, test, ddim_steps=options.ddim_steps, seed=target.seed,
                   scale=recipe.conditioning_scale)
    append_rows(eb_scores_path(out, target.domain), EB_SCORE_COLUMNS, [
        {"domain": target.domain, "task": target.task, "n_train": target.n, "seed": target.seed,
         "source": str(source), "metric": metric, "index": i, "score": f"{value:.6g}"}
        for metric, values in scored.scores.items() for i, value in enumerate(values.tolist())])


def eb_against_official(folder: Path, pairs: list[tuple[Cell, Cell]], resamples: int = 1000
                        ) -> PairedDifference | None:
    """EB refit − the grid's deterministic cell over the (source, target) refits given (one per
    seed of the same target task and N); None while any of them is missing."""
    targets = {target for _, target in pairs}
    tasks = {(target.domain, target.task, target.n) for target in targets}
    if len(tasks) != 1 or len(targets) != len(pairs):
        raise ValueError(f"pair the refits of one (domain, task, N), one per seed; got {pairs}")
    (domain, task, n), = tasks
    metric = PRIMARY_SCORE[task]
    sources = {str(source): target.seed for source, target in pairs}
    eb = scores_by_seed([row for row in read_rows(eb_scores_path(folder, domain)) if row["task"] == task
                  and int(row["n_train"]) == n and sources.get(row["source"]) == int(row["seed"])], metric)
    official = scores_by_seed([row for row in read_rows(scores_path(folder, domain))
                        if (row["task"], int(row["n_train"]), row["method"]) == (task, n, "deterministic")], metric)
    seeds = sorted(target.seed for target in targets)
    if any(seed not in eb or seed not in official for seed in seeds):
        return None
    return paired_difference(np.array([eb[s] for s in seeds]), np.array([official[s] for s in seeds]),
                             resamples=resamples)

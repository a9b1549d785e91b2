"""The tune stage: every trained method gets the same search on the validation split.

For each method and each learning rate of the grid, one run from the method's published recipe
(`recipes.PUBLISHED`: its caption dropout, its timestep sampling) is scored on validation at
every checkpoint of `--curve-steps`: the learning curves, against steps and against training
wall-clock (`curves.csv`). The best (learning rate, step) by the task's primary score
(`metrics.PRIMARY_SCORE`) is then refitted once and sampled at every conditioning scale
(`sweep.csv` holds both searches). The winners go to `settings.csv`, which the grid reads.

All runs share one training subset (`--tune-n` pairs of seed `--tune-seed`) and one set of
validation conditions and noise, so the search compares settings, not draws. Each finished
(method, learning rate) run and each finished scale search is appended at once; a killed
stage resumes there, and a widened `--scales` grid scores only the scales not yet in `sweep.csv`.
"""

from __future__ import annotations

from dataclasses import replace

from tqdm.auto import tqdm

from ..base import FrozenBase
from ..metrics import PRIMARY_SCORE, mean_estimate
from .held_out import HeldOut, held_out, score
from .methods import METHODS, fit_method, training_pairs
from .options import StudyOptions
from .recipes import PUBLISHED, Recipe, write_settings
from .records import append_rows, read_rows

CURVE_COLUMNS = ["domain", "task", "n_train", "seed", "method", "lr", "step", "wall_seconds", "metric", "value",
                 "low", "high", "n"]
SWEEP_COLUMNS = ["domain", "task", "n_train", "seed", "method", "stage", "lr", "steps", "scale", "metric", "value",
                 "low", "high", "n"]


class _Search:
    """The shared pieces of every tuning run: base, pairs, validation conditions, output paths."""

    def __init__(self, options: StudyOptions):
        self.options = options
        self.domain, self.task = options.tune_domain, options.tune_task
        self.n, self.seed = options.tune_n, options.tune_seed
        self.base = FrozenBase.from_pretrained(options.base(self.domain))
        self.pairs = training_pairs(self.base, self.domain, self.task, self.n, self.seed)
        self.validation: HeldOut = held_out(self.domain, self.task, "validation", options.eval_samples,
                                            self.base.resolution)
        self.primary = PRIMARY_SCORE[self.task]
        self.curves, self.sweep = options.out / "curves.csv", options.out / "sweep.csv"

    def cell(self) -> dict:
        return {"domain": self.domain, "task": self.task, "n_train": self.n, "seed": self.seed}

    def fit(self, method: str, recipe: Recipe, progress: bool, **checkpointing):
        options = self.options.fit_options(self.domain, self.task, self.n, self.seed, recipe)
        return fit_method(method, self.base, self.pairs, options, progress=progress, **checkpointing)

    def evaluate(self, fitted, scale: float = 1.0) -> dict[str, dict]:
        scored = score(fitted, self.base, self.task, self.validation, ddim_steps=self.options.ddim_steps,
                       seed=self.seed, scale=scale)
        resamples = self.options.bootstrap_resamples
        return {name: mean_estimate(values, resamples=resamples).to_dict() for name, values in scored.scores.items()}


def _estimate_columns(estimate: dict) -> dict:
    return {"value": estimate["value"], "low": estimate["low"], "high": estimate["high"], "n": estimate["n"]}


def learning_rate_search(search: _Search, method: str, progress: bool) -> None:
    """One run per learning rate, scored at every checkpoint; then the best step of each rate."""
    done = {float(row["lr"]) for row in read_rows(search.curves) if row["method"] == method}
    for lr in [lr for lr in search.options.learning_rates if lr not in done]:
        append_rows(search.curves, CURVE_COLUMNS, learning_curve(search, method, lr, progress))
    best = best_steps(read_rows(search.curves), method, search.primary)
    append_rows(search.sweep, SWEEP_COLUMNS, [
        {**search.cell(), "method": method, "stage": "learning-rate", "lr": lr, "steps": step, "scale": 1.0,
         "metric": search.primary, "value": value, "low": "", "high": "", "n": len(search.validation)}
        for lr, (step, value) in best.items()])


def learning_curve(search: _Search, method: str, lr: float, progress: bool) -> list[dict]:
    """One run at `lr`, scored on validation at every checkpoint."""
    steps = search.options.curve_steps
    rows = []

    def on_checkpoint(fitted, step: int, seconds: float) -> None:
        for metric, estimate in search.evaluate(fitted).items():
            rows.append({**search.cell(), "method": method, "lr": lr, "step": step,
                         "wall_seconds": f"{seconds:.3f}", "metric": metric, **_estimate_columns(estimate)})

    search.fit(method, replace(PUBLISHED[method], lr=lr, steps=steps[-1]), progress, checkpoints=steps,
               on_checkpoint=on_checkpoint)
    return rows


def best_steps(curve_rows: list[dict], method: str, metric: str) -> dict[float, tuple[int, float]]:
    """Per learning rate, the checkpoint with the best validation `metric`: (step, value)."""
    best: dict[float, tuple[int, float]] = {}
    for row in curve_rows:
        if row["method"] != method or row["metric"] != metric:
            continue
        lr, step, value = float(row["lr"]), int(row["step"]), float(row["value"])
        if lr not in best or value > best[lr][1]:
            best[lr] = (step, value)
    return best


def scale_search(search: _Search, method: str, scales: list[float], progress: bool) -> None:
    """Refit the best (learning rate, step) once and score it at each of `scales`."""
    stage = [row for row in read_rows(search.sweep) if row["method"] == method]
    rates = {float(row["lr"]): (int(row["steps"]), float(row["value"])) for row in stage
             if row["stage"] == "learning-rate"}
    lr, (steps, _) = max(rates.items(), key=lambda item: item[1][1])
    fitted = search.fit(method, replace(PUBLISHED[method], lr=lr, steps=steps), progress)
    rows = []
    for scale in scales:
        for metric, estimate in search.evaluate(fitted, scale).items():
            rows.append({**search.cell(), "method": method, "stage": "scale", "lr": lr, "steps": steps,
                         "scale": scale, "metric": metric, **_estimate_columns(estimate)})
    append_rows(search.sweep, SWEEP_COLUMNS, rows)


def chosen_recipes(sweep_rows: list[dict], methods: list[str], metric: str) -> dict[str, Recipe]:
    """Per method, its published recipe at the scale-stage winner of `metric`."""
    recipes = {}
    for method in methods:
        rows = [row for row in sweep_rows if (row["method"], row["stage"], row["metric"]) == (method, "scale", metric)]
        if not rows:
            continue
        best = max(rows, key=lambda row: float(row["value"]))
        recipes[method] = replace(PUBLISHED[method], lr=float(best["lr"]), steps=int(best["steps"]),
                                  conditioning_scale=float(best["scale"]),
                                  source=f"tuned on {best['domain']}/{best['task']} validation, N={best['n_train']}")
    return recipes


def tune(options: StudyOptions, progress: bool = True) -> dict:
    """Run (or resume) both searches for every trained method; write and return the settings."""
    options.out.mkdir(parents=True, exist_ok=True)
    search = _Search(options)
    trained = [method for method in options.methods if METHODS[method] is not None]
    for method in tqdm(trained, desc="tune", disable=not progress):
        rows = [row for row in read_rows(search.sweep) if row["method"] == method]
        if not any(row["stage"] == "learning-rate" for row in rows):
            learning_rate_search(search, method, progress)
        scored = {float(row["scale"]) for row in rows if row["stage"] == "scale"}
        missing = [scale for scale in options.scales if scale not in scored]
        if missing:  # a first search, or a widened grid: only the new scales
            scale_search(search, method, missing, progress)
    recipes = chosen_recipes(read_rows(search.sweep), trained, search.primary)
    write_settings(options.out / "settings.csv", recipes)
    return recipes

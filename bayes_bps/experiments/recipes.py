"""How each method of the study is trained: its authors' recipe, then what validation chose.

A recipe fixes what a method's authors prescribe and leaves to tuning what they tune:

| method        | fixed by its recipe                                 | tuned on validation          |
|---------------|-----------------------------------------------------|------------------------------|
| controlnet    | 50 % of captions dropped (ControlNet paper, §3.2)   | learning rate, steps, scale  |
| t2i-adapter   | high-noise timesteps t = (1 − u³) T (T2I-Adapter)   | learning rate, steps, scale  |
| deterministic | the official BPS constants, uniform t               | learning rate, steps, scale  |
| bayesian      | the package's default model, uniform t              | learning rate, steps, scale  |

Every trained method gets the same tuning budget (`tuning.py`): the same learning-rate grid,
the same checkpoints along one run per rate, the same conditioning scales. `PUBLISHED` holds
the starting points (diffusers' training scripts use 1e-5 for both baselines); the chosen
settings live in a CSV (`write_settings`, `read_settings`), committed with the study.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from ..base.pairs import TIMESTEP_SAMPLING
from ..training import FitOptions
from .records import read_rows, write_rows

LEARNING_RATES = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3)  # half-decades, 1e-5 … 3e-3
CONDITIONING_SCALES = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)  # 3 and 4: three methods peaked at 2.0
CURVE_STEPS = (125, 250, 500, 1000, 2000)  # checkpoints along each tuning run


@dataclass(frozen=True)
class Recipe:
    lr: float
    steps: int
    caption_dropout: float = 0.0
    timestep_sampling: str = "uniform"
    conditioning_scale: float = 1.0
    source: str = "published"  # "published", or what tuning chose it from

    def fit_options(self, options: FitOptions) -> FitOptions:
        """`options` with this recipe's training settings."""
        return replace(options, lr=self.lr, steps=self.steps, caption_dropout=self.caption_dropout,
                       timestep_sampling=self.timestep_sampling)


PUBLISHED: dict[str, Recipe] = {
    "controlnet": Recipe(lr=1e-5, steps=CURVE_STEPS[-1], caption_dropout=0.5),
    "t2i-adapter": Recipe(lr=1e-5, steps=CURVE_STEPS[-1], timestep_sampling="high-noise"),
    "deterministic": Recipe(lr=1e-3, steps=1000),
    "bayesian": Recipe(lr=1e-3, steps=1000),
}

COLUMNS = ["method", *(field.name for field in fields(Recipe))]


def write_settings(path: Path, recipes: dict[str, Recipe]) -> None:
    write_rows(path, COLUMNS, [{"method": method, **asdict(recipe)} for method, recipe in recipes.items()])


def read_settings(path: Path, methods: list[str]) -> dict[str, Recipe]:
    """The recipes of `methods` from a settings CSV; ValueError naming the file and the problem."""
    if not Path(path).is_file():
        raise ValueError(f"{path}: no settings file; run `python -m bayes_bps.study tune` first, or pass "
                         "--settings published to train every method by its published recipe untuned")
    rows = {row["method"]: row for row in read_rows(path)}
    missing = [method for method in methods if method not in rows]
    if missing:
        raise ValueError(f"{path}: no settings for {', '.join(missing)} (it has {', '.join(rows) or 'none'})")
    recipes = {}
    for method in methods:
        row = rows[method]
        try:
            recipe = Recipe(lr=float(row["lr"]), steps=int(row["steps"]), caption_dropout=float(row["caption_dropout"]),
                            timestep_sampling=row["timestep_sampling"],
                            conditioning_scale=float(row["conditioning_scale"]), source=row["source"])
        except (KeyError, ValueError) as error:
            raise ValueError(f"{path}: malformed row for {method!r} ({error}); columns are {', '.join(COLUMNS)}") \
                from error
        if recipe.timestep_sampling not in TIMESTEP_SAMPLING:
            raise ValueError(f"{path}: {method!r} has timestep_sampling {recipe.timestep_sampling!r}; "
                             f"choose one of {', '.join(TIMESTEP_SAMPLING)}")
        recipes[method] = recipe
    return recipes

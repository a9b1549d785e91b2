"""The options of `python -m bayes_bps.study`, shared by its two stages (tune, data-efficiency)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..data import BUILT_IN_DOMAINS, DOMAINS, TASKS
from ..steering import PRESETS
from ..training import FitOptions
from ..utils.options import option
from .methods import METHODS
from .recipes import CONDITIONING_SCALES, CURVE_STEPS, LEARNING_RATES, PUBLISHED, Recipe, read_settings

PUBLISHED_SETTINGS = "published"


@dataclass
class StudyOptions:
    study: str = option(help="which stage: tune (learning rates, steps and scales on validation), or "
                        "data-efficiency (the grid on the test split)", choices=("tune", "data-efficiency"),
                        positional=True)
    out: Path = option(Path("runs/study-data-efficiency"), "study folder (CSVs, figures, tables, options JSON)")
    # the grid
    domains: list[str] = option(["shapes", "digits"], "domains of the grid", choices=BUILT_IN_DOMAINS)
    n_train: list[int] = option([10, 40, 160], "training pairs per sketch cell", low=1, flags=("--n",))
    seeds: list[int] = option([0, 1, 2, 3, 4], "seeds: training subset, initialisation and noise (never the "
                              "test set)", low=0)
    methods: list[str] = option(list(METHODS), "methods to fit", choices=METHODS)
    tasks: list[str] = option(list(TASKS), "tasks, each on the domains that have it",
                              choices=TASKS)
    task_n: list[int] = option([40], "training pairs of the tasks other than sketch", low=1)
    task_seeds: int = option(3, "seeds of the tasks other than sketch (the first of --seeds)", low=1)
    bases: list[str] = option([], "use this base for a domain, DOMAIN=PATH (repeatable; default: the "
                              "embedded base of that name)", flags=("--base",), repeat=True)
    settings: str = option("benchmarks/data_efficiency/settings.csv", "each method's tuned recipe (written by "
                           "the tune stage), or 'published' for the untuned published recipes")
    steps: int | None = option(None, "override every recipe's steps (quick checks only)", low=1)
    batch_size: int = option(8, "pairs per training step", low=1)
    preset: str = option("lite", "BPS adapter size", choices=PRESETS)
    eval_samples: int = option(64, "test (or validation) conditions per cell", low=2)
    reference_samples: int = option(120, "real images of the reference split for FD and KID", low=2)
    ddim_steps: int = option(20, "DDIM steps of the evaluation samples", low=1)
    inception_weights: Path | None = option(None, "pytorch-fid Inception weights: report FID")
    bootstrap_resamples: int = option(1000, "bootstrap resamples of every interval", low=1)
    tables_only: bool = option(False, "data-efficiency: fit nothing, only rebuild the paired differences, "
                               "tables and figure from the cells finished so far (e.g. while the grid runs)")
    # the tune stage
    tune_domain: str = option("shapes", "domain of the tuning runs", choices=BUILT_IN_DOMAINS)
    tune_task: str = option("sketch", "task of the tuning runs", choices=TASKS)
    tune_n: int = option(40, "training pairs of the tuning runs", low=1)
    tune_seed: int = option(0, "seed of the tuning runs", low=0)
    learning_rates: list[float] = option(list(LEARNING_RATES), "learning rates swept for every trained method",
                                         above=0)
    curve_steps: list[int] = option(list(CURVE_STEPS), "checkpoints of each tuning run, evaluated on "
                                    "validation; the last is its length", low=1)
    scales: list[float] = option(list(CONDITIONING_SCALES), "conditioning scales tried at each method's best "
                                 "learning rate and step", above=0)

    def validate(self) -> None:
        malformed = [item for item in self.bases if "=" not in item]
        if malformed:
            raise ValueError(f"--base must look like DOMAIN=PATH; got {malformed}")
        extra = sorted(set(self.base_paths) - set(self.domains) - {self.tune_domain})
        if extra:
            raise ValueError(f"--base names domains not in --domains or --tune-domain: {extra}")
        if self.tune_task not in DOMAINS[self.tune_domain].tasks:
            raise ValueError(f"--tune-domain {self.tune_domain} has no task {self.tune_task!r}")
        if self.tables_only and self.study == "tune":
            raise ValueError("--tables-only rebuilds the grid's tables; the tune stage has none")
        if self.curve_steps != sorted(set(self.curve_steps)):
            raise ValueError(f"--curve-steps must increase, got {self.curve_steps}")

    @property
    def base_paths(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.bases)

    def base(self, domain: str) -> str:
        return self.base_paths.get(domain, domain)

    def cells(self, domain: str) -> list[tuple[str, int, int]]:
        """(task, N, seed) of the grid on `domain`: sketch at every N and seed, the other tasks
        at `task_n` and the first `task_seeds` seeds."""
        cells = []
        for task in self.tasks:
            if task not in DOMAINS[domain].tasks:
                continue
            sizes, seeds = (self.n_train, self.seeds) if task == "sketch" else (self.task_n,
                                                                                self.seeds[: self.task_seeds])
            cells += [(task, n, seed) for seed in seeds for n in sizes]
        return cells

    def recipes(self) -> dict[str, Recipe]:
        """The recipe of every trained method: tuned from the settings file, or published."""
        trained = [method for method in self.methods if METHODS[method] is not None]
        if self.settings == PUBLISHED_SETTINGS:
            return {method: PUBLISHED[method] for method in trained}
        return read_settings(Path(self.settings), trained)

    def fit_options(self, domain: str, task: str, n_train: int, seed: int, recipe: Recipe) -> FitOptions:
        options = FitOptions(domain=domain, task=task, n_train=n_train, seed=seed, batch_size=self.batch_size,
                             preset=self.preset)
        options = recipe.fit_options(options)
        return options if self.steps is None else replace(options, steps=self.steps)

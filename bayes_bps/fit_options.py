"""The options of `python -m bayes_bps.fit`: one readable block, a config file, and checks.

Precedence: defaults < config file (YAML or TOML, keys as the flags without dashes) < flags.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import tomllib
import yaml

from .adapter import PRESETS
from .data import DOMAIN_TASKS
from .ports import PROFILES
from .sample import DEFAULT_GUIDANCE_SCALE


@dataclass
class FitOptions:
    # what to adapt, to what
    base: str = "shapes"  # embedded base name or local diffusers folder (e.g. SD1.5)
    domain: str = "shapes"  # shapes | digits | folder:PATH
    task: str = "sketch"
    n_train: int = 40
    # the steering network
    preset: str = "lite"
    profile: str = "head-heavy"
    deterministic: bool = False  # the official recipe: fixed scales, ε-MSE
    # priors and likelihood
    temperature: float | None = None  # λ; None: 1/D, one observation per example (see bayes.py)
    fusion_prior_scale: float = 0.5
    gate_bias_prior_mean: float = 3.0
    gate_bias_prior_scale: float = 1.0
    gate_slope_prior_scale: float = 1.0
    head_prior_scale: float | None = None  # set: Bayesian port heads with a Normal(0, s) prior
    # optimisation
    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-3
    guide_lr: float = 1e-2
    grad_clip: float = 1.0
    kl_anneal_steps: int = 0
    seed: int = 0
    # outputs
    out: str | None = None  # default: runs/<domain>-<task>-<bayes|deterministic>-n<N>-seed<S>
    checkpoint_every: int = 200
    posterior_draws: int = 8  # draws behind the per-pixel posterior std in samples.png
    grid_conditions: int = 6
    eval_samples: int = 64
    ddim_steps: int = 50
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE

    @property
    def domain_name(self) -> str:
        return self.domain.split(":", 1)[0]

    @property
    def run_dir(self) -> Path:
        if self.out is not None:
            return Path(self.out)
        source = Path(self.domain.split(":", 1)[1]).name if self.domain_name == "folder" else self.domain
        kind = "deterministic" if self.deterministic else "bayes"
        return Path("runs") / f"{source}-{self.task}-{kind}-n{self.n_train}-seed{self.seed}"

    def check(self) -> FitOptions:
        """Raise ValueError naming the first option out of range."""
        if self.domain_name not in DOMAIN_TASKS or (self.domain_name == "folder") != (":" in self.domain):
            raise ValueError(f"--domain must be one of shapes, digits, folder:PATH; got {self.domain!r}")
        if self.task not in DOMAIN_TASKS[self.domain_name]:
            raise ValueError(f"domain {self.domain_name!r} has no task {self.task!r}; "
                             f"its tasks are {', '.join(DOMAIN_TASKS[self.domain_name])}")
        choices = {"preset": PRESETS, "profile": PROFILES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name} must be one of {sorted(allowed)}; got {getattr(self, name)!r}")
        at_least = {"n_train": 1, "steps": 1, "batch_size": 1, "checkpoint_every": 1,
                    "posterior_draws": 2, "grid_conditions": 1, "eval_samples": 1, "ddim_steps": 1,
                    "kl_anneal_steps": 0, "seed": 0}
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise ValueError(f"--{name.replace('_', '-')} must be >= {low}; got {getattr(self, name)}")
        positive = ["fusion_prior_scale", "gate_bias_prior_scale", "gate_slope_prior_scale",
                    "lr", "guide_lr", "grad_clip", "temperature", "head_prior_scale"]
        for name in positive:
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"--{name.replace('_', '-')} must be > 0; got {value}")
        return self

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


HELP = {
    "base": "embedded base ('shapes', 'digits') or a local diffusers folder",
    "domain": "training data: shapes, digits, or folder:PATH (source/, target/, prompt.json)",
    "task": "condition type: sketch, segmentation, layout, style (shapes); sketch otherwise",
    "n_train": "number of training pairs (>= 1)",
    "preset": f"adapter size: {', '.join(PRESETS)}",
    "profile": f"prior mean (or fixed value) of the port scales: {', '.join(PROFILES)}",
    "deterministic": "run the official recipe (fixed scales, ε-MSE) through the same loop",
    "temperature": "likelihood temperature λ > 0 (default 1/D: each example one observation)",
    "fusion_prior_scale": "sd of log w_k around the profile (> 0)",
    "gate_bias_prior_mean": "prior mean of the gate bias a_k (3: gates open, sigmoid(3)=0.95)",
    "gate_bias_prior_scale": "prior sd of a_k (> 0)",
    "gate_slope_prior_scale": "prior sd of the gate slope b_k in t (> 0)",
    "head_prior_scale": "make the port heads Bayesian with a Normal(0, s) prior (> 0)",
    "steps": "optimisation steps (>= 1)",
    "batch_size": "pairs per step (>= 1)",
    "lr": "learning rate of the adapter body and σ",
    "guide_lr": "learning rate of the variational parameters",
    "grad_clip": "maximum gradient norm",
    "kl_anneal_steps": "ramp the KL weight from 0 to 1 over this many steps (0: off)",
    "seed": "seed of every random draw (>= 0)",
    "out": "run folder",
    "checkpoint_every": "steps between checkpoints",
    "posterior_draws": "posterior draws per condition in samples.png (>= 2)",
    "grid_conditions": "conditions shown in samples.png",
    "eval_samples": "test conditions for evaluation.json",
    "ddim_steps": "DDIM steps when sampling",
    "guidance_scale": "classifier-free guidance scale when sampling",
}


def build_parser() -> argparse.ArgumentParser:
    """Flags default to 'not given', so a config file's values survive unless a flag overrides."""
    parser = argparse.ArgumentParser(prog="python -m bayes_bps.fit", argument_default=argparse.SUPPRESS,
                                     description="Fit Bayesian Power Steering on a frozen diffusion base.")
    parser.add_argument("--config", type=Path, help="YAML or TOML file of options; flags override it")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved options and exit")
    defaults = FitOptions()
    for field in fields(FitOptions):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true", help=HELP[field.name])
            continue
        kind = {int: int, float: float}.get(type(default), str)
        if field.name in ("temperature", "head_prior_scale"):
            kind = float
        parser.add_argument(flag, type=kind, help=f"{HELP[field.name]} (default: {default})")
    return parser


def read_config(path: Path) -> dict:
    """Options from a YAML or TOML file; unknown keys are an error naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    text = path.read_text()
    values = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of option names to values")
    known = {field.name for field in fields(FitOptions)}
    values = {key.replace("-", "_"): value for key, value in values.items()}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path}: unknown options {unknown}; known options are {sorted(known)}")
    return values


def parse_options(argv: list[str] | None) -> tuple[FitOptions, dict]:
    """Resolved options, and the command's switches (resume, dry_run) with the explicit flags."""
    given = vars(build_parser().parse_args(argv))
    switches = {name: given.pop(name, False) for name in ("resume", "dry_run")}
    values = read_config(given.pop("config")) if "config" in given else {}
    values.update(given)
    switches["explicit"] = set(given)
    return FitOptions(**values).check(), switches

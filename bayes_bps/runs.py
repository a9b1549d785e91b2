"""A fit's run folder as objects: the prior, the training pairs, the objective, restored.

`fit.py` builds these for a new run and `load_run` rebuilds them from a finished (or
interrupted) one, through the same two functions, so a loaded run is the run that was fitted:

    run = load_run("runs/shapes-sketch-bayes-n40-seed0")      # latest checkpoint
    run.bayesian, run.objective.guide, run.pairs.conditions, run.held_out(8)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .bayes import (
    BayesianSteering,
    ELBOObjective,
    SteeringPriors,
    per_example_temperature,
)
from .checkpoint import latest_checkpoint, load_checkpoint_state
from .data import make_dataset
from .fit_options import FitOptions
from .pairs import TrainingPairs
from .prior import FrozenPrior
from .train import DeterministicObjective, adapter_for, profile_scales

OPTIONS_FILE = "options.json"


@dataclass
class FittedRun:
    """What sampling and reporting need from a fit; `objective` holds the adapter (and guide)."""

    options: FitOptions
    prior: FrozenPrior
    pairs: TrainingPairs
    objective: ELBOObjective | DeterministicObjective

    @property
    def bayesian(self) -> bool:
        """A posterior to draw from (negative ELBO), or the official recipe's fixed scales."""
        return isinstance(self.objective, ELBOObjective)

    def held_out(self, count: int):
        """Conditions the fit never saw, with their captions: (images, conditions, captions, label)."""
        options, resolution = self.options, self.prior.resolution
        if options.domain_name == "folder":  # a folder dataset has no test split
            dataset, label = make_dataset(options.domain, options.task, resolution=resolution), "train pairs"
        else:
            dataset = make_dataset(options.domain, options.task, split="test", length=count,
                                   seed=options.seed, resolution=resolution)
            label = "test split"
        count = min(count, len(dataset))
        images, conditions, captions = zip(*(dataset[i] for i in range(count)))
        return torch.stack(images), torch.stack(conditions), list(captions), label


def prior_and_pairs(options: FitOptions, device: torch.device | str) -> tuple[FrozenPrior, TrainingPairs]:
    """The frozen prior and the N training pairs of a run, encoded once."""
    prior = FrozenPrior.from_pretrained(options.base).to(device)
    dataset = make_dataset(options.domain, options.task, split="train", length=options.n_train,
                           seed=options.seed, resolution=prior.resolution)
    pairs = TrainingPairs.encode(prior, dataset, options.n_train, name=f"{options.domain}/{options.task}")
    return prior, pairs


def build_objective(options: FitOptions, prior: FrozenPrior, pairs: TrainingPairs):
    """The deterministic baseline's MSE, or the Bayesian model's negative ELBO."""
    adapter = adapter_for(prior, options.preset, pairs.condition_channels)
    scales = profile_scales(prior, options.profile)
    if options.deterministic:
        return DeterministicObjective(prior, adapter, scales)
    priors = SteeringPriors(
        fusion_scale=options.fusion_prior_scale, gate_bias_mean=options.gate_bias_prior_mean,
        gate_bias_scale=options.gate_bias_prior_scale, gate_slope_scale=options.gate_slope_prior_scale,
        head_scale=options.head_prior_scale)
    temperature = options.temperature or per_example_temperature(prior)
    model = BayesianSteering(prior, adapter, scales, len(pairs), temperature, priors)
    generator = torch.Generator().manual_seed(options.seed)
    example = pairs.noisy_batch(prior, pairs.draw_indices(options.batch_size, generator), generator)
    return ELBOObjective(model, example, options.kl_anneal_steps)


def load_run(run_dir: str | Path, checkpoint: str | Path | None = None,
             device: torch.device | str | None = None) -> FittedRun:
    """Rebuild a fit from its folder: options.json, then the objective's state from `checkpoint`
    (a `checkpoints/step_N` folder; default the latest). `device` defaults to CUDA if present."""
    run_dir = Path(run_dir)
    options_file = run_dir / OPTIONS_FILE
    if not options_file.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder: {options_file} not found")
    checkpoint = Path(checkpoint) if checkpoint is not None else latest_checkpoint(run_dir)
    if checkpoint is None:
        raise FileNotFoundError(f"{run_dir} holds no checkpoint yet (checkpoints/step_N/state.pt)")
    options = FitOptions(**json.loads(options_file.read_text()))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    prior, pairs = prior_and_pairs(options, device)
    objective = build_objective(options, prior, pairs)
    objective.load_state_dict(load_checkpoint_state(checkpoint)["objective"])
    return FittedRun(options, prior, pairs, objective)

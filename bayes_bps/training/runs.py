"""A fit's run folder as objects: the base, the training pairs, the objective, restored.

`fitting.fit` builds these for a new run and `load_run` rebuilds them from a finished (or
interrupted) one, through the same two functions, so a loaded run is the run that was fitted:

    run = load_run("runs/shapes-sketch-bayes-n40-seed0")      # latest checkpoint
    run.bayesian, run.objective.guide, run.pairs.conditions, run.held_out(8)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..base import FrozenBase, TrainingPairs
from ..bayes import BayesianSteering, ELBOObjective, per_example_temperature
from ..data import make_dataset
from ..steering import BPSAdapter, build_adapter, profile_weights
from ..steering.reference import hidden_scales
from ..utils import options as option_files
from .checkpoint import latest_checkpoint, load_checkpoint_state
from .deterministic import DeterministicObjective
from .options import FitOptions

OPTIONS_FILE = "options.json"
PAIRS_FILE = "pairs.pt"  # the training pairs as encoded, so a run is sampled and exported without its data


@dataclass
class FittedRun:
    """What sampling and reporting need from a fit; `objective` holds the adapter (and guide)."""

    options: FitOptions
    base: FrozenBase
    pairs: TrainingPairs
    objective: ELBOObjective | DeterministicObjective

    @property
    def bayesian(self) -> bool:
        """A posterior to draw from (negative ELBO), or the official recipe's fixed weights."""
        return isinstance(self.objective, ELBOObjective)

    @property
    def adapter(self) -> BPSAdapter:
        """The steering network the fit trained (the Bayesian model's, or the official recipe's)."""
        return self.objective.model.adapter if self.bayesian else self.objective.adapter

    def held_out(self, count: int):
        """Conditions the fit never saw, with their captions: (images, conditions, captions, label)."""
        options, resolution, channels = self.options, self.base.resolution, self.base.image_channels
        if options.eval_domain is not None:
            dataset = make_dataset(options.eval_domain, options.task, resolution=resolution, image_channels=channels)
            label = f"held-out pairs of {options.eval_domain}"
        elif options.domain_name == "folder":  # a folder dataset has no held-out split
            dataset = make_dataset(options.domain, options.task, resolution=resolution, image_channels=channels)
            label = "train pairs (memorised; pass --eval-domain folder:PATH for a held-out score)"
        else:
            dataset = make_dataset(options.domain, options.task, split=options.eval_split, length=count,
                                   resolution=resolution)
            label = f"{options.eval_split} split"
        count = min(count, len(dataset))
        images, conditions, captions = zip(*(dataset[i] for i in range(count)))
        return torch.stack(images), torch.stack(conditions), list(captions), label


def base_and_pairs(options: FitOptions, device: torch.device | str,
                   run_dir: Path | None = None) -> tuple[FrozenBase, TrainingPairs]:
    """The frozen base and the N training pairs of a run, encoded once: read from the run
    folder's pairs.pt when `run_dir` has one, else encoded from the data."""
    base = FrozenBase.from_pretrained(options.base).to(device)
    if run_dir is not None and (Path(run_dir) / PAIRS_FILE).is_file():
        return base, TrainingPairs.load(Path(run_dir) / PAIRS_FILE, device)
    dataset = make_dataset(options.domain, options.task, split="train", length=options.n_train,
                           seed=options.seed, resolution=base.resolution, image_channels=base.image_channels)
    pairs = TrainingPairs.encode(base, dataset, options.n_train, name=f"{options.domain}/{options.task}")
    return base, pairs


def build_objective(options: FitOptions, base: FrozenBase, pairs: TrainingPairs):
    """The official recipe's MSE (zero-initialised heads, fixed weights), or the Bayesian model's
    negative ELBO (a scale-free adapter whose port sizes are relative to the frozen hidden states)."""
    weights = profile_weights(base.unet, options.profile)
    if options.deterministic:
        return DeterministicObjective(base, build_adapter(base, options.preset, pairs.condition_channels), weights)
    adapter = build_adapter(base, options.preset, pairs.condition_channels, scale_free=True)
    temperature = options.temperature or per_example_temperature(base)
    model = BayesianSteering(base, adapter, weights, hidden_scales(base, pairs, options.seed), len(pairs),
                             temperature, options.priors)
    generator = torch.Generator().manual_seed(options.seed)
    example = pairs.noisy_batch(base, pairs.draw_indices(options.batch_size, generator), generator)
    calibrate = options.temperature is None and options.calibrate_temperature
    return ELBOObjective(model, example, warmup_steps=options.steering_warmup,
                         kl_anneal_steps=options.kl_anneal_steps, calibrate_temperature=calibrate,
                         guide_family=options.guide)


def read_options(run_dir: Path) -> FitOptions:
    """A run folder's options.json; FileNotFoundError when it is not a run folder."""
    options_file = Path(run_dir) / OPTIONS_FILE
    if not options_file.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder: {options_file} not found")
    return option_files.load(FitOptions, options_file)


def load_run(run_dir: str | Path, checkpoint: str | Path | None = None,
             device: torch.device | str | None = None) -> FittedRun:
    """Rebuild a fit from its folder: options.json, then the objective's state from `checkpoint`
    (a `checkpoints/step_N` folder; default the latest). `device` defaults to CUDA if present."""
    run_dir = Path(run_dir)
    options = read_options(run_dir)
    checkpoint = Path(checkpoint) if checkpoint is not None else latest_checkpoint(run_dir)
    if checkpoint is None:
        raise FileNotFoundError(f"{run_dir} holds no checkpoint yet (checkpoints/step_N/state.pt)")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    base, pairs = base_and_pairs(options, device, run_dir)
    objective = build_objective(options, base, pairs)
    objective.load_state_dict(load_checkpoint_state(checkpoint)["objective"])
    return FittedRun(options, base, pairs, objective)

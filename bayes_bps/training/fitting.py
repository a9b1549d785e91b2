"""Fitting a run: the run folder, the loop under accelerate, checkpoints, resume, the loss trace.

`fit` trains and checkpoints; what a finished fit shows (posterior, samples, evaluation) is
written afterwards by `viz.report.write_report`. The run folder gets

    options.json   every resolved option (`--resume` reads it back)
    run.json       what the options leave implicit: the temperature used, sizes, devices, versions
    pairs.pt       the N training pairs as encoded: sampling and export need no data after the fit
    checkpoints/   step_N/ folders, atomic (see checkpoint.py)
    loss.csv, loss.png
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import diffusers
import numpy as np
import pyro
import torch
from accelerate import Accelerator, DistributedDataParallelKwargs

from ..base import FrozenBase
from ..steering import find_ports
from ..utils import options as option_files
from ..utils.options import value_of
from ..utils.plots import plot_loss_curve
from .checkpoint import latest_checkpoint, load_checkpoint_state, save_checkpoint
from .lock import RunFolderError
from .objective import trainable_parameters
from .options import FitOptions
from .runs import OPTIONS_FILE, PAIRS_FILE, FittedRun, base_and_pairs, build_objective, read_options
from .trainer import NonFiniteLossError, trainer_for


def prepare_run_folder(options: FitOptions, resume: bool, explicit: set[str]) -> FitOptions:
    """Check the folder is writable; on resume, return the run's own options (steps may grow)."""
    run_dir = options.run_dir
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"  # per process: DDP ranks check at once
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise RunFolderError(f"cannot write to run folder {run_dir}: {error.strerror or error}") from error
    if not resume:
        if latest_checkpoint(run_dir) is not None:
            raise RunFolderError(f"{run_dir} already holds checkpoints: pass --resume to continue "
                                 "that run, or choose another --out")
        return options
    if not (run_dir / OPTIONS_FILE).is_file():
        raise RunFolderError(f"nothing to resume: {run_dir / OPTIONS_FILE} not found")
    saved = read_options(run_dir)
    changed = sorted(name for name in explicit - {"steps", "out"}
                     if value_of(options, name) != value_of(saved, name))
    if changed:
        raise RunFolderError(f"--resume continues the run as it was; these options differ from "
                             f"{run_dir / OPTIONS_FILE}: {changed} (only --steps may change)")
    return replace(saved, steps=options.steps if "steps" in explicit else saved.steps)


def run_facts(objective, base: FrozenBase, accelerator: Accelerator) -> dict:
    """What the options leave implicit: the temperature used, sizes, devices, versions."""
    model = getattr(objective, "model", None)
    return {
        "temperature": None if model is None else float(model.temperature),
        "noise_values_per_example": base.unet.config.in_channels * base.unet.config.sample_size**2,
        "trainable_parameters": trainable_parameters(objective),
        "ports": len(find_ports(base.unet)),
        "device": str(accelerator.device), "processes": accelerator.num_processes,
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "pyro": pyro.__version__},
    }


LOSS_LABELS = {"mse": ("mse", "ε-MSE"),
               "-elbo per pair": ("negative_elbo_per_pair", "negative ELBO per training pair (one draw)")}


def write_loss_trace(run_dir: Path, losses: list[float], loss_label: str) -> None:
    column, ylabel = LOSS_LABELS[loss_label]
    with open(run_dir / "loss.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", column])
        writer.writerows((step + 1, loss) for step, loss in enumerate(losses))
    plot_loss_curve(losses, run_dir / "loss.png", ylabel=ylabel, title=f"fit: {run_dir.name}")


# (the run as fitted so far, its step) -> a picture (H, W, 3) uint8 to log, or None
Validation = Callable[[FittedRun, int], "np.ndarray | None"]


def _tracker_config(options: FitOptions) -> dict:
    """The options a tracker can store: flat scalars and strings."""
    flat = json.loads(option_files.to_json(options))
    return {key: value for key, value in flat.items() if isinstance(value, (bool, int, float, str))}


def fit(options: FitOptions, resume: bool = False, explicit: set[str] = frozenset(),
        progress: bool = True, validation: Validation | None = None) -> tuple[FittedRun, Accelerator]:
    """Run (or resume) a fit into its run folder; returns the fitted run and its accelerator
    (whose `is_main_process` says which process writes the report).

    With `--report-to tensorboard` the loss and the objective's `scalars()` go to RUN/logs every
    `--log-every` steps; with `--validation-steps N`, `validation` runs every N steps on the main
    process (the objective in eval mode) and the picture it returns is logged too."""
    options = prepare_run_folder(options, resume, set(explicit))
    run_dir = options.run_dir
    tracking = options.report_to != "none"
    accelerator = Accelerator(cpu=not torch.cuda.is_available(),
                              log_with=options.report_to if tracking else None,
                              project_dir=str(run_dir / "logs") if tracking else None,
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    if tracking:
        accelerator.init_trackers(run_dir.name, config=_tracker_config(options))
    torch.manual_seed(options.seed)
    pyro.set_rng_seed(options.seed)

    # 1. the frozen base and the N training pairs, encoded once
    base, pairs = base_and_pairs(options, accelerator.device, run_dir if resume else None)

    # 2. the objective and the loop, restored from the latest checkpoint when resuming
    objective = build_objective(options, base, pairs)
    trainer = trainer_for(options, base, pairs, objective, accelerator)
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if checkpoint is not None:
        trainer.load_state_dict(load_checkpoint_state(checkpoint))
    if accelerator.is_main_process:
        option_files.write(options, run_dir / OPTIONS_FILE)
        pairs.save(run_dir / PAIRS_FILE)
        (run_dir / "run.json").write_text(json.dumps(run_facts(objective, base, accelerator), indent=2) + "\n")

    def on_step(step: int) -> None:
        if tracking and (step % options.log_every == 0 or step == options.steps):
            accelerator.log({objective.loss_label: trainer.losses[-1], **objective.scalars()}, step=step)
        if validation is not None and options.validation_steps and step % options.validation_steps == 0 \
                and accelerator.is_main_process:
            objective.eval()
            picture = validation(FittedRun(options, base, pairs, objective), step)
            objective.train()
            if tracking and picture is not None:
                accelerator.get_tracker(options.report_to, unwrap=True).add_image(
                    "validation", picture, step, dataformats="HWC")
        if step % options.checkpoint_every == 0 or step == options.steps:
            state = trainer.state_dict()  # on every rank: it gathers their random states
            if accelerator.is_main_process:
                save_checkpoint(run_dir, step, state, objective.export_adapter(),
                                keep=options.checkpoints_total_limit)

    # 3. optimise; a non-finite loss stops the run with the last good checkpoint in place
    try:
        trainer.train(options.steps, on_step, description=f"fit {run_dir.name}", progress=progress)
    except NonFiniteLossError as error:
        last = latest_checkpoint(run_dir)
        raise NonFiniteLossError(f"{error}; last good checkpoint: {last or 'none yet'}") from error
    finally:
        if accelerator.is_main_process and trainer.losses:
            write_loss_trace(run_dir, trainer.losses, objective.loss_label)
    if accelerator.is_main_process:  # again: a calibrated λ is known only now
        (run_dir / "run.json").write_text(json.dumps(run_facts(objective, base, accelerator), indent=2) + "\n")
    if tracking:
        accelerator.end_training()
    return FittedRun(options, base, pairs, objective), accelerator

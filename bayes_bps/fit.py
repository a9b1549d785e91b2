"""Fit Bayesian Power Steering: `python -m bayes_bps.fit`.

    python -m bayes_bps.fit                          # embedded default: shapes base, sketch, 40 pairs, lite
    python -m bayes_bps.fit --domain digits --base digits --n-train 10
    python -m bayes_bps.fit --domain folder:PATH --base /models/stable-diffusion-v1-5
    python -m bayes_bps.fit --config run.yaml --seed 3   # flags override the file
    python -m bayes_bps.fit --deterministic              # the official recipe, same loop
    python -m bayes_bps.fit --out runs/x --resume        # continue from the latest checkpoint
    python -m bayes_bps.fit --dry-run                    # print the resolved options and exit

The run folder gets options.json, checkpoints/, loss.csv and loss.png, and at the end the
posterior (posterior.nc, posterior_summary.csv, fusion_forest.png; Bayesian runs),
samples.png and evaluation.json (see `report.py`).
"""

from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import diffusers
import pyro
import torch
from accelerate import Accelerator, DistributedDataParallelKwargs

from .checkpoint import latest_checkpoint, load_checkpoint_state, save_checkpoint
from .fit_options import FitOptions, parse_options
from .plots import plot_loss_curve
from .ports import find_ports
from .prior import FrozenPrior
from .report import write_report
from .runs import OPTIONS_FILE, FittedRun, build_objective, prior_and_pairs
from .train import NonFiniteLossError, SteeringTrainer


class RunFolderError(RuntimeError):
    """The run folder cannot be used as asked: unwritable, or holding another run."""


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
    saved_file = run_dir / OPTIONS_FILE
    if not resume:
        if latest_checkpoint(run_dir) is not None:
            raise RunFolderError(f"{run_dir} already holds checkpoints: pass --resume to continue "
                                 "that run, or choose another --out")
        return options
    if not saved_file.is_file():
        raise RunFolderError(f"nothing to resume: {saved_file} not found")
    saved = FitOptions(**json.loads(saved_file.read_text()))
    changed = sorted(name for name in explicit - {"steps", "out"}
                     if getattr(options, name) != getattr(saved, name))
    if changed:
        raise RunFolderError(f"--resume continues the run as it was; these options differ from "
                             f"{saved_file}: {changed} (only --steps may change)")
    return replace(saved, steps=options.steps if "steps" in explicit else saved.steps)


def run_facts(objective, prior: FrozenPrior, accelerator: Accelerator) -> dict:
    """What the options leave implicit: the temperature used, sizes, devices, versions."""
    model = getattr(objective, "model", None)
    return {
        "temperature": None if model is None else model.temperature,
        "noise_values_per_example": prior.unet.config.in_channels * prior.unet.config.sample_size**2,
        "trainable_parameters": sum(p.numel() for p in objective.parameters() if p.requires_grad),
        "ports": len(find_ports(prior.unet)),
        "device": str(accelerator.device), "processes": accelerator.num_processes,
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "pyro": pyro.__version__},
    }


LOSS_LABELS = {"mse": ("mse", "ε-MSE"),
               "-elbo": ("negative_elbo", "negative ELBO (one draw)"),
               "-elbo + network mse": ("negative_elbo_plus_network_mse",
                                       "negative ELBO (one draw) + network ε-MSE")}


def write_loss_trace(run_dir: Path, losses: list[float], loss_name: str) -> None:
    column, ylabel = LOSS_LABELS[loss_name]
    with open(run_dir / "loss.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", column])
        writer.writerows((step + 1, loss) for step, loss in enumerate(losses))
    plot_loss_curve(losses, run_dir / "loss.png", ylabel=ylabel, title=f"fit: {run_dir.name}")


def fit(options: FitOptions, resume: bool = False, explicit: set[str] = frozenset(),
        progress: bool = True) -> Path:
    """Run (or resume) a fit and write its run folder; returns the folder."""
    options = prepare_run_folder(options, resume, set(explicit))
    run_dir = options.run_dir
    accelerator = Accelerator(cpu=not torch.cuda.is_available(),
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    torch.manual_seed(options.seed)
    pyro.set_rng_seed(options.seed)

    # 1. the frozen prior and the N training pairs, encoded once
    prior, pairs = prior_and_pairs(options, accelerator.device)

    # 2. the objective and the loop, restored from the latest checkpoint when resuming
    objective = build_objective(options, prior, pairs)
    trainer = SteeringTrainer(prior, pairs, objective, batch_size=options.batch_size, lr=options.lr,
                              guide_lr=options.guide_lr, grad_clip=options.grad_clip,
                              seed=options.seed, accelerator=accelerator)
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if checkpoint is not None:
        trainer.load_state_dict(load_checkpoint_state(checkpoint))
    if accelerator.is_main_process:
        (run_dir / OPTIONS_FILE).write_text(options.to_json())
        (run_dir / "run.json").write_text(json.dumps(run_facts(objective, prior, accelerator), indent=2) + "\n")

    def on_step(step: int) -> None:
        if accelerator.is_main_process and (step % options.checkpoint_every == 0 or step == options.steps):
            save_checkpoint(run_dir, step, trainer.state_dict(), objective.export_adapter())

    # 3. optimise; a non-finite loss stops the run with the last good checkpoint in place
    try:
        trainer.train(options.steps, on_step, description=f"fit {run_dir.name}", progress=progress)
    except NonFiniteLossError as error:
        last = latest_checkpoint(run_dir)
        raise NonFiniteLossError(f"{error}; last good checkpoint: {last or 'none yet'}") from error
    finally:
        if accelerator.is_main_process and trainer.losses:
            write_loss_trace(run_dir, trainer.losses, objective.loss_name)

    # 4. posterior, samples and evaluation
    if accelerator.is_main_process:
        write_report(FittedRun(options, prior, pairs, objective), run_dir, progress=progress)
    return run_dir


def main(argv: list[str] | None = None) -> None:
    try:
        options, switches = parse_options(argv)
        if switches["dry_run"]:
            print(options.to_json(), end="")
            print(f"# run folder: {options.run_dir}")
            return
        run_dir = fit(options, switches["resume"], switches["explicit"])
    except (ValueError, FileNotFoundError, RunFolderError, NonFiniteLossError) as error:
        sys.exit(f"error: {error}")
    print(f"wrote {run_dir}")


if __name__ == "__main__":
    main()

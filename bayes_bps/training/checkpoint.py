"""Atomic checkpoints of a steering run, and finding the latest one to resume from.

A checkpoint is a folder `checkpoints/step_NNNNNN/` holding the adapter (`save_pretrained`,
so `BPSAdapter.from_pretrained` reads it) and `state.pt` (objective with the guide's
parameters, optimizer, generator and RNG states, step, loss trace). It is written under a
temporary name and renamed into place, so a run killed mid-write leaves the previous
checkpoint intact and no half-written one behind.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from torch import nn

CHECKPOINTS = "checkpoints"
PREFIX = "step_"


def save_checkpoint(run_dir: Path, step: int, state: dict, adapter: nn.Module, keep: int = 2) -> Path:
    folder = Path(run_dir) / CHECKPOINTS
    final, staging = folder / f"{PREFIX}{step:06d}", folder / f".tmp-{PREFIX}{step:06d}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    adapter.save_pretrained(staging / "adapter")
    torch.save(state, staging / "state.pt")
    if final.exists():  # the same step written again after a resume: swap, then drop the old one
        retired = folder / f".old-{PREFIX}{step:06d}"
        os.replace(final, retired)
        os.replace(staging, final)
        shutil.rmtree(retired)
    else:
        os.replace(staging, final)
    for old in completed_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old)
    return final


def completed_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint folders in step order; temporary (unfinished) ones are ignored."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.name.startswith(PREFIX) and (p / "state.pt").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = completed_checkpoints(run_dir)
    return found[-1] if found else None


def load_checkpoint_state(checkpoint: Path) -> dict:
    return torch.load(Path(checkpoint) / "state.pt", weights_only=True)

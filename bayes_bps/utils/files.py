"""Writing files so that a killed process never leaves a half-written one behind."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def save_atomic(value, path: str | Path) -> None:
    """`torch.save(value, path)` through a temporary file renamed into place (per process, so
    concurrent writers of one path do not mix their bytes)."""
    path = Path(path)
    staging = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    torch.save(value, staging)
    os.replace(staging, path)

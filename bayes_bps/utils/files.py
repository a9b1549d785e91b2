"""Writing files so that a killed process never leaves a half-written one behind."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch


@contextmanager
def staged(path: str | Path) -> Iterator[Path]:
    """A temporary path to write `path` at, renamed into place when the block ends without error
    (named per process, so concurrent writers of one path do not mix their bytes)."""
    path = Path(path)
    staging = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield staging
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def save_atomic(value, path: str | Path) -> None:
    """`torch.save(value, path)`, atomically."""
    with staged(path) as staging:
        torch.save(value, staging)


def write_text_atomic(path: str | Path, text: str) -> None:
    """`Path(path).write_text(text)`, atomically."""
    with staged(path) as staging:
        staging.write_text(text)

"""One fit per run folder: a lock file, so a second fit into the same folder fails at once.

The lock (`RUN/.fit.lock`) holds the owner's host and process id. A lock whose process is gone
(killed, crashed) on this host is stale and is taken over, so a killed fit can be resumed
without cleaning up by hand. Under DDP only rank 0 locks: the others share its folder.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".fit.lock"


class RunFolderError(RuntimeError):
    """The run folder cannot be used as asked: unwritable, held by another fit, or holding
    another run."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _claim(lock: Path) -> bool:
    """Create the lock file if it does not exist; True when this process now holds it."""
    try:
        descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"host": socket.gethostname(), "pid": os.getpid()}, handle)
    return True


@contextmanager
def run_folder_lock(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir`'s lock inside the context (rank 0 only under DDP)."""
    if os.environ.get("RANK", "0") != "0":
        yield
        return
    lock = run_dir / LOCK_FILE
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        claimed = _claim(lock)
    except OSError as error:
        raise RunFolderError(f"cannot write to run folder {run_dir}: {error.strerror or error}") from error
    if not claimed:
        try:
            owner = json.loads(lock.read_text())
        except (OSError, ValueError):
            owner = {}
        if owner.get("host") == socket.gethostname() and not _alive(int(owner.get("pid", -1))):
            lock.unlink(missing_ok=True)  # stale: its fit is gone
        if not _claim(lock):
            raise RunFolderError(f"{run_dir} is in use by another fit (process {owner.get('pid', '?')} on "
                                       f"{owner.get('host', '?')}, lock {lock}); wait for it or choose another --out")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)

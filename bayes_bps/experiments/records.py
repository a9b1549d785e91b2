"""The study folder's files, and how they are written: a finished unit at a time.

Each stage appends the rows of a unit of work (a cell, a tuning run) as soon as it finishes
and flushes them; on the next invocation the units already in the file are skipped.

    results-<domain>.csv, scores-<domain>.csv     the grid's cells and per-image scores
    profiles-<domain>.csv                         each Bayesian cell's posterior-mean w_k per port
    features-<domain>/<task>-n<N>-seed<S>-<method>.npy, <task>-reference.npy
    curves.csv, sweep.csv, settings.csv           the tune stage
    paired.csv, table.md, paired.md               derived, rewritten from the files above
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..utils.files import staged


def append_rows(path: Path, columns: list[str], rows: list[dict]) -> None:
    """Append rows; the header is written with the first of them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.is_file()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        if new:
            writer.writeheader()
        writer.writerows(rows)
        handle.flush()


def read_rows(*paths: Path) -> list[dict]:
    """Every row of the files that exist, in order."""
    rows = []
    for path in paths:
        if Path(path).is_file():
            with open(path, newline="") as handle:
                rows.extend(csv.DictReader(handle))
    return rows


def scores_by_seed(rows: list[dict], metric: str) -> dict[int, list[float]]:
    """seed -> the per-image scores of `metric` in index order, from per-image score rows."""
    by_seed: dict[int, dict[int, float]] = {}
    for row in rows:
        if row["metric"] == metric:
            by_seed.setdefault(int(row["seed"]), {})[int(row["index"])] = float(row["score"])
    return {seed: [scores[i] for i in sorted(scores)] for seed, scores in by_seed.items()}


def write_rows(path: Path, columns: list[str], rows: list[dict]) -> None:
    """Replace a derived file (a table recomputed from the others) atomically."""
    with staged(path) as staging, open(staging, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def result_domains(folder: Path) -> list[str]:
    """The domains with a results file in the folder."""
    return sorted(path.stem.removeprefix("results-") for path in Path(folder).glob("results-*.csv"))


def results_path(folder: Path, domain: str) -> Path:
    return Path(folder) / f"results-{domain}.csv"


def scores_path(folder: Path, domain: str) -> Path:
    return Path(folder) / f"scores-{domain}.csv"


def profiles_path(folder: Path, domain: str) -> Path:
    return Path(folder) / f"profiles-{domain}.csv"


def features_path(folder: Path, domain: str, task: str, n: int, seed: int, method: str) -> Path:
    return Path(folder) / f"features-{domain}" / f"{task}-n{n}-seed{seed}-{method}.npy"


def reference_features_path(folder: Path, domain: str, task: str) -> Path:
    return Path(folder) / f"features-{domain}" / f"{task}-reference.npy"

"""What the grid's files say, read back: paired differences (`paired.csv`) and markdown tables.

`paired_rows` pairs every method with each reference method (deterministic BPS, the
unsteered base, and Bayesian BPS, so that each baseline's lead or lag on it has its own
interval) on the seeds both have finished, per-image scores through
`paired.paired_difference` and distribution distances through
`paired.paired_distance_difference` against the reference split's features.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from ..metrics import PRIMARY_SCORE, frechet_distance, kernel_inception_distance
from .methods import METHODS
from .paired import paired_difference, paired_distance_difference
from .records import features_path, read_rows, reference_features_path, result_domains, results_path, scores_path

PAIRED_COLUMNS = ["domain", "task", "n_train", "method", "reference", "metric", "delta", "low", "high", "seeds"]
REFERENCES = ("deterministic", "unsteered", "bayesian")
DISTANCE_RESAMPLES = 200  # each replicate recomputes a distance per seed and method


def _distance(metric: str):
    """The distance a results metric names: '… KID' or a Fréchet distance ('FID', 'domain FD')."""
    return kernel_inception_distance if metric.endswith("KID") else frechet_distance


def paired_rows(folder: Path, resamples: int = 1000) -> list[dict]:
    """Every (domain, task, N, method, reference, metric) difference the folder's cells allow."""
    folder = Path(folder)
    rows = []
    for domain in result_domains(folder):
        cells = defaultdict(set)  # (task, n, method) -> seeds
        distance_metrics = set()
        for row in read_rows(results_path(folder, domain)):
            cells[(row["task"], int(row["n_train"]), row["method"])].add(int(row["seed"]))
            if "FD" in row["metric"] or "KID" in row["metric"]:
                distance_metrics.add(row["metric"])
        scores = defaultdict(dict)  # (task, n, seed, method, metric) -> {index: score}
        score_metrics = defaultdict(set)  # (task, n) -> metrics
        for row in read_rows(scores_path(folder, domain)):
            key = (row["task"], int(row["n_train"]), int(row["seed"]), row["method"], row["metric"])
            scores[key][int(row["index"])] = float(row["score"])
            score_metrics[key[:2]].add(key[4])
        for (task, n, method), seeds in sorted(cells.items()):
            for reference in REFERENCES:
                common = sorted(seeds & cells.get((task, n, reference), set()))
                if method == reference or not common:
                    continue
                cell = {"domain": domain, "task": task, "n_train": n, "method": method, "reference": reference}
                for metric in sorted(score_metrics[(task, n)]):
                    grid = [[_ordered(scores[(task, n, seed, name, metric)]) for seed in common]
                            for name in (method, reference)]
                    result = paired_difference(np.array(grid[0]), np.array(grid[1]), resamples=resamples)
                    rows.append(_row(cell, metric, result))
                if not distance_metrics:
                    continue
                real = np.load(reference_features_path(folder, domain, task))
                features = [np.stack([np.load(features_path(folder, domain, task, n, seed, name)) for seed in common])
                            for name in (method, reference)]
                for metric in sorted(distance_metrics):
                    result = paired_distance_difference(_distance(metric), real, *features,
                                                        resamples=min(resamples, DISTANCE_RESAMPLES))
                    rows.append(_row(cell, metric, result))
    return rows


def _ordered(by_index: dict[int, float]) -> list[float]:
    return [by_index[i] for i in sorted(by_index)]


def _row(cell: dict, metric: str, result) -> dict:
    return {**cell, "metric": metric, "delta": f"{result.delta:.6g}", "low": f"{result.low:.6g}",
            "high": f"{result.high:.6g}", "seeds": result.seeds}


def summary_table(rows: list[dict]) -> str:
    """A markdown table: every metric's mean ± sd over seeds, per domain, task, N and method."""
    groups: dict[tuple, list[float]] = {}
    for row in rows:
        key = (row["domain"], row["task"], int(row["n_train"]), row["method"], row["metric"])
        groups.setdefault(key, []).append(float(row["value"]))
    metrics = sorted({key[4] for key in groups})
    header = ["domain", "task", "N", "method", *metrics, "seeds"]
    note = ("Mean ± sd over seeds (one cell per seed; each cell's n and bootstrap interval are in the CSVs). "
            "Compare methods with the paired table, not by these marginal spreads.")
    lines = [note, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    order = list(METHODS)
    for cell in sorted({key[:4] for key in groups}, key=lambda k: (k[0], k[1], k[2], order.index(k[3]))):
        values = [torch.tensor(groups.get((*cell, metric), [float("nan")])) for metric in metrics]
        cells = [f"{v.mean().item():.3g}" + (f" ± {v.std().item():.2g}" if len(v) > 1 else "") for v in values]
        seeds = max(len(groups.get((*cell, metric), [])) for metric in metrics)
        lines.append(f"| {' | '.join(map(str, cell))} | " + " | ".join(cells) + f" | {seeds} |")
    return "\n".join(lines) + "\n"


def paired_table(rows: list[dict]) -> str:
    """A markdown table of Δ [95 % interval] against each reference method (`REFERENCES`), for
    each task's primary score, the label agreement and the KID."""
    lines = ["Method − reference over the same test conditions and noise: Δ [95 % interval, crossed bootstrap "
             "over seeds and conditions].", "",
             "| domain | task | N | method | reference | metric | Δ | interval | seeds |",
             "|---|---|---|---|---|---|---|---|---|"]
    order = list(METHODS)
    keep = [row for row in rows if row["metric"] in (PRIMARY_SCORE.get(row["task"]), "label_agreement")
            or row["metric"].endswith("KID")]
    for row in sorted(keep, key=lambda r: (r["domain"], r["task"], int(r["n_train"]), r["reference"],
                                           order.index(r["method"]), r["metric"])):
        lines.append(f"| {row['domain']} | {row['task']} | {row['n_train']} | {row['method']} | {row['reference']} "
                     f"| {row['metric']} | {float(row['delta']):+.3g} | [{float(row['low']):+.3g}, "
                     f"{float(row['high']):+.3g}] | {row['seeds']} |")
    return "\n".join(lines) + "\n"

"""Plots of training runs, written to files (runs happen on headless machines)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch


def plot_loss_curve(losses: list[float], path: Path, ylabel: str, title: str) -> Path:
    """Per-step loss with a running mean over a fiftieth of the run; log scale when positive."""
    values = torch.tensor(losses, dtype=torch.float64)
    window = max(1, len(values) // 50)
    smoothed = values.unfold(0, window, 1).mean(dim=1)
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot(values, alpha=0.3, label="per step")
    axis.plot(range(window - 1, window - 1 + len(smoothed)), smoothed, label=f"mean of {window}")
    axis.set(xlabel="training step", ylabel=ylabel, title=title)
    if bool((values > 0).all()):
        axis.set_yscale("log")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def plot_data_efficiency(rows: list[dict], path: Path) -> Path:
    """Metric against N (log scale), one panel per (domain, metric), one line per method.

    Points are the mean over seeds; error bars span the seeds' standard deviation (with one
    seed, the cell's bootstrap interval). Writes `path` (PNG) and the same figure as PDF."""
    domains = list(dict.fromkeys(row["domain"] for row in rows))
    metrics = list(dict.fromkeys(row["metric"] for row in rows))
    methods = list(dict.fromkeys(row["method"] for row in rows))
    figure, axes = plt.subplots(len(domains), len(metrics), squeeze=False,
                                figsize=(3.6 * len(metrics), 3.0 * len(domains)))
    for (i, domain), (j, metric) in ((d, m) for d in enumerate(domains) for m in enumerate(metrics)):
        axis = axes[i][j]
        for k, method in enumerate(methods):
            dodge = 1.06 ** (k - (len(methods) - 1) / 2)  # side by side on the log axis
            cell = [row for row in rows if (row["domain"], row["metric"], row["method"]) == (domain, metric, method)]
            sizes = sorted({int(row["n_train"]) for row in cell})
            if not sizes:
                continue
            means, lows, highs = [], [], []
            for n in sizes:
                at_n = [row for row in cell if int(row["n_train"]) == n]
                values = torch.tensor([float(row["value"]) for row in at_n])
                mean = values.mean().item()
                if len(values) > 1:
                    low, high = mean - values.std().item(), mean + values.std().item()
                else:
                    low, high = float(at_n[0]["low"]), float(at_n[0]["high"])
                means.append(mean)
                lows.append(mean - low)
                highs.append(high - mean)
            axis.errorbar([n * dodge for n in sizes], means, yerr=[lows, highs], marker="o", capsize=3,
                          label=method)
        axis.set_xscale("log")
        axis.set_xticks(sorted({int(row["n_train"]) for row in rows}))
        axis.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.set(xlabel="training pairs N", ylabel=metric, title=f"{domain}: {metric}")
    axes[0][0].legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    figure.savefig(Path(path).with_suffix(".pdf"))
    plt.close(figure)
    return Path(path)

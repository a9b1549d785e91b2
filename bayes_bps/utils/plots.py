"""The loss curve of a training run, written to a file."""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure


def plot_loss_curve(losses: list[float], path: Path, ylabel: str, title: str) -> Path:
    """Per-step loss with a running mean over a fiftieth of the run; log scale when positive."""
    values = torch.tensor(losses, dtype=torch.float64)
    window = max(1, len(values) // 50)
    smoothed = values.unfold(0, window, 1).mean(dim=1)
    figure = Figure(figsize=(6, 3.5), layout="constrained")
    axis = figure.subplots()
    axis.plot(values, alpha=0.3, label="per step")
    axis.plot(range(window - 1, window - 1 + len(smoothed)), smoothed, label=f"mean of {window}")
    axis.set(xlabel="training step", ylabel=ylabel, title=title)
    if bool((values > 0).all()):
        axis.set_yscale("log")
    axis.legend()
    figure.savefig(path, dpi=100)
    return Path(path)

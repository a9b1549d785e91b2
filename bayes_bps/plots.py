"""Plots of training runs, written to files (runs happen on headless machines)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


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

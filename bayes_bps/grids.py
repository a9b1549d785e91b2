"""Labelled image grids: how runs show their samples to a person."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: runs happen on headless machines
import matplotlib.pyplot as plt
import torch


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> [0, 1], the range image files and plots take."""
    return ((images + 1) / 2).clamp(0, 1)


def save_image_grid(
    rows: list[torch.Tensor], path: str | Path, row_labels: list[str] | None = None,
    column_labels: list[str] | None = None, cell_inches: float = 1.0,
) -> Path:
    """Save rows of images in [0, 1] (each `(n, C, H, W)`, C = 1 or 3) as a labelled PNG."""
    n_rows, n_cols = len(rows), max(len(row) for row in rows)
    figure, axes = plt.subplots(n_rows, n_cols, squeeze=False,
                                figsize=(cell_inches * n_cols + 2.5, cell_inches * n_rows + 0.4))
    for r, row in enumerate(rows):
        for c in range(n_cols):
            axis = axes[r][c]
            axis.set_xticks([])
            axis.set_yticks([])
            if c >= len(row):
                axis.axis("off")
                continue
            image = row[c].detach().float().cpu().permute(1, 2, 0).numpy()
            axis.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image,
                        cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if r == 0 and column_labels:
                axis.set_title(column_labels[c], fontsize=8)
        if row_labels:
            axes[r][0].set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=8)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path

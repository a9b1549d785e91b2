"""Labelled image grids, the one way every stage shows samples to a person.

`image_grid` lays out rows of images; `predictive_grid` is the posterior-predictive grid that
the fit's report, the sample command and the paper figure all draw: per condition, the
condition, any columns of samples, and the per-pixel posterior sd on one colour scale shared by
all rows. Both return a matplotlib `Figure` built without pyplot, so nothing here touches
matplotlib's global backend or keeps figures alive; `save_png` writes one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from matplotlib.figure import Figure

from .images import to_unit

SPREAD_COLOURMAP = "magma"


def _show(axis, image: torch.Tensor) -> None:
    """One (C, H, W) image in [0, 1], without ticks."""
    pixels = image.detach().float().cpu().permute(1, 2, 0).numpy()
    axis.imshow(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels, cmap="gray", vmin=0, vmax=1,
                interpolation="nearest")
    axis.set_xticks([])
    axis.set_yticks([])


def image_grid(rows: Sequence[Sequence[torch.Tensor]], *, row_labels: Sequence[str] | None = None,
               column_labels: Sequence[str] | None = None, cell_inches: float = 1.0) -> Figure:
    """Rows of (C, H, W) images in [0, 1] (C = 1 or 3); rows may differ in length."""
    n_rows, n_cols = len(rows), max(len(row) for row in rows)
    figure = Figure(figsize=(cell_inches * n_cols + 2.5, cell_inches * n_rows + 0.4), layout="constrained")
    axes = figure.subplots(n_rows, n_cols, squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            if c >= len(row):
                axes[r][c].axis("off")
                continue
            _show(axes[r][c], row[c])
            if r == 0 and column_labels:
                axes[r][c].set_title(column_labels[c], fontsize=8)
        if row_labels:
            axes[r][0].set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=8)
    return figure


def predictive_grid(conditions: torch.Tensor, captions: Sequence[str], columns: Mapping[str, torch.Tensor],
                    spread: torch.Tensor | None = None, spread_label: str = "posterior sd",
                    cell_inches: float = 1.1) -> Figure:
    """Per condition i: condition | columns[label][i] for each label | spread[i].

    `conditions` are (B, Cc, H, W) in [0, 1]; each column (B, C, H, W) in [-1, 1]; `spread`
    (B, 1, H, W) in image units (pixels span [-1, 1]), drawn on one colour scale for all rows
    with its colour bar, so rows can be compared."""
    labels = ["condition", *columns, *([spread_label] if spread is not None else [])]
    count = len(captions)
    figure = Figure(figsize=(cell_inches * len(labels) + 2.2, cell_inches * count + 0.6), layout="constrained")
    axes = figure.subplots(count, len(labels), squeeze=False)
    top = max(float(spread.max()), 1e-8) if spread is not None else None
    for i, caption in enumerate(captions):
        row = axes[i]
        _show(row[0], conditions[i])
        row[0].set_ylabel(caption, rotation=0, ha="right", va="center", fontsize=7)
        for j, images in enumerate(columns.values(), start=1):
            _show(row[j], to_unit(images[i]))
        if spread is not None:
            mapped = row[-1].imshow(spread[i, 0].detach().float().cpu().numpy(), cmap=SPREAD_COLOURMAP,
                                    vmin=0, vmax=top, interpolation="nearest")
            row[-1].set_xticks([])
            row[-1].set_yticks([])
    for axis, label in zip(axes[0], labels):
        axis.set_title(label, fontsize=8)
    if spread is not None:
        figure.colorbar(mapped, ax=axes[:, -1].tolist(), shrink=0.8, label="per-pixel sd (image units)")
    return figure


def save_png(figure: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write `figure` to `path` (format from the suffix), making the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    return path

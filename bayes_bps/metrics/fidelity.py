"""One entry point for condition fidelity: every per-image score that applies to a task.

| task         | scores                                  | from            |
|--------------|-----------------------------------------|-----------------|
| sketch       | edge_f1                                 | `edges.py`      |
| segmentation | foreground_iou                          | `foreground.py` |
| layout       | box_precision, box_recall, box_f1       | `layout.py`     |
| style        | style_agreement                         | `style.py`      |
| any, given a domain classifier | label_agreement       | `labels.py`     |

With a digits base the task is "sketch" and `label_agreement` is the digit class agreement.
`PRIMARY_SCORE` names the score a study tunes on and leads its tables with.
"""

from __future__ import annotations

import torch

from ..base.classifier import DomainClassifier
from ..data import TASKS
from .edges import edge_f1
from .foreground import foreground_iou
from .labels import label_agreement
from .layout import layout_agreement
from .style import style_agreement

PRIMARY_SCORE = {"sketch": "edge_f1", "segmentation": "foreground_iou", "layout": "box_f1",
                 "style": "style_agreement"}


def condition_fidelity(task: str, images: torch.Tensor, conditions: torch.Tensor, captions: list[str],
                       classifier: DomainClassifier | None = None) -> dict[str, torch.Tensor]:
    """Per-image scores `(B,)` of images in [-1, 1] against their conditions in [0, 1] and captions."""
    if task not in TASKS:
        raise ValueError(f"no condition-fidelity metric for task {task!r}; tasks are {', '.join(TASKS)}")
    scores = {}
    if task == "sketch":
        scores["edge_f1"] = edge_f1(images, conditions)
    elif task == "segmentation":
        scores["foreground_iou"] = foreground_iou(images, conditions)
    elif task == "layout":
        scores.update(layout_agreement(images, conditions))
    elif task == "style":
        scores["style_agreement"] = style_agreement(images)
    if classifier is not None:
        scores["label_agreement"] = label_agreement(classifier, images, captions)
    return scores

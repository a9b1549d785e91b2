"""The domain registry: every dataset the package can train on, named once.

A domain is a name ("shapes", "digits") or "folder:PATH". The registry says which tasks each
offers, how to build its dataset, and, for the built-in domains, which caption phrases its
domain classifier reads back from images. Everything that needs a list of domains (options,
pretraining, the study, classifiers) asks here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch.utils.data import Dataset

from .digits import DigitsDataset, digit_labels
from .folder import FolderDataset
from .shapes import ShapesDataset, shape_labels


@dataclass(frozen=True)
class Domain:
    """One kind of data: its tasks and, when it is built in, the labels its classifier reads."""

    name: str
    tasks: tuple[str, ...]
    dataset: type[Dataset]
    caption_labels: Callable[[], list[str]] | None = None  # classifier labels: caption phrases
    multi_label: bool = False  # several labels per image (shapes), or exactly one (digits)
    needs_path: bool = False  # folder:PATH

    @property
    def built_in(self) -> bool:
        return not self.needs_path


DOMAINS: dict[str, Domain] = {
    "shapes": Domain("shapes", ShapesDataset.TASKS, ShapesDataset, shape_labels, multi_label=True),
    "digits": Domain("digits", DigitsDataset.TASKS, DigitsDataset, digit_labels, multi_label=False),
    "folder": Domain("folder", FolderDataset.TASKS, FolderDataset, needs_path=True),
}
BUILT_IN_DOMAINS: tuple[str, ...] = tuple(name for name, domain in DOMAINS.items() if domain.built_in)


def parse_domain(spec: str) -> tuple[Domain, str | None]:
    """'shapes' -> (shapes, None); 'folder:PATH' -> (folder, 'PATH'); ValueError otherwise."""
    name, colon, path = spec.partition(":")
    domain = DOMAINS.get(name)
    if domain is None or domain.needs_path != bool(colon and path):
        known = ", ".join(f"'{n}:PATH'" if d.needs_path else f"'{n}'" for n, d in DOMAINS.items())
        raise ValueError(f"unknown domain {spec!r}; known domains: {known}")
    return domain, path or None


def domain_name(spec: str) -> str:
    """The registry name of a domain spec: 'folder' for 'folder:PATH'."""
    return parse_domain(spec)[0].name


def check_task(spec: str, task: str) -> None:
    """ValueError unless the domain offers `task`, naming the tasks it has."""
    domain, _ = parse_domain(spec)
    if task not in domain.tasks:
        raise ValueError(f"domain {domain.name!r} has no task {task!r}; its tasks are {', '.join(domain.tasks)}")

"""The data-efficiency study: every method at every number of training pairs N, seed and domain.

For each domain (the sketch task), number of training pairs N, seed and method, the method
is fitted on the first N training pairs of that seed's split, then samples the same held-out
test conditions from the same DDIM noise. Each cell measures a distribution distance to the
real test images (FID with Inception weights, otherwise the domain Fréchet distance on the
base's classifier features), KID, and condition fidelity, each with its sample size and a
bootstrap interval, plus the method's trainable parameters and its step time relative to a
forward pass of the frozen base.

Rows are appended to `results-<domain>.csv` as each cell finishes, so a killed study resumes
where it stopped (finished cells are skipped), and the domains may run as separate processes
into one folder. `summary_table` and `viz.figures.plot_data_efficiency` read every CSV of the
folder back.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..base import FrozenBase, TrainingPairs
from ..data import BUILT_IN_DOMAINS, make_dataset
from ..metrics import (
    Estimate,
    FeatureSpace,
    condition_fidelity,
    distribution_distances,
    distribution_features,
    mean_estimate,
)
from ..steering import PRESETS
from ..training import FitOptions
from ..utils.options import option
from .methods import METHODS, fit_method

COLUMNS = ["domain", "task", "n_train", "seed", "method", "metric", "value", "low", "high", "confidence",
           "n", "trainable_parameters", "step_time_ratio"]


@dataclass
class StudyOptions:
    study: str = option(help="which study", choices=("data-efficiency",), positional=True)
    out: Path = option(Path("runs/study-data-efficiency"), "study folder (CSVs, figure, table, options.json)")
    domains: list[str] = option(["shapes", "digits"], "domains, each with the sketch task", choices=BUILT_IN_DOMAINS)
    n_train: list[int] = option([10, 40, 160], "training pairs per cell", low=1, flags=("--n",))
    seeds: list[int] = option([0, 1, 2], "seeds: training subset, initialisation and noise", low=0)
    methods: list[str] = option(list(METHODS), "methods to fit", choices=METHODS)
    bases: list[str] = option([], "use this base for a domain, DOMAIN=PATH (repeatable; default: the "
                              "embedded base of that name)", flags=("--base",), repeat=True)
    steps: int = option(300, "training steps of every method", low=1)
    batch_size: int = option(8, "pairs per training step", low=1)
    preset: str = option("lite", "BPS adapter size", choices=PRESETS)
    eval_samples: int = option(64, "test conditions per cell", low=1)
    ddim_steps: int = option(20, "DDIM steps of the evaluation samples", low=1)
    inception_weights: Path | None = option(None, "pytorch-fid Inception weights: report FID")
    bootstrap_resamples: int = option(1000, "bootstrap resamples of every interval", low=1)

    def validate(self) -> None:
        malformed = [item for item in self.bases if "=" not in item]
        if malformed:
            raise ValueError(f"--base must look like DOMAIN=PATH; got {malformed}")
        extra = sorted(set(self.base_paths) - set(self.domains))
        if extra:
            raise ValueError(f"--base names domains not in --domains: {extra}")

    @property
    def base_paths(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.bases)

    def fit_options(self, domain: str, n_train: int, seed: int) -> FitOptions:
        """The fit options of one cell (every method's, but for `deterministic`)."""
        return FitOptions(domain=domain, task="sketch", n_train=n_train, seed=seed, steps=self.steps,
                          batch_size=self.batch_size, preset=self.preset)

    def results(self, domain: str) -> Path:
        return self.out / f"results-{domain}.csv"


def finished_cells(path: Path) -> set[tuple[str, int, int, str]]:
    if not path.is_file():
        return set()
    with open(path, newline="") as handle:
        return {(row["domain"], int(row["n_train"]), int(row["seed"]), row["method"])
                for row in csv.DictReader(handle)}


def append_rows(path: Path, rows: list[dict]) -> None:
    """Append one cell's rows; the header is written with the first cell."""
    new = not path.is_file()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerows(rows)
        handle.flush()


def frozen_forward_seconds(base: FrozenBase, pairs: TrainingPairs, batch_size: int, repeats: int = 5) -> float:
    """Median time of one forward pass of the frozen base at the training batch size."""
    generator = torch.Generator().manual_seed(0)
    batch = pairs.noisy_batch(base, pairs.draw_indices(batch_size, generator), generator)
    times = []
    with torch.no_grad():
        for _ in range(repeats + 1):  # the first call warms up
            start = time.perf_counter()
            base.predict_noise(batch.noisy, batch.timesteps, batch.caption_states)
            times.append(time.perf_counter() - start)
    return float(torch.tensor(times[1:]).median())


def sample_size(estimate: Estimate) -> str:
    """'64', or '64 vs 64' (real vs generated images) for a distance between two image sets."""
    return str(estimate.n) if isinstance(estimate.n, int) else " vs ".join(map(str, estimate.n))


def measure(options: StudyOptions, base: FrozenBase, space: FeatureSpace, task: str, real: torch.Tensor,
            images: torch.Tensor, conditions: torch.Tensor, captions: list[str]) -> dict[str, Estimate]:
    """Every metric of one cell, each with its sample size and bootstrap interval."""
    resamples = options.bootstrap_resamples
    results = distribution_distances(space, real, images, resamples=resamples)
    fidelity = condition_fidelity(task, images, conditions, captions, classifier=base.classifier)
    results.update({name: mean_estimate(scores, resamples=resamples) for name, scores in fidelity.items()})
    return results


def run_domain(options: StudyOptions, domain: str, progress: bool) -> None:
    task, done = "sketch", finished_cells(options.results(domain))
    cells = [(n, seed, method) for seed, n, method in product(options.seeds, options.n_train, options.methods)
             if (domain, n, seed, method) not in done]
    if not cells:
        return
    base = FrozenBase.from_pretrained(options.base_paths.get(domain, domain))
    space = distribution_features(base, options.inception_weights)
    with tqdm(total=len(cells), desc=f"study {domain}", disable=not progress) as bar:
        for seed in options.seeds:
            todo = [(n, method) for n, s, method in cells if s == seed]
            if not todo:
                continue
            # the held-out conditions and the real images every method is compared with
            test = make_dataset(domain, task, split="test", length=options.eval_samples, seed=seed,
                                resolution=base.resolution)
            real, conditions, captions = zip(*(test[i] for i in range(len(test))))
            real, conditions = torch.stack(real), torch.stack(conditions)
            train = make_dataset(domain, task, split="train", length=max(options.n_train), seed=seed,
                                 resolution=base.resolution)
            for n in sorted({n for n, _ in todo}):
                pairs = TrainingPairs.encode(base, train, n, name=f"{domain}/{task}")
                frozen = frozen_forward_seconds(base, pairs, options.batch_size)
                for method in [m for m_n, m in todo if m_n == n]:
                    fitted = fit_method(method, base, pairs, options.fit_options(domain, n, seed), progress=progress)
                    images = fitted.sample(base, conditions, list(captions), steps=options.ddim_steps, seed=seed)
                    metrics = measure(options, base, space, task, real, images, conditions, list(captions))
                    ratio = None if fitted.seconds_per_step is None else fitted.seconds_per_step / frozen
                    append_rows(options.results(domain), [
                        {"domain": domain, "task": task, "n_train": n, "seed": seed, "method": method,
                         "metric": name, **estimate.to_dict(), "n": sample_size(estimate),
                         "trainable_parameters": fitted.trainable_parameters,
                         "step_time_ratio": "" if ratio is None else f"{ratio:.3f}"}
                        for name, estimate in metrics.items()])
                    bar.update()


def read_results(folder: Path) -> list[dict]:
    """The rows of every domain's CSV in the study folder."""
    rows = []
    for path in sorted(Path(folder).glob("results-*.csv")):
        with open(path, newline="") as handle:
            rows.extend(csv.DictReader(handle))
    return rows


def summary_table(rows: list[dict]) -> str:
    """A markdown table: every metric's mean ± sd over seeds, per domain, N and method."""
    groups: dict[tuple, list[float]] = {}
    for row in rows:
        key = (row["domain"], int(row["n_train"]), row["method"], row["metric"])
        groups.setdefault(key, []).append(float(row["value"]))
    metrics = sorted({key[3] for key in groups})
    header = ["domain", "N", "method", *metrics, "seeds"]
    note = "Mean ± sd over seeds (one cell per seed; each cell's n and bootstrap interval are in the CSVs)."
    lines = [note, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    order = list(METHODS)
    for domain, n, method in sorted({key[:3] for key in groups}, key=lambda k: (k[0], k[1], order.index(k[2]))):
        cells = []
        for metric in metrics:
            values = torch.tensor(groups.get((domain, n, method, metric), [float("nan")]))
            spread = f" ± {values.std().item():.3g}" if len(values) > 1 else ""
            cells.append(f"{values.mean().item():.3g}{spread}")
        seeds = len(groups[(domain, n, method, metrics[0])])
        lines.append(f"| {domain} | {n} | {method} | " + " | ".join(cells) + f" | {seeds} |")
    return "\n".join(lines) + "\n"


def data_efficiency(options: StudyOptions, progress: bool = True) -> list[dict]:
    """Run (or resume) the grid into `options.out`; return every row of the folder's CSVs."""
    options.out.mkdir(parents=True, exist_ok=True)
    for domain in options.domains:
        run_domain(options, domain, progress)
    return read_results(options.out)

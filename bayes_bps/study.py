"""The data-efficiency study: `python -m bayes_bps.study data-efficiency`.

    python -m bayes_bps.study data-efficiency                       # the full grid (hours on 2 CPU cores)
    python -m bayes_bps.study data-efficiency --domains digits --seeds 0 --n 10
    python -m bayes_bps.study data-efficiency --inception-weights pt_inception.pth   # real FID

For each domain (the sketch task), number of training pairs N, seed and method, the method
is fitted on the first N training pairs of that seed's split, then samples the same held-out
test conditions from the same DDIM noise. Each cell measures a distribution distance to the
real test images (FID with Inception weights, otherwise the domain Fréchet distance on the
base's classifier features), KID, and condition fidelity, each with its sample size and a
bootstrap interval, plus the method's trainable parameters and its step time relative to a
forward pass of the frozen base.

Rows are appended to `results-<domain>.csv` as each cell finishes, so a killed study resumes
where it stopped (finished cells are skipped), and the domains may run as separate processes
into one folder. `data_efficiency.png`/`.pdf` and `table.md` are rebuilt from every CSV in the
folder at the end of each invocation.
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import dataclass, field, replace
from itertools import product
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .data import make_dataset
from .fit_options import FitOptions
from .methods import METHODS, fit_method
from .metrics import (
    Estimate,
    FeatureSpace,
    condition_fidelity,
    distribution_distances,
    distribution_features,
    mean_estimate,
)
from .pairs import TrainingPairs
from .plots import plot_data_efficiency
from .prior import FrozenPrior

COLUMNS = ["domain", "task", "n_train", "seed", "method", "metric", "value", "low", "high", "confidence",
           "n", "trainable_parameters", "step_time_ratio"]


@dataclass
class StudyOptions:
    out: Path = Path("runs/study-data-efficiency")
    domains: list[str] = field(default_factory=lambda: ["shapes", "digits"])
    n_train: list[int] = field(default_factory=lambda: [10, 40, 160])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    bases: dict[str, str] = field(default_factory=dict)  # domain -> base; default: the embedded one
    fit: FitOptions = field(default_factory=lambda: FitOptions(steps=300))
    eval_samples: int = 64
    ddim_steps: int = 20
    inception_weights: Path | None = None
    bootstrap_resamples: int = 1000

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


def frozen_forward_seconds(prior: FrozenPrior, pairs: TrainingPairs, batch_size: int, repeats: int = 5) -> float:
    """Median time of one forward pass of the frozen base at the training batch size."""
    generator = torch.Generator().manual_seed(0)
    batch = pairs.noisy_batch(prior, pairs.draw_indices(batch_size, generator), generator)
    times = []
    with torch.no_grad():
        for _ in range(repeats + 1):  # the first call warms up
            start = time.perf_counter()
            prior.predict_noise(batch.noisy, batch.timesteps, batch.caption_states)
            times.append(time.perf_counter() - start)
    return float(torch.tensor(times[1:]).median())


def sample_size(estimate: Estimate) -> str:
    """'64', or '64 vs 64' (real vs generated images) for a distance between two image sets."""
    return str(estimate.n) if isinstance(estimate.n, int) else " vs ".join(map(str, estimate.n))


def measure(options: StudyOptions, prior: FrozenPrior, space: FeatureSpace, task: str, real: torch.Tensor,
            images: torch.Tensor, conditions: torch.Tensor, captions: list[str]) -> dict[str, Estimate]:
    """Every metric of one cell, each with its sample size and bootstrap interval."""
    resamples = options.bootstrap_resamples
    results = distribution_distances(space, real, images, resamples=resamples)
    fidelity = condition_fidelity(task, images, conditions, captions, classifier=prior.classifier)
    results.update({name: mean_estimate(scores, resamples=resamples) for name, scores in fidelity.items()})
    return results


def run_domain(options: StudyOptions, domain: str, progress: bool) -> None:
    task, done = "sketch", finished_cells(options.results(domain))
    cells = [(n, seed, method) for seed, n, method in product(options.seeds, options.n_train, options.methods)
             if (domain, n, seed, method) not in done]
    if not cells:
        return
    prior = FrozenPrior.from_pretrained(options.bases.get(domain, domain))
    space = distribution_features(prior, options.inception_weights)
    with tqdm(total=len(cells), desc=f"study {domain}", disable=not progress) as bar:
        for seed in options.seeds:
            todo = [(n, method) for n, s, method in cells if s == seed]
            if not todo:
                continue
            # the held-out conditions and the real images every method is compared with
            test = make_dataset(domain, task, split="test", length=options.eval_samples, seed=seed,
                                resolution=prior.resolution)
            real, conditions, captions = zip(*(test[i] for i in range(len(test))))
            real, conditions = torch.stack(real), torch.stack(conditions)
            train = make_dataset(domain, task, split="train", length=max(options.n_train), seed=seed,
                                 resolution=prior.resolution)
            for n in sorted({n for n, _ in todo}):
                pairs = TrainingPairs.encode(prior, train, n, name=f"{domain}/{task}")
                frozen = frozen_forward_seconds(prior, pairs, options.fit.batch_size)
                for method in [m for m_n, m in todo if m_n == n]:
                    fit = replace(options.fit, domain=domain, task=task, n_train=n, seed=seed)
                    fitted = fit_method(method, prior, pairs, fit, progress=progress)
                    images = fitted.sample(prior, conditions, list(captions), steps=options.ddim_steps, seed=seed)
                    metrics = measure(options, prior, space, task, real, images, conditions, list(captions))
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
    for path in sorted(folder.glob("results-*.csv")):
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
    for domain, n, method in sorted({key[:3] for key in groups}, key=lambda k: (k[0], k[1], METHODS.index(k[2]))):
        cells = []
        for metric in metrics:
            values = torch.tensor(groups.get((domain, n, method, metric), [float("nan")]))
            spread = f" ± {values.std().item():.3g}" if len(values) > 1 else ""
            cells.append(f"{values.mean().item():.3g}{spread}")
        seeds = len(groups[(domain, n, method, metrics[0])])
        lines.append(f"| {domain} | {n} | {method} | " + " | ".join(cells) + f" | {seeds} |")
    return "\n".join(lines) + "\n"


def data_efficiency(options: StudyOptions, progress: bool = True) -> Path:
    """Run (or resume) the grid, then rebuild the table and the figure from the CSV."""
    options.out.mkdir(parents=True, exist_ok=True)
    for domain in options.domains:
        run_domain(options, domain, progress)
    rows = read_results(options.out)
    (options.out / "table.md").write_text(summary_table(rows))
    plot_data_efficiency(rows, options.out / "data_efficiency.png")
    return options.out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bayes_bps.study", description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=["data-efficiency"])
    defaults = StudyOptions()
    parser.add_argument("--out", type=Path, default=defaults.out, help="study folder (results.csv, figure, table)")
    parser.add_argument("--domains", nargs="+", default=defaults.domains, choices=["shapes", "digits"])
    parser.add_argument("--n", nargs="+", type=int, default=defaults.n_train, help="training pairs per cell")
    parser.add_argument("--seeds", nargs="+", type=int, default=defaults.seeds)
    parser.add_argument("--methods", nargs="+", default=defaults.methods, choices=METHODS)
    parser.add_argument("--base", action="append", default=[], metavar="DOMAIN=PATH",
                        help="use this base for a domain (default: the embedded base of that name)")
    parser.add_argument("--steps", type=int, default=defaults.fit.steps, help="training steps of every method")
    parser.add_argument("--batch-size", type=int, default=defaults.fit.batch_size)
    parser.add_argument("--preset", default=defaults.fit.preset, help="BPS adapter size")
    parser.add_argument("--eval-samples", type=int, default=defaults.eval_samples, help="test conditions per cell")
    parser.add_argument("--ddim-steps", type=int, default=defaults.ddim_steps)
    parser.add_argument("--inception-weights", type=Path, help="pytorch-fid Inception weights: report FID")
    parser.add_argument("--bootstrap-resamples", type=int, default=defaults.bootstrap_resamples)
    args = parser.parse_args(argv)
    bases = dict(item.split("=", 1) for item in args.base)
    if set(bases) - set(args.domains):
        parser.error(f"--base names domains not in --domains: {sorted(set(bases) - set(args.domains))}")
    positive = {"--n": min(args.n), "--steps": args.steps, "--batch-size": args.batch_size,
                "--eval-samples": args.eval_samples, "--ddim-steps": args.ddim_steps,
                "--bootstrap-resamples": args.bootstrap_resamples}
    for flag, value in positive.items():
        if value < 1:
            parser.error(f"{flag} must be >= 1; got {value}")
    fit = replace(FitOptions(), steps=args.steps, batch_size=args.batch_size, preset=args.preset).check()
    options = StudyOptions(out=args.out, domains=args.domains, n_train=args.n, seeds=args.seeds,
                           methods=args.methods, bases=bases, fit=fit, eval_samples=args.eval_samples,
                           ddim_steps=args.ddim_steps, inception_weights=args.inception_weights,
                           bootstrap_resamples=args.bootstrap_resamples)
    print(f"wrote {data_efficiency(options)}")


if __name__ == "__main__":
    main()

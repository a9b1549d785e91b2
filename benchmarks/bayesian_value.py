"""What the Bayesian layer buys, measured (#15): writes benchmarks/bayesian_value/results.json.

    python benchmarks/bayesian_value.py --conditions 256 --draws 4

Measured so far: **failure detection** (`experiments.failure_detection`). The default Bayesian
fit (runs/shapes-sketch-bayes-n40-seed0) and a deterministic BPS fit on the same 40 pairs and
seed (runs/shapes-sketch-det-n40-seed0) are fitted where missing. On the first `--conditions`
sketches of the test split, each condition's deployed posterior-predictive sample fails when
its edge F1 is below 0.5; the posterior-predictive spread of `--draws` other samples is scored
against that, beside two nulls (the deterministic run's spread across noise, and the spread
under prior draws of the coefficients), all from the same noises. Per-condition scores go to
detection.csv; results.json keeps every key of the issue, null where not measured yet.
`--summarize-only` recomputes the statistics from detection.csv (seconds), also at the stricter
failure thresholds of `--extra-thresholds`, where failures are less rare.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from bayes_bps.experiments.failure_detection import FAILURE_THRESHOLD, detection_table, summarize
from bayes_bps.experiments.held_out import held_out
from bayes_bps.training import FitOptions, load_run
from bayes_bps.utils.files import write_text_atomic
from bayes_bps.viz.figure_runs import FULL_RUN, ensure_run

OUT = Path(__file__).resolve().parent / "bayesian_value"
KEYS = ["auroc", "auroc_null_deterministic", "auroc_null_prior", "n_conditions",
        "pruned_flops_fraction", "pruned_fidelity_loss", "norm_ranking_fidelity_loss",
        "eb_profile_delta", "eb_profile_low", "eb_profile_high",
        "skipped_steps_fraction", "skipped_fidelity_loss", "cutoff_best_fidelity_loss",
        "bayes_heads_delta_n10"]


def detection_samples(args) -> pd.DataFrame:
    """The two fits (made where missing) and the per-condition detection table, saved as CSV."""
    bayesian_options = FitOptions(out=str(args.runs / FULL_RUN.name))
    deterministic_options = replace(bayesian_options, deterministic=True,
                                    out=str(args.runs / FULL_RUN.name.replace("-bayes-", "-det-")))
    bayesian = load_run(ensure_run(bayesian_options), device="cpu")
    deterministic = load_run(ensure_run(deterministic_options), device="cpu")
    conditions = held_out(bayesian.options.domain, bayesian.options.task, "test", args.conditions,
                          bayesian.base.resolution)
    start = time.perf_counter()
    table = detection_table(bayesian, deterministic, conditions, args.draws, steps=args.ddim_steps, seed=args.seed)
    print(f"sampled {len(table)} conditions x (1 + 3 x {args.draws}) images in {time.perf_counter() - start:.0f} s")
    table.to_csv(args.out / "detection.csv", index=False)
    return table


def failure_detection(table: pd.DataFrame, args) -> dict:
    """AUROCs at the task's threshold (the issue's keys) and at the extra thresholds (detection.json)."""
    summaries = {}
    for threshold in [FAILURE_THRESHOLD["sketch"], *args.extra_thresholds]:
        summary = summarize(table.assign(failed=table["fidelity"] < threshold), resamples=args.resamples,
                            seed=args.seed)
        summaries[f"{threshold:g}"] = summary.to_dict()
        print(f"{summary.n_failures} failures of {summary.n_conditions} (edge F1 < {threshold:g})")
        for name, value in summary.auroc.items():
            print(f"  AUROC {name:28s} {value:.3f}")
        for name, (value, low, high) in summary.differences.items():
            print(f"  posterior - null, {name:28s} {value:+.3f} [{low:+.3f}, {high:+.3f}]")
    write_text_atomic(args.out / "detection.json", json.dumps(
        {"by_threshold": summaries, "draws": args.draws, "ddim_steps": args.ddim_steps, "seed": args.seed},
        indent=2) + "\n")
    main_summary = summaries[f"{FAILURE_THRESHOLD['sketch']:g}"]
    return {"auroc": main_summary["auroc"]["posterior_spread"],
            "auroc_null_deterministic": main_summary["auroc"]["deterministic_spread"],
            "auroc_null_prior": main_summary["auroc"]["prior_spread"], "n_conditions": main_summary["n_conditions"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conditions", type=int, default=256, help="test conditions scored")
    parser.add_argument("--draws", type=int, default=4, help="images per condition of every detector (K)")
    parser.add_argument("--ddim-steps", type=int, default=20)
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples over conditions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="where the two fits are (or go)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--extra-thresholds", type=float, nargs="*", default=[0.7, 0.8],
                        help="stricter edge-F1 failure thresholds, reported beside the task's 0.5")
    parser.add_argument("--summarize-only", action="store_true", help="recompute the statistics from detection.csv")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    results = dict.fromkeys(KEYS) | (json.loads(path.read_text()) if path.is_file() else {})
    table = pd.read_csv(args.out / "detection.csv") if args.summarize_only else detection_samples(args)
    results |= failure_detection(table, args)
    write_text_atomic(path, json.dumps({key: results[key] for key in KEYS}, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""What the Bayesian layer buys, measured (#15): writes benchmarks/bayesian_value/results.json.

    python benchmarks/bayesian_value.py --conditions 256 --draws 4

The default Bayesian fit (runs/shapes-sketch-bayes-n40-seed0) and a deterministic BPS fit on
the same 40 pairs and seed (runs/shapes-sketch-det-n40-seed0) are fitted where missing. Measured
so far (`--items`, all by default):

- **detection** (`experiments.failure_detection`): on the first `--conditions` sketches of the
  test split, each condition's deployed posterior-predictive sample fails when its edge F1 is
  below 0.5; the posterior-predictive spread of `--draws` other samples is scored against that,
  beside two nulls (the deterministic run's spread across noise, and the spread under prior
  draws of the coefficients), all from the same noises. Per-condition scores go to
  detection.csv, the statistics also at the stricter thresholds `--extra-thresholds` to
  detection.json.
- **gates** (`experiments.time_gates`): the posterior gate (skip the adapter on the DDIM steps
  where every port's weight is, with posterior probability `--gate-level`, below
  `--off-fraction` of its official constant) against one cutoff t0 swept over `--cutoffs`,
  the best chosen on `--validation-conditions` validation sketches within a 0.01 loss and
  scored on the test ones. Per-condition fidelities go to gates_{validation,test}.csv, the
  summaries and the posterior's weight profiles to gates.json.
- **pruning** (`experiments.pruning`): the Bayesian run prunes its ports in the posterior's
  ranking (the 5 % quantile of each port's steering size) and, as the control, in the reverse
  order; the deterministic twin prunes in the head-norm ranking. Each drops k of
  `--prune-counts` ports, the most FLOPs within a `--prune-tolerance` loss chosen on
  `--prune-validation-conditions` validation sketches and scored on `--prune-conditions` test
  ones; steered/frozen forward times are measured side by side. pruning_{validation,test}.csv
  and pruning.json.
- **profiles** (`experiments.eb_profiles`): deterministic BPS refitted with a Bayesian grid
  cell's posterior-mean fusion constants, paired with the grid's deterministic cell (official
  constants) on the same pairs, seed, test conditions and noise: every task at N = 40 on
  shapes, seeds `--profile-seeds`, and sketch's profiles transferred to N = 10, N = 160 and to
  digits. It refits only where the grid has finished the cells it pairs with (the study folder
  `--study`), so it is re-run as the grid advances. eb_profiles.json and eb_profiles.png.
- **heads** (`experiments.small_n`): at N = 10, Bayesian port heads (regularised by the
  likelihood temperature λ) against deterministic BPS regularised by weight decay and early
  stopping, each searched on validation (strength × checkpoint) and its winner refitted on
  `SmallN.seeds` and scored on the test sketches, paired.
  Resumable CSVs in small_n/ (`--heads-methods` splits the two methods over two processes);
  the search, the winners and the paired difference go to heads.json. Hours of CPU.

results.json keeps every key of the issue, null where not measured yet. `--summarize-only`
recomputes the statistics from the CSVs (seconds).
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from timing import interleaved_medians  # this folder's side-by-side timer

from bayes_bps.base import FrozenBase
from bayes_bps.bayes import posterior_draws
from bayes_bps.data import TASKS
from bayes_bps.experiments import eb_profiles, pruning, small_n, time_gates
from bayes_bps.experiments.eb_profiles import Cell
from bayes_bps.experiments.failure_detection import FAILURE_THRESHOLD, detection_table, summarize
from bayes_bps.experiments.held_out import held_out
from bayes_bps.experiments.options import StudyOptions
from bayes_bps.experiments.recipes import read_settings
from bayes_bps.experiments.records import read_rows, results_path
from bayes_bps.sampling import steered_sample_images
from bayes_bps.steering import profile_weights, steer
from bayes_bps.training import FitOptions, load_run
from bayes_bps.utils.files import write_text_atomic
from bayes_bps.utils.seeding import seeded
from bayes_bps.viz.figure_runs import FULL_RUN, ensure_run
from bayes_bps.viz.figures import plot_profiles_by_task, save_figure

OUT = Path(__file__).resolve().parent / "bayesian_value"
KEYS = ["auroc", "auroc_null_deterministic", "auroc_null_prior", "n_conditions",
        "pruned_flops_fraction", "pruned_fidelity_loss", "norm_ranking_fidelity_loss",
        "eb_profile_delta", "eb_profile_low", "eb_profile_high",
        "skipped_steps_fraction", "skipped_fidelity_loss", "cutoff_best_fidelity_loss",
        "bayes_heads_delta_n10"]


def fitted(args, deterministic: bool = False):
    """The default Bayesian fit, or its deterministic twin on the same pairs and seed, fitted where missing."""
    options = FitOptions(out=str(args.runs / FULL_RUN.name))
    if deterministic:
        options = replace(options, deterministic=True, out=str(args.runs / FULL_RUN.name.replace("-bayes-", "-det-")))
    return load_run(ensure_run(options), device="cpu")


def detection_samples(args) -> pd.DataFrame:
    """The per-condition detection table of the two fits, saved as CSV."""
    bayesian, deterministic = fitted(args), fitted(args, deterministic=True)
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


def gate_samples(args) -> tuple[dict[str, pd.DataFrame], dict]:
    """Every gate's per-condition fidelity on validation and test sketches (saved as CSV), and
    what the posterior says: its gate, and each port's relative weight over the DDIM steps."""
    run = fitted(args)
    model, timesteps = run.objective.model, time_gates.ddim_timesteps(run.base, args.ddim_steps)
    with seeded(args.seed):
        draws = posterior_draws(run.objective.guide, 2000)
    steer_from = time_gates.posterior_gate(model, draws, timesteps, off_fraction=args.off_fraction,
                                           level=args.gate_level)
    gates = {time_gates.FULL: 0, **{f"t0={cutoff}": cutoff for cutoff in args.cutoffs},
             time_gates.POSTERIOR: steer_from}
    tables = {}
    for split, count in (("validation", args.validation_conditions), ("test", args.conditions)):
        conditions = held_out(run.options.domain, run.options.task, split, count, run.base.resolution)
        tables[split] = time_gates.gate_table(run, conditions, gates, steps=args.ddim_steps, seed=args.seed)
        tables[split].to_csv(args.out / f"gates_{split}.csv", index=False)
    relative = time_gates.relative_weights(model, draws, timesteps)  # (S, T, P)
    quantiles = {name: np.quantile(relative.numpy(), q, axis=0).T.round(4).tolist()  # (P, T)
                 for name, q in (("low", 0.05), ("median", 0.5), ("high", 0.95))}
    posterior = {"steer_from": steer_from, "timesteps": timesteps.tolist(), "ports": model.port_names,
                 "relative_weight": quantiles, "timing": gate_timing(run, gates, args)}
    return tables, posterior


@torch.no_grad()
def gate_timing(run, gates: dict[str, int], args) -> dict[str, float]:
    """Seconds of one guided DDIM loop over 16 test conditions per gate, interleaved (medians of 3)."""
    conditions = held_out(run.options.domain, run.options.task, "test", 16, run.base.resolution)
    model = run.objective.model
    weights = model.weights_for(model.prior_median())  # the timing does not depend on the draw
    return interleaved_medians({
        name: functools.partial(steered_sample_images, run.base, run.adapter, time_gates.gated(weights, steer_from),
                                conditions.conditions, conditions.captions, steps=args.ddim_steps, progress=False)
        for name, steer_from in gates.items()}, repeats=3)


def time_gate_results(tables: dict[str, pd.DataFrame], posterior: dict, args) -> dict:
    """The posterior gate and the validation-chosen cutoff, both scored on test (the issue's keys)."""
    timesteps = posterior["timesteps"]
    summaries = {split: time_gates.summarize_gates(table, timesteps, resamples=args.resamples, seed=args.seed)
                 for split, table in tables.items()}
    chosen = time_gates.best_cutoff(summaries["validation"], tolerance=args.gate_tolerance)
    for split, summary in summaries.items():
        print(f"time gates, {split} ({summary['fidelity'].size} gates, loss = full - gated edge F1):")
        print(summary.round(4).to_string())
    test = summaries["test"]
    print(f"posterior gate: steer from t = {posterior['steer_from']}; cutoff chosen on validation: {chosen}")
    gates = {"posterior": posterior, "chosen_cutoff": chosen, "tolerance": args.gate_tolerance,
             "off_fraction": args.off_fraction, "level": args.gate_level, "ddim_steps": args.ddim_steps,
             "summaries": {split: summary.reset_index().to_dict(orient="records")
                           for split, summary in summaries.items()}}
    write_text_atomic(args.out / "gates.json", json.dumps(gates, indent=2) + "\n")
    return {"skipped_steps_fraction": float(test.loc[time_gates.POSTERIOR, "skipped_fraction"]),
            "skipped_fidelity_loss": float(test.loc[time_gates.POSTERIOR, "loss"]),
            "cutoff_best_fidelity_loss": float(test.loc[chosen, "loss"])}


def pruning_samples(args) -> tuple[dict[str, pd.DataFrame], dict]:
    """Both runs pruned in their rankings, scored on validation and test sketches (saved as CSV),
    and the rankings with their relevances."""
    bayesian, deterministic = fitted(args), fitted(args, deterministic=True)
    model = bayesian.objective.model
    with seeded(args.seed):
        draws = posterior_draws(bayesian.objective.guide, 2000)
    relevance = {"posterior": pruning.posterior_relevance(
                     model, draws, time_gates.ddim_timesteps(bayesian.base, args.ddim_steps)),
                 "head norm": pruning.head_norm_relevance(deterministic)}
    orders = {name: pruning.ranking(values) for name, values in relevance.items()}
    orders["posterior reversed"] = orders["posterior"][::-1]
    tables = {}
    for split, count in (("validation", args.prune_validation_conditions), ("test", args.prune_conditions)):
        conditions = held_out(bayesian.options.domain, bayesian.options.task, split, count, bayesian.base.resolution)
        per_run = []
        for label, run, names in (("bayesian", bayesian, ["posterior", "posterior reversed"]),
                                  ("deterministic", deterministic, ["head norm"])):
            table = pruning.pruning_table(run, conditions, {name: orders[name] for name in names}, args.prune_counts,
                                          steps=args.ddim_steps, seed=args.seed)
            per_run.append(table.assign(run=label))
        tables[split] = pd.concat(per_run, ignore_index=True)
        tables[split].to_csv(args.out / f"pruning_{split}.csv", index=False)
    facts = {"relevance": relevance, "orders": orders, "timing": pruning_timing(bayesian, orders["posterior"], args)}
    return tables, facts


@torch.no_grad()
def pruning_timing(run, order: list[str], args) -> dict[str, float]:
    """Seconds of the frozen UNet forward on a guided batch of 16 conditions (32 images), and
    steered by the full and by each pruned adapter (the posterior's order), interleaved, medians of 5."""
    conditions = held_out(run.options.domain, run.options.task, "test", 16, run.base.resolution)
    base, model = run.base, run.objective.model
    sample = torch.randn(32, base.unet.config.in_channels, base.resolution, base.resolution)
    states = base.encode_captions([""] * 16 + conditions.captions)
    weights = model.weights_for(model.prior_median())
    settings = {"frozen": None, **{f"posterior k={k}": [name for name in order if name not in order[:k]]
                                   for k in [0, *args.prune_counts]}}

    def forward(kept: list[str] | None) -> None:
        if kept is None:
            base.predict_noise(sample, torch.tensor(500), states)
            return
        with steer(base.unet, functools.partial(run.adapter, ports=kept), conditions.conditions, weights):
            base.predict_noise(sample, torch.tensor(500), states)

    return interleaved_medians({name: functools.partial(forward, kept) for name, kept in settings.items()}, repeats=5)


def pruning_results(tables: dict[str, pd.DataFrame], facts: dict, args) -> dict:
    """The most pruned setting of each ranking within the tolerance on validation, scored on test."""
    summaries = {split: {run: pruning.summarize_pruning(table[table["run"] == run], resamples=args.resamples,
                                                        seed=args.seed)
                         for run in ("bayesian", "deterministic")}
                 for split, table in tables.items()}
    chosen = {order: pruning.most_pruned_within(summaries["validation"][run], order, args.prune_tolerance)
              for run, order in (("bayesian", "posterior"), ("bayesian", "posterior reversed"),
                                 ("deterministic", "head norm"))}
    for split, by_run in summaries.items():
        for run, summary in by_run.items():
            print(f"pruning, {split}, {run} run (loss = unpruned - pruned edge F1):")
            print(summary.round(4).to_string())
    print(f"chosen on validation (most FLOPs removed at a loss <= {args.prune_tolerance:g}): {chosen}")
    print("timing (s):", {name: round(value, 4) for name, value in facts["timing"].items()})
    write_text_atomic(args.out / "pruning.json", json.dumps(
        {**facts, "chosen": chosen, "tolerance": args.prune_tolerance, "ddim_steps": args.ddim_steps,
         "summaries": {split: {run: summary.reset_index().to_dict(orient="records") for run, summary in by_run.items()}
                       for split, by_run in summaries.items()}}, indent=2) + "\n")
    test = summaries["test"]
    posterior = chosen["posterior"]
    if posterior is None:
        return {"pruned_flops_fraction": 0.0, "pruned_fidelity_loss": 0.0, "norm_ranking_fidelity_loss": None}
    same_count = f"head norm k={test['bayesian'].loc[posterior, 'pruned']}"
    norm = test["deterministic"].loc[same_count, "loss"] if same_count in test["deterministic"].index else None
    return {"pruned_flops_fraction": float(test["bayesian"].loc[posterior, "flops_removed"]),
            "pruned_fidelity_loss": float(test["bayesian"].loc[posterior, "loss"]),
            "norm_ranking_fidelity_loss": None if norm is None else float(norm)}


def eb_profile_results(args) -> dict:
    """Item 3: each task's EB refits against the official constants, and sketch's transfers."""
    options = StudyOptions(study="data-efficiency", out=args.study, settings=str(args.settings))
    finished = {(row["domain"], row["task"], int(row["n_train"]), int(row["seed"]), row["method"])
                for domain in ("shapes", "digits") for row in read_rows(results_path(args.study, domain))}

    def has(cell: Cell, method: str) -> bool:
        return (cell.domain, cell.task, cell.n, cell.seed, method) in finished

    comparisons: dict[str, list[tuple[Cell, Cell]]] = {}
    for task in TASKS:
        cells = [Cell("shapes", task, 40, seed) for seed in args.profile_seeds]
        comparisons[f"{task}, N=40"] = [(cell, cell) for cell in cells if has(cell, "bayesian")]
    sketch = [source for source, _ in comparisons["sketch, N=40"]]
    for label, moved in (("N=10", {"n": 10}), ("N=160", {"n": 160}), ("digits, N=40", {"domain": "digits"})):
        comparisons[f"sketch N=40 → {label}"] = [(source, replace(source, **moved)) for source in sketch]
    if not args.summarize_only:
        for source in sketch:  # the grid finished these before it recorded profiles
            eb_profiles.record_profile(options, source)
        for pairs in comparisons.values():
            for source, target in pairs:
                if has(target, "deterministic"):
                    eb_profiles.refit(options, source, target)
    refitted = {(row["source"], row["domain"], row["task"], int(row["n_train"]), int(row["seed"]))
                for domain in ("shapes", "digits") for row in read_rows(eb_profiles.eb_scores_path(args.study, domain))}
    summary = {}
    for label, pairs in comparisons.items():
        done = [(s, t) for s, t in pairs if (str(s), t.domain, t.task, t.n, t.seed) in refitted]
        difference = eb_profiles.eb_against_official(args.study, done, args.resamples) if done else None
        summary[label] = None if difference is None else vars(difference)
        print(f"EB profile − official constants, {label}: {summary[label]}")
    profiles = eb_profiles.recorded_profiles(args.study, "shapes")
    by_task = {task: [profiles[cell] for cell in sorted(profiles, key=lambda c: c.seed)
                      if (cell.task, cell.n) == (task, 40) and cell.seed in args.profile_seeds] for task in TASKS}
    by_task = {task: seeds for task, seeds in by_task.items() if seeds}
    official = profile_weights(FrozenBase.from_pretrained("shapes").unet, "head-heavy")  # the grid's base
    if by_task:
        save_figure(plot_profiles_by_task(by_task, official), args.out, "eb_profiles")
    write_text_atomic(args.out / "eb_profiles.json", json.dumps(
        {"differences": summary, "profiles": by_task, "official": official, "seeds": args.profile_seeds},
        indent=2) + "\n")
    headline = summary["sketch, N=40"]
    complete = headline is not None and headline["seeds"] == len(args.profile_seeds)
    return {"eb_profile_delta": headline["delta"] if complete else None,
            "eb_profile_low": headline["low"] if complete else None,
            "eb_profile_high": headline["high"] if complete else None}


def small_n_heads(args) -> dict:
    """Bayesian heads − regularised deterministic BPS at N = 10 (run or resumed unless
    --summarize-only); the searches, winners and test scores are summarised in heads.json."""
    recipes = read_settings(args.settings, ["deterministic", "bayesian"])
    setup = small_n.SmallN(out=args.out / "small_n", recipes=recipes, ddim_steps=args.ddim_steps,
                           resamples=args.resamples)
    if not args.summarize_only:
        small_n.search(setup, args.heads_methods)
        small_n.test(setup, args.heads_methods)
    summary = {"seeds": list(setup.seeds), "n": setup.n, "checkpoints": list(setup.checkpoints),
               "strengths": dict(setup.strengths), "methods": {}}
    for method, (_, strength_name) in small_n.METHODS.items():
        curves = {}
        for row in read_rows(setup.search_path(method)):
            if row["metric"] == setup.primary:
                curves.setdefault(row["strength"], {})[int(row["step"])] = round(float(row["value"]), 4)
        scores = small_n.test_scores(setup, method, setup.primary)
        summary["methods"][method] = {"strength": strength_name, "validation": curves,
                                      "chosen": small_n.chosen(setup, method),
                                      "test_mean": None if scores is None else float(scores.mean()),
                                      "test_seed_means": None if scores is None else scores.mean(1).round(4).tolist()}
        print(f"{method} ({strength_name}), validation {setup.primary} by checkpoint: {curves}; "
              f"chosen {summary['methods'][method]['chosen']}, test {summary['methods'][method]['test_mean']}")
    difference = small_n.heads_against_regularised(setup)
    summary["heads_minus_regularised"] = None if difference is None else vars(difference)
    print(f"Bayesian heads - regularised deterministic: {summary['heads_minus_regularised']}")
    write_text_atomic(args.out / "heads.json", json.dumps(summary, indent=2) + "\n")
    return {"bayes_heads_delta_n10": None if difference is None else difference.delta}


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
    parser.add_argument("--items", nargs="+", choices=["detection", "gates", "pruning", "profiles", "heads"],
                        default=["detection", "gates", "pruning", "profiles", "heads"])
    parser.add_argument("--validation-conditions", type=int, default=128,
                        help="validation sketches on which the best cutoff is chosen")
    parser.add_argument("--cutoffs", type=int, nargs="+", default=[100, 200, 300, 400, 500, 600, 700],
                        help="the brute-force gates: steer only at t >= t0")
    parser.add_argument("--off-fraction", type=float, default=0.1,
                        help="a port is off where its weight is below this fraction of its official constant")
    parser.add_argument("--gate-level", type=float, default=0.9, help="... with at least this posterior probability")
    parser.add_argument("--gate-tolerance", type=float, default=0.01, help="the loss a chosen cutoff may cost")
    parser.add_argument("--prune-conditions", type=int, default=128, help="test sketches of the pruning")
    parser.add_argument("--prune-validation-conditions", type=int, default=64,
                        help="validation sketches on which each ranking's pruning is chosen")
    parser.add_argument("--prune-counts", type=int, nargs="+", default=[2, 4, 6, 8], help="ports pruned (k)")
    parser.add_argument("--prune-tolerance", type=float, default=0.02, help="the loss a pruning may cost")
    parser.add_argument("--study", type=Path, default=Path("benchmarks/data_efficiency"),
                        help="the data-efficiency study folder whose cells the EB refits pair with")
    parser.add_argument("--profile-seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="seeds of the EB-profile comparison (each a paired grid cell)")
    parser.add_argument("--heads-methods", nargs="+", choices=list(small_n.METHODS), default=list(small_n.METHODS),
                        help="the methods whose search and test this process runs (two processes may share them)")
    parser.add_argument("--settings", type=Path, default=Path("benchmarks/data_efficiency/settings.csv"),
                        help="the study's tuned recipes of the EB refits and the heads comparison")
    parser.add_argument("--summarize-only", action="store_true", help="recompute the statistics from the CSVs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    results = dict.fromkeys(KEYS) | (json.loads(path.read_text()) if path.is_file() else {})
    if "detection" in args.items:
        table = pd.read_csv(args.out / "detection.csv") if args.summarize_only else detection_samples(args)
        results |= failure_detection(table, args)
    if "gates" in args.items:
        if args.summarize_only:
            tables = {split: pd.read_csv(args.out / f"gates_{split}.csv") for split in ("validation", "test")}
            posterior = json.loads((args.out / "gates.json").read_text())["posterior"]
        else:
            tables, posterior = gate_samples(args)
        results |= time_gate_results(tables, posterior, args)
    if "pruning" in args.items:
        if args.summarize_only:
            tables = {split: pd.read_csv(args.out / f"pruning_{split}.csv") for split in ("validation", "test")}
            facts = {key: value for key, value in json.loads((args.out / "pruning.json").read_text()).items()
                     if key in ("relevance", "orders", "timing")}
        else:
            tables, facts = pruning_samples(args)
        results |= pruning_results(tables, facts, args)
    if "profiles" in args.items:
        results |= eb_profile_results(args)
    if "heads" in args.items:
        results |= small_n_heads(args)
    write_text_atomic(path, json.dumps({key: results[key] for key in KEYS}, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

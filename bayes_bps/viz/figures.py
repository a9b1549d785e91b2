"""The paper figures as matplotlib Figures, shared by paper_figures/, the notebooks and the study.

Each `plot_*` takes what `experiments.analysis` (or the study's CSVs, or a posterior's
InferenceData) holds and returns a Figure built without pyplot, so nothing here changes
matplotlib's global state; `save_figure` writes one as PDF and PNG.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.ticker
import torch
from matplotlib.figure import Figure
from torch import Tensor

from ..bayes.diagnostics import HDI_PROB, az
from ..experiments.analysis import BAND, LargeToSmall, Predictive, band
from ..experiments.methods import METHODS
from ..metrics import PRIMARY_SCORE
from ..utils.grids import predictive_grid
from ..utils.images import to_unit

BAND_LABEL = f"{BAND[2] - BAND[0]:.0%}"


def save_figure(figure: Figure, out: Path, name: str) -> list[Path]:
    """Write `out/name.pdf` and `out/name.png`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.pdf", out / f"{name}.png"]
    for path in paths:
        figure.savefig(path, dpi=150, bbox_inches="tight")
    return paths


def _show(axis, image: Tensor, **style) -> None:
    """One (C, H, W) image in [0, 1] (or a map with `style`), without ticks."""
    pixels = image.detach().float().cpu().permute(1, 2, 0).numpy()
    axis.imshow(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels,
                **({"cmap": "gray", "vmin": 0, "vmax": 1} | style), interpolation="nearest")
    axis.set_xticks([])
    axis.set_yticks([])


def plot_port_weights(samples: dict[str, tuple[dict, dict]], port_names: list[str]) -> Figure:
    """Fusion coefficient per port: the head-heavy prior's median and band, against each run's
    posterior median and band. `samples` maps a label (e.g. the temperature) to the
    (posterior, prior) draws of `analysis.coefficient_samples`; the prior is the first's."""
    figure = Figure(figsize=(max(6.0, 0.45 * len(port_names) + 2), 3.8), layout="constrained")
    axis = figure.subplots()
    positions = torch.arange(len(port_names), dtype=torch.double)
    low, median, high = band(next(iter(samples.values()))[1]["fusion"])
    axis.fill_between(positions, low, high, step="mid", color="0.85", label=f"prior, {BAND_LABEL} band")
    axis.step(positions, median, where="mid", color="0.4", label="prior median (head-heavy profile)")
    for k, (label, (posterior, _)) in enumerate(samples.items()):
        low, median, high = band(posterior["fusion"])
        dodge = 0.15 * (k - (len(samples) - 1) / 2)
        axis.errorbar(positions + dodge, median, yerr=[median - low, high - median], fmt="o", capsize=3,
                      label=f"posterior, {label}: median, {BAND_LABEL} interval")
    axis.set_yscale("log")
    axis.set_xticks(positions, port_names, rotation=60, fontsize=8)
    axis.set(xlabel="port (encoder → middle → decoder)", ylabel="fusion coefficient $w_k$ (log scale)",
             title="port weights: head-heavy prior against the posterior")
    axis.legend(fontsize="small")
    return figure


def plot_weight_profiles(timesteps: Tensor, posterior: Tensor, prior: Tensor, port_names: list[str]) -> Figure:
    """Small multiples of w_k(t) = w_k exp(s_k τ(t)), one panel per port, log scale: the posterior
    median and band against the prior band. `posterior` and `prior` are (draws, timesteps,
    ports) from `analysis.weight_curves`."""
    columns = min(5, len(port_names))
    rows = -(-len(port_names) // columns)
    figure = Figure(figsize=(2.4 * columns, 2.0 * rows + 0.6), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
    post, pri = band(posterior), band(prior)
    for k, name in enumerate(port_names):
        axis = axes[k // columns][k % columns]
        axis.fill_between(timesteps, pri[0, :, k], pri[2, :, k], color="0.85", label=f"prior {BAND_LABEL}")
        axis.fill_between(timesteps, post[0, :, k], post[2, :, k], color="C0", alpha=0.35,
                          label=f"posterior {BAND_LABEL}")
        axis.plot(timesteps, post[1, :, k], color="C0", label="posterior median")
        axis.set_title(name, fontsize=9)
        axis.set_yscale("log")
    for axis in axes.flat[len(port_names):]:
        axis.axis("off")
    for axis in axes.flat[max(0, len(port_names) - columns):len(port_names)]:  # the lowest in each column
        axis.xaxis.set_tick_params(labelbottom=True)
        axis.set_xlabel("timestep t (0: clean image)")
    for axis in axes[:, 0]:
        axis.set_ylabel("port weight $w_k(t)$")
    axes[0][0].legend(fontsize="x-small", loc="lower left")
    figure.suptitle("port weights over the noise levels: posterior against the head-heavy prior")
    return figure


def plot_predictive_grid(predictive: Predictive, max_draws: int = 4, max_rows: int = 6) -> Figure:
    """Per sketch (the first `max_rows`): condition | posterior draws | posterior mean | per-pixel
    posterior sd, the sd on one colour scale for all rows (image units: pixels span [-1, 1])."""
    count = min(max_rows, len(predictive.captions))
    mean, sd = predictive.summary
    columns = {f"draw {k + 1}": draw[:count] for k, draw in enumerate(predictive.draws[:max_draws])}
    return predictive_grid(predictive.conditions[:count], predictive.captions[:count],
                           {**columns, "posterior mean": mean[:count]}, sd[:count], cell_inches=1.3)


def plot_large_to_small(result: LargeToSmall, columns: int = 8) -> Figure:
    """Top: base samples for the caption (the large space). Middle: posterior-predictive samples
    for one of its sketches (the small space). Bottom: how many satisfy the sketch, and diversity."""
    shown = min(columns, len(result.base))
    figure = Figure(figsize=(1.1 * (shown + 1) + 1, 5.2))
    grid = figure.add_gridspec(3, shown + 1, height_ratios=[1, 1, 1.3])
    rows = [("large space:\nbase, caption\nonly (no sketch)", None, result.base),
            ("small space:\nsteered by\nthis sketch", result.sketch, result.steered)]
    for r, (label, condition, images) in enumerate(rows):
        first = figure.add_subplot(grid[r, 0])
        if condition is None:
            first.axis("off")
            first.text(0.5, 0.5, label, ha="center", va="center", fontsize=8)
        else:
            _show(first, condition)
            first.set_ylabel(label, fontsize=8)
        for k in range(shown):
            axis = figure.add_subplot(grid[r, k + 1])
            _show(axis, to_unit(images[k]))
            if r == 0:
                axis.set_title(f"sample {k + 1}", fontsize=8)
    numbers = result.statistics
    panels = [("fraction_satisfied", "fraction with edge F1 > 0.5"), ("feature_spread", "feature spread"),
              ("label_entropy_bits", "label entropy (bits)")]
    panels = [panel for panel in panels if panel[0] in numbers]
    bars = grid[2, :].subgridspec(1, len(panels), wspace=0.6)
    for j, (column, label) in enumerate(panels):
        axis = figure.add_subplot(bars[0, j])
        axis.bar(["large", "small"], numbers[column].to_numpy(), color=["0.6", "C0"])
        axis.set_ylabel(label, fontsize=8)
        axis.tick_params(labelsize=8)
    figure.suptitle(f"large to small probability space: \"{result.caption}\" (n = {len(result.base)} each)",
                    fontsize=10)
    return figure


def plot_uncertainty_vs_error(table, correlations: dict[str, float]) -> Figure:
    """Per sketch: the mean posterior sd against the error 1 − edge F1, with the correlations."""
    figure = Figure(figsize=(4.5, 3.5), layout="constrained")
    axis = figure.subplots()
    axis.scatter(table.mean_posterior_sd, table.error, label=f"held-out sketches (n = {correlations['n']})")
    axis.set(xlabel="mean per-pixel posterior sd (image units)", ylabel="error: 1 − edge F1",
             title=f"Pearson r = {correlations['pearson']:.2f}, Spearman ρ = {correlations['spearman']:.2f}")
    axis.legend(fontsize="small")
    return figure


def plot_fusion_forest(idata: az.InferenceData) -> Figure:
    """Forest plot of the fusion coefficients: posterior against the head-heavy prior."""
    figure = Figure(figsize=(6, 0.35 * idata.posterior.sizes["port"] + 1.5), layout="constrained")
    axis = figure.subplots()
    prior_as_draws = az.InferenceData(posterior=idata.prior)
    az.plot_forest([idata, prior_as_draws], model_names=["posterior", "prior"], var_names=["fusion"],
                   combined=True, hdi_prob=HDI_PROB, ax=axis)
    axis.set_xscale("log")
    axis.set_xlabel(f"fusion coefficient w (log scale); {HDI_PROB:.0%} HDI")
    axis.set_title("fusion coefficients: posterior vs head-heavy prior")
    return figure


def _draw_profiles_by_task(axis, profiles: dict[str, list[dict[str, float]]], official: dict[str, float]) -> None:
    ports = list(official)
    axis.plot(ports, [official[port] for port in ports], "k--", label="official (prior mean)")
    for task, seeds in profiles.items():
        values = torch.tensor([[profile[port] for port in ports] for profile in seeds])
        spread = values.std(0) if len(values) > 1 else torch.zeros(len(ports))
        axis.errorbar(ports, values.mean(0).tolist(), yerr=spread.tolist(), marker="o", capsize=3,
                      label=f"{task} ({len(values)} seed{'s' * (len(values) > 1)})")
    axis.set_yscale("log")
    axis.set_ylabel("fusion coefficient w (posterior mean)")
    axis.tick_params(axis="x", rotation=45)
    axis.legend(fontsize="small")


def plot_profiles_by_task(profiles: dict[str, list[dict[str, float]]], official: dict[str, float]) -> Figure:
    """Each task's empirical-Bayes profile (posterior-mean w_k per port, mean ± sd over its seeds)
    against the official head-heavy constants, on a log axis, ports from encoder to decoder."""
    figure = Figure(figsize=(max(6.0, 0.5 * len(official) + 2), 3.6), layout="constrained")
    axis = figure.subplots()
    _draw_profiles_by_task(axis, profiles, official)
    axis.set_title("empirical-Bayes fusion profiles by task")
    return figure


def _not_measured(axis, title: str) -> None:
    axis.set_title(title)
    axis.text(0.5, 0.5, "not measured yet", ha="center", va="center", transform=axis.transAxes, color="0.4")
    axis.set_axis_off()


def plot_profiles_and_heads(eb: dict | None, heads: dict | None) -> Figure:
    """The Bayesian layer as a source of settings (#15 items 3 and 5), from `bayesian_value.py`'s
    eb_profiles.json and heads.json (None, or entries still null, where not measured yet):
    (a) each task's empirical-Bayes profile against the official constants (eb["official"]);
    (b) deterministic BPS refitted with such a profile minus the official constants, paired over
    seeds and test conditions; (c) the N = 10 validation curves of Bayesian heads and of regularised
    deterministic BPS, one line per strength, the chosen one marked, the paired test
    difference of the two winners in the title."""
    figure = Figure(figsize=(15, 4.2), layout="constrained")
    profile_axis, delta_axis, heads_axis = figure.subplots(1, 3, width_ratios=(1.3, 1, 1))

    if eb and eb["profiles"]:
        _draw_profiles_by_task(profile_axis, eb["profiles"], eb["official"])
        profile_axis.set_title("(a) empirical-Bayes profiles, N = 40")
    else:
        _not_measured(profile_axis, "(a) empirical-Bayes profiles, N = 40")

    measured = {label: d for label, d in (eb or {}).get("differences", {}).items() if d is not None}
    if measured:
        labels = list(measured)
        deltas = [measured[label]["delta"] for label in labels]
        errors = [[d - measured[label]["low"] for label, d in zip(labels, deltas)],
                  [measured[label]["high"] - d for label, d in zip(labels, deltas)]]
        delta_axis.errorbar(deltas, range(len(labels)), xerr=errors, fmt="o", capsize=3)
        delta_axis.set_yticks(range(len(labels)),
                              [f"{label} ({measured[label]['seeds']} seeds)" for label in labels], fontsize="small")
        delta_axis.invert_yaxis()
        delta_axis.axvline(0, color="0.6", linestyle=":")
        delta_axis.set(xlabel="fidelity, EB profile − official constants (95 % paired interval)",
                       title="(b) deterministic BPS refitted with the profile")
    else:
        _not_measured(delta_axis, "(b) deterministic BPS refitted with the profile")

    curves = {name: method for name, method in (heads or {}).get("methods", {}).items() if method["validation"]}
    if curves:
        for colour, (name, method) in enumerate(curves.items()):
            for style, (strength, by_step) in zip(("-", "--", ":", "-."), method["validation"].items()):
                steps = sorted(by_step, key=int)
                heads_axis.plot([int(step) for step in steps], [by_step[step] for step in steps], style,
                                color=f"C{colour}", marker="o", label=f"{name}, {method['strength']} {strength}")
            if method["chosen"] is not None:
                strength, step = method["chosen"]
                by_step = next(v for key, v in method["validation"].items() if float(key) == strength)
                heads_axis.plot(step, by_step[str(step)], "s", markersize=11, fillstyle="none", color=f"C{colour}")
        difference = heads.get("heads_minus_regularised")
        test = ("test: not yet run" if difference is None else
                f"test: Δ {difference['delta']:+.3f} [{difference['low']:+.3f}, {difference['high']:+.3f}]")
        heads_axis.set_xscale("log")
        heads_axis.set_xticks(heads["checkpoints"], [str(step) for step in heads["checkpoints"]])
        heads_axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        heads_axis.set(xlabel="training step", ylabel="validation fidelity",
                       title=f"(c) N = {heads['n']}, Bayesian heads against regularised BPS\n{test}")
        heads_axis.legend(fontsize="xx-small")
    else:
        _not_measured(heads_axis, "(c) Bayesian heads at small N")
    return figure


def plot_data_efficiency(rows: list[dict]) -> Figure:
    """Metric against N (log scale), one panel per (domain/task, metric), one line per method.

    Points are the mean over seeds; error bars span the seeds' standard deviation (with one
    seed, the cell's bootstrap interval)."""
    panels = list(dict.fromkeys(f"{row['domain']}/{row['task']}" for row in rows))
    metrics = list(dict.fromkeys(row["metric"] for row in rows))
    methods = list(dict.fromkeys(row["method"] for row in rows))
    figure = Figure(figsize=(3.6 * len(metrics), 3.0 * len(panels)), layout="constrained")
    axes = figure.subplots(len(panels), len(metrics), squeeze=False)
    for (i, panel), (j, metric) in ((d, m) for d in enumerate(panels) for m in enumerate(metrics)):
        axis = axes[i][j]
        for k, method in enumerate(methods):
            dodge = 1.06 ** (k - (len(methods) - 1) / 2)  # side by side on the log axis
            cell = [row for row in rows if (f"{row['domain']}/{row['task']}", row["metric"], row["method"])
                    == (panel, metric, method)]
            sizes = sorted({int(row["n_train"]) for row in cell})
            if not sizes:
                continue
            means, lows, highs = [], [], []
            for n in sizes:
                at_n = [row for row in cell if int(row["n_train"]) == n]
                values = torch.tensor([float(row["value"]) for row in at_n])
                mean = values.mean().item()
                if len(values) > 1:
                    low, high = mean - values.std().item(), mean + values.std().item()
                else:
                    low, high = float(at_n[0]["low"]), float(at_n[0]["high"])
                means.append(mean)
                lows.append(mean - low)
                highs.append(high - mean)
            axis.errorbar([n * dodge for n in sizes], means, yerr=[lows, highs], marker="o", capsize=3,
                          label=method)
        axis.set_xscale("log")
        axis.set_xticks(sorted({int(row["n_train"]) for row in rows}))
        axis.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.set(xlabel="training pairs N", ylabel=metric, title=f"{panel}: {metric}")
    axes[0][0].legend(fontsize="small")
    return figure


def plot_paired_differences(rows: list[dict], reference: str = "deterministic") -> Figure:
    """Each method − `reference` on each task's primary score, from `paired.csv`'s rows: Δ with
    its 95 % paired interval (crossed bootstrap over seeds and test conditions), one panel per
    domain/task, one row per (N, trained method), the seeds it pairs in the label. What to
    compare methods by, instead of the marginal spreads of `plot_data_efficiency` (which shows
    the unsteered base; its gap of ~0.6 here would squash the others)."""
    chosen = [row for row in rows if row["reference"] == reference and row["method"] != "unsteered"
              and row["metric"] == PRIMARY_SCORE.get(row["task"])]
    panels = list(dict.fromkeys((row["domain"], row["task"]) for row in chosen))
    methods = [method for method in METHODS if method not in (reference, "unsteered")]
    figure = Figure(figsize=(4.6 * max(len(panels), 1), 4.2), layout="constrained")
    axes = figure.subplots(1, max(len(panels), 1), squeeze=False)[0]
    for axis, (domain, task) in zip(axes, panels):
        cells = sorted((row for row in chosen if (row["domain"], row["task"]) == (domain, task)),
                       key=lambda row: (int(row["n_train"]), methods.index(row["method"])))
        for y, row in enumerate(cells):
            delta, low, high = (float(row[key]) for key in ("delta", "low", "high"))
            axis.errorbar(delta, y, xerr=[[delta - low], [high - delta]], fmt="o", capsize=3,
                          color=f"C{methods.index(row['method'])}")
        axis.set_yticks(range(len(cells)), [f"N={row['n_train']}  {row['method']} ({row['seeds']} seeds)"
                                            for row in cells], fontsize="small")
        axis.invert_yaxis()
        axis.axvline(0, color="0.6", linestyle=":")
        axis.set(xlabel=f"{PRIMARY_SCORE[task]}, method − {reference} (95 % paired interval)",
                 title=f"{domain}/{task}")
    if not panels:
        _not_measured(axes[0], f"method − {reference}")
    return figure


def plot_learning_curves(rows: list[dict], metric: str) -> Figure:
    """Validation `metric` of every tuning run: one column per method, one line per learning
    rate, against training steps (top) and training wall-clock (bottom), with the checkpoint's
    bootstrap interval as a band."""
    methods = list(dict.fromkeys(row["method"] for row in rows if row["metric"] == metric))
    figure = Figure(figsize=(3.4 * max(len(methods), 1), 5.6), layout="constrained")
    axes = figure.subplots(2, max(len(methods), 1), squeeze=False)
    for j, method in enumerate(methods):
        runs = [row for row in rows if (row["method"], row["metric"]) == (method, metric)]
        for lr in sorted({float(row["lr"]) for row in runs}):
            points = sorted((row for row in runs if float(row["lr"]) == lr), key=lambda row: int(row["step"]))
            values = [float(row["value"]) for row in points]
            lows, highs = [float(row["low"]) for row in points], [float(row["high"]) for row in points]
            for axis, x in ((axes[0][j], [int(row["step"]) for row in points]),
                            (axes[1][j], [float(row["wall_seconds"]) for row in points])):
                line, = axis.plot(x, values, marker="o", markersize=3, label=f"lr {lr:g}")
                axis.fill_between(x, lows, highs, color=line.get_color(), alpha=0.15)
        axes[0][j].set(xscale="log", xlabel="training steps", ylabel=f"validation {metric}", title=method)
        axes[0][j].set_xticks(sorted({int(row["step"]) for row in runs}))
        axes[0][j].get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axes[0][j].get_xaxis().set_minor_formatter(matplotlib.ticker.NullFormatter())
        axes[1][j].set(xscale="log", xlabel="training seconds", ylabel=f"validation {metric}")
    if methods:
        axes[0][0].legend(fontsize="x-small")
    return figure


def _loss_curve(axis, rows: list[dict], x: str, **style) -> None:
    """Losses with their paired intervals against `x`, one point per row."""
    below = [row["loss"] - row["loss_low"] for row in rows]
    above = [row["loss_high"] - row["loss"] for row in rows]
    axis.errorbar([row[x] for row in rows], [row["loss"] for row in rows], yerr=[below, above], marker="o", capsize=3,
                  **style)


def plot_bayesian_value(detection, gates: dict, pruning: dict, threshold: float) -> Figure:
    """What the Bayesian layer buys, from `benchmarks/bayesian_value`'s outputs: (a) the ROC of
    each detector's spread for failures (edge F1 < `threshold`) of the deployed samples; (b) each
    port's posterior weight over the DDIM steps relative to its official constant, with the time
    gate's off line; (c) the test fidelity loss of each time gate against its skipped steps;
    (d) the test fidelity loss of each pruning against the adapter FLOPs it removes."""
    from sklearn.metrics import roc_curve  # only this figure needs it

    figure = Figure(figsize=(11, 8), layout="constrained")
    (roc_axis, weight_axis), (gate_axis, prune_axis) = figure.subplots(2, 2)
    failed = detection["fidelity"] < threshold
    for name in ("posterior", "deterministic", "prior"):
        false_positive, true_positive, _ = roc_curve(failed, detection[f"{name}_spread"])
        roc_axis.plot(false_positive, true_positive, label=f"{name} spread")
    roc_axis.plot([0, 1], [0, 1], color="0.6", linestyle=":")
    roc_axis.set(xlabel="false-positive rate", ylabel="true-positive rate",
                 title=f"(a) failures (edge F1 < {threshold:g}): {int(failed.sum())} of {len(failed)}")
    roc_axis.legend(fontsize="small")

    posterior = gates["posterior"]
    timesteps, median = posterior["timesteps"], torch.tensor(posterior["relative_weight"]["median"])
    for k, name in enumerate(posterior["ports"]):
        weight_axis.plot(timesteps, median[k], color=f"C{k % 10}", linestyle="-" if k < 10 else "--", label=name)
    weight_axis.axhline(gates["off_fraction"], color="k", linestyle=":", label="time gate: off below")
    weight_axis.set(yscale="log", xlabel="timestep t (0: clean image)",
                    ylabel="posterior median $w_k(t)$ / official constant", title="(b) port weights over t")
    weight_axis.legend(fontsize="xx-small", ncol=2)

    summary = {row["gate"]: row for row in gates["summaries"]["test"]}
    _loss_curve(gate_axis, [row for name, row in summary.items() if name != "posterior"], "skipped_fraction",
                label="one cutoff $t_0$ (95 % paired interval)")
    chosen = summary[gates["chosen_cutoff"]]
    gate_axis.plot(chosen["skipped_fraction"], chosen["loss"], "s", markersize=10, fillstyle="none", color="C0",
                   label=f"cutoff chosen on validation ({gates['chosen_cutoff']})")
    gate = summary["posterior"]
    gate_axis.plot(gate["skipped_fraction"], gate["loss"], "*", markersize=12, color="C3", label="posterior gate")
    gate_axis.axhline(gates["tolerance"], color="0.6", linestyle=":", label=f"tolerance {gates['tolerance']:g}")
    gate_axis.set(xlabel="fraction of DDIM steps without steering", ylabel="edge F1 loss against full steering",
                  title="(c) time gates, test sketches")
    gate_axis.legend(fontsize="x-small")

    for run, rows in pruning["summaries"]["test"].items():
        for order in dict.fromkeys(row["order"] for row in rows if row["order"] != "none"):
            _loss_curve(prune_axis, [row for row in rows if row["order"] in (order, "none")], "flops_removed",
                        label=f"{order} ranking ({run} run)")
    prune_axis.axhline(pruning["tolerance"], color="0.6", linestyle=":", label=f"tolerance {pruning['tolerance']:g}")
    prune_axis.set(xlabel="fraction of the adapter's FLOPs removed", ylabel="edge F1 loss against unpruned",
                   title="(d) port pruning, test sketches")
    prune_axis.legend(fontsize="x-small")
    return figure

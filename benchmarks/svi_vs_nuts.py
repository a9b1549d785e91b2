"""SVI against NUTS on a posterior that moved, with a control that must fail the check.

    python benchmarks/svi_vs_nuts.py runs/shapes-sketch-bayes-n40-seed0 --batch 32 --chains 2 \
        --warmup 75 --draws 75 --target-accept 0.65 --nuts-draws runs/nuts-batch32.pt

NUTS takes hours here; `--nuts-draws FILE` saves its draws, and a later call with the same file
(same run, same batch) reuses them, so SVI settings can be compared against one reference.
Each chain is saved beside it as it finishes (FILE's name with `.chain<c>`), so a killed run
resumes at the next chain, and `--chain C` samples chain C alone and stops, so the chains can
run as parallel processes. `--svi-guide FILE` keeps the SVI guide (one to two hours here with four
particles; a killed SVI resumes from a checkpoint beside FILE), and with `--svi-only` a process
fits just that guide, beside the chains.

On one fixed batch of the run's training pairs (the network fixed at the fitted one), the exact
posterior of the coefficients is a low-dimensional density that NUTS samples. Three
approximations are set against it, in the guide's unconstrained space:

- SVI: a fresh guide fitted on the same batch (`svi_on_batch`), mean-field as in a fit by default,
  or any of the package's families (`--svi-family full-rank`, a correlated Gaussian; `flow`, an
  inverse-autoregressive flow);
- the control: a guide that was never updated (still the prior), which any check of agreement
  must reject;
- KL(SVI ‖ prior), to show that the posterior moved (the check is vacuous when it did not).

NUTS runs in coordinates centred on a guide's mean and shaped by the Laplace covariance there
(`nuts_reference(..., whiten_by=guide)`), which changes its geometry, not its target (a test
checks that with a guide wrong on purpose): the batch's SVI guide, or with `--whiten-by fit`
the run's own guide, which needs no SVI first.
Prints the discrepancy |mean_SVI − mean_NUTS| / sd_NUTS (max and median) and the sd ratios for
both, R-hat, bulk ESS and divergences.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import time
from pathlib import Path

import torch

from bayes_bps.bayes import GUIDE_FAMILIES, SteeringGuide, posterior_draws
from bayes_bps.bayes.diagnostics import compare_posteriors, comparison_summary
from bayes_bps.bayes.nuts import NutsReference, fresh_guide, nuts_reference, svi_on_batch
from bayes_bps.experiments.analysis import fixed_batch
from bayes_bps.training import load_run
from bayes_bps.utils.files import save_atomic
from bayes_bps.utils.seeding import seeded

DRAWS = 2000


def _checked(path: Path, settings: dict) -> dict:
    saved = torch.load(path)
    if saved["settings"] != settings:
        raise SystemExit(f"{path}: made with {saved['settings']}, not this call's {settings}; "
                         "remove it or pass another file")
    return saved


def _settings_key(settings: dict) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]


def batch_guide(model, batch, args):
    """SVI on the batch, or its guide as --svi-guide saved it."""
    settings = {name: getattr(args, name) for name in ("batch", "svi_steps", "svi_lr", "svi_final_lr", "svi_particles")}
    if args.svi_family != "mean-field":  # the guides saved before the flag were all mean-field
        settings["svi_family"] = args.svi_family
    if args.svi_guide is not None and args.svi_guide.is_file():
        guide = fresh_guide(model, batch, args.svi_family)  # create the parameters, then take the saved values
        guide.load_state_dict(_checked(args.svi_guide, settings)["guide"])
        return guide
    # a killed SVI resumes from its checkpoint beside FILE (its settings' hash is in the name)
    partial = None if args.svi_guide is None else args.svi_guide.with_suffix(f".{_settings_key(settings)}.partial")
    guide = svi_on_batch(model, batch, steps=args.svi_steps, lr=args.svi_lr, final_lr=args.svi_final_lr,
                         num_particles=args.svi_particles, family=args.svi_family, progress=True, checkpoint=partial)
    if args.svi_guide is not None:
        save_atomic({"guide": guide.state_dict(), "settings": settings}, args.svi_guide)
        partial.unlink()
    return guide


def nuts_draws(model, batch, whiten_by, args) -> NutsReference | None:
    """The NUTS reference: read from --nuts-draws, or sampled chain by chain, each chain saved as
    it finishes and every chain together at the end (None after one `--chain`)."""
    settings = {"warmup": args.warmup, "draws": args.draws, "target_accept": args.target_accept, "batch": args.batch}
    sample = functools.partial(nuts_reference, model, batch, num_samples=args.draws, warmup_steps=args.warmup,
                               target_accept_prob=args.target_accept, progress=True)
    if args.nuts_draws is None:
        return sample(num_chains=args.chains, whiten_by=whiten_by())
    if args.nuts_draws.is_file():
        return NutsReference(**torch.load(args.nuts_draws))  # NUTS takes hours here: run it once
    chains = []
    for chain in range(args.chains) if args.chain is None else [args.chain]:
        path = args.nuts_draws.with_name(f"{args.nuts_draws.stem}.chain{chain}{args.nuts_draws.suffix}")
        if not path.is_file():  # chain c's seed, as in one call of several chains
            one = sample(num_chains=1, seed=chain, whiten_by=whiten_by())
            save_atomic({"draws": one.draws, "diverging": one.diverging, "settings": settings,
                         "whitened_by": args.whiten_by}, path)
        chains.append(_checked(path, settings))
    if args.chain is not None:
        print(f"chain {args.chain} is in {path}; run without --chain to compare once every chain is")
        return None
    draws = {name: torch.cat([chain["draws"][name] for chain in chains]) for name in chains[0]["draws"]}
    reference = NutsReference(draws, torch.cat([chain["diverging"] for chain in chains]))
    save_atomic({"draws": reference.draws, "diverging": reference.diverging}, args.nuts_draws)
    return reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--svi-steps", type=int, default=400)
    parser.add_argument("--svi-particles", type=int, default=1, help="ELBO particles per SVI step")
    parser.add_argument("--svi-family", choices=GUIDE_FAMILIES, default="mean-field",
                        help="SVI's guide family (guide.py): is the family what keeps SVI off NUTS?")
    parser.add_argument("--svi-lr", type=float, default=0.01, help="SVI's Adam learning rate")
    parser.add_argument("--svi-final-lr", type=float, default=None,
                        help="decay SVI's learning rate geometrically to this by the last step")
    parser.add_argument("--target-accept", type=float, default=0.8, help="NUTS step-size adaptation target")
    parser.add_argument("--nuts-draws", type=Path, default=None,
                        help="a .pt file: reuse its NUTS draws if it exists (same run and batch), else save them there")
    parser.add_argument("--chain", type=int, default=None,
                        help="with --nuts-draws: sample only this chain, save it and stop (parallel processes)")
    parser.add_argument("--whiten-by", choices=["svi", "fit"], default="svi",
                        help="the guide whose Laplace shape NUTS runs in: the batch's SVI guide, or the run's own")
    parser.add_argument("--svi-guide", type=Path, default=None,
                        help="a .pt file: reuse the SVI guide saved there (same settings), else save it there")
    parser.add_argument("--svi-only", action="store_true", help="with --svi-guide: fit and save the guide, then stop")
    args = parser.parse_args()
    if args.svi_only and args.svi_guide is None:
        parser.error("--svi-only saves the guide to --svi-guide FILE; give one")
    run = load_run(args.run_dir, device="cpu")
    model = run.objective.model
    batch = fixed_batch(run, args.batch)

    started = time.perf_counter()
    if args.whiten_by == "fit":  # NUTS needs no SVI first; the comparison does, after the chains
        reference = nuts_draws(model, batch, lambda: run.objective.guide, args)
        if reference is None:
            return
    nuts_seconds, started = time.perf_counter() - started, time.perf_counter()
    guide = batch_guide(model, batch, args)
    svi_seconds, started = time.perf_counter() - started, time.perf_counter()
    if args.svi_only:
        print(f"the SVI guide is in {args.svi_guide} ({svi_seconds:.0f} s)")
        return
    control = SteeringGuide(model)
    control(batch)
    control.start_at_prior()  # never updated
    if args.whiten_by == "svi":
        reference = nuts_draws(model, batch, lambda: guide, args)
        if reference is None:
            return
    nuts_seconds += time.perf_counter() - started

    schedule = f"lr {args.svi_lr:g}" + (f" → {args.svi_final_lr:g}" if args.svi_final_lr is not None else "")
    print(f"run {args.run_dir}, λ = {float(model.temperature):.3g}, batch {args.batch}; SVI {args.svi_steps} steps, "
          f"{args.svi_particles} particle(s), {schedule} "
          f"({svi_seconds:.0f} s), NUTS {args.chains} chains x ({args.warmup} warmup + {args.draws} draws) "
          f"({nuts_seconds:.0f} s), {reference.num_divergences} divergences")
    print(f"KL(SVI guide ‖ prior) = {guide.total_kl():.1f} nats")
    for label, approximation in (("SVI", guide), ("control (never updated)", control)):
        with seeded(0):
            draws = posterior_draws(approximation, DRAWS)
        table = compare_posteriors(draws, reference.draws, model.port_names)
        print(f"{label}: {comparison_summary(table)}")
        worst = table.sort_values("discrepancy_sd", ascending=False).head(3)
        print(worst[["svi_mean", "nuts_mean", "svi_sd", "nuts_sd", "discrepancy_sd", "sd_ratio"]].round(3).to_string())


if __name__ == "__main__":
    main()

"""Speed against the roofline, and against an earlier commit, measured side by side.

    python benchmarks/speed.py                         # this checkout, and the issue's starting commit
    python benchmarks/speed.py --baseline HEAD~3 --rounds 3
    python benchmarks/speed.py --baseline none         # this checkout only

Every number that matters is a ratio of timings taken in the same run, because absolute times
drift on these shared machines:

- the roofline ratio: achieved FLOP/s of a step (FLOPs counted by
  `torch.utils.flop_counter.FlopCounterMode`) over a 2048² fp32 matmul timed in the same process;
- steered / frozen: a `lite`-steered denoising step over the frozen one, interleaved;
- SVI / deterministic: a Bayesian fit step over the official recipe's, on the same pairs;
- baseline / current: the same measurements in a `git worktree` of `--baseline`, run in
  alternation with this checkout (`--rounds` processes each), medians over the rounds.

The workloads are those of the default fit: the shipped shapes base, the `lite` adapter, 40
sketch pairs, batch 8; guided sampling of 64 conditions (a UNet batch of 128).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from timing import interleaved_medians  # this folder's side-by-side timer

ROOT = Path(__file__).resolve().parents[1]
STARTING_COMMIT = "46a9e6f"  # the speed issue's starting point


# ---------------------------------------------------------------------------------------------
# Measurements (run in a child process, against whichever checkout is on sys.path)


def _api() -> SimpleNamespace:
    """The entry points the workloads need, from the layered package or the flat one before it;
    `svi_objective(base, pairs, weights, example)` builds the Bayesian objective of that checkout."""
    from bayes_bps.data import make_dataset

    try:
        from bayes_bps import base, bayes, sampling, steering, training
        from bayes_bps.steering.reference import hidden_scales

        def svi_objective(frozen, pairs, weights, example):
            adapter = steering.build_adapter(frozen, "lite", 1, scale_free=True)
            model = bayes.BayesianSteering(frozen, adapter, weights, hidden_scales(frozen, pairs, 0), len(pairs),
                                           bayes.per_example_temperature(frozen))
            return bayes.ELBOObjective(model, example)  # no warm-up: the steady-state step

        return SimpleNamespace(
            FrozenBase=base.FrozenBase, TrainingPairs=base.TrainingPairs, make_dataset=make_dataset,
            svi_objective=svi_objective, build_adapter=steering.build_adapter,
            find_ports=steering.find_ports, head_heavy_profile=steering.head_heavy_profile, steer=steering.steer,
            DeterministicObjective=training.DeterministicObjective, SteeringTrainer=training.SteeringTrainer,
            steered_sample=sampling.steered_sample_images)
    except ImportError:  # the flat layout (46a9e6f and before)
        from bayes_bps import bayes, pairs, ports, prior, sample, train

        def svi_objective(frozen, pairs, weights, example):
            model = bayes.BayesianSteering(frozen, train.adapter_for(frozen, "lite", 1), weights, len(pairs),
                                           bayes.per_example_temperature(frozen))
            return bayes.ELBOObjective(model, example)

        return SimpleNamespace(
            FrozenBase=prior.FrozenPrior, TrainingPairs=pairs.TrainingPairs, make_dataset=make_dataset,
            svi_objective=svi_objective, build_adapter=train.adapter_for,
            find_ports=ports.find_ports, head_heavy_profile=ports.head_heavy_profile, steer=ports.steer,
            DeterministicObjective=train.DeterministicObjective, SteeringTrainer=train.SteeringTrainer,
            steered_sample=sample.steered_ddim_sample)


def _flops(function: Callable[[], object]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        function()
    return float(counter.get_total_flops())


def measure(repeats: int) -> dict:
    import torch

    api = _api()
    torch.manual_seed(0)
    base = api.FrozenBase.from_pretrained("shapes")
    pairs = api.TrainingPairs.encode(base, api.make_dataset("shapes", "sketch", length=40), 40)
    weights = api.head_heavy_profile(api.find_ports(base.unet))

    def trainer_for(objective):
        trainer = api.SteeringTrainer(base, pairs, objective, batch_size=8, lr=1e-3)
        return lambda: trainer.train(trainer.step + 1, progress=False)

    deterministic = api.DeterministicObjective(base, api.build_adapter(base, "lite", 1), weights)
    generator = torch.Generator().manual_seed(0)
    svi = api.svi_objective(base, pairs, weights, pairs.noisy_batch(base, pairs.draw_indices(8, generator), generator))
    adapter = deterministic.adapter
    with torch.no_grad():  # heads away from zero, so no work is skipped by accident
        for head in adapter.heads:
            head.weight.normal_(std=1e-3)

    # a denoising step: a classifier-free-guidance batch of 8 conditions, frozen and steered
    sample = torch.randn(16, 3, 32, 32, generator=generator)
    states = base.encode_captions(["a red circle"] * 16)
    condition = pairs.conditions[:8]

    def frozen_forward():
        with torch.no_grad():
            base.predict_noise(sample, torch.tensor(500), states)

    def steered_forward():
        with torch.no_grad(), api.steer(base.unet, adapter, condition, weights):
            base.predict_noise(sample, torch.tensor(500), states)

    # guided DDIM over 64 conditions: a few steps of the loop the evaluation runs
    conditions = pairs.conditions[:32].repeat(2, 1, 1, 1)
    captions = pairs.captions[:32] * 2
    ddim_steps = 4

    def guided_ddim():
        api.steered_sample(base, adapter, weights, conditions, captions, steps=ddim_steps,
                                   guidance_scale=3.0, progress=False)

    def matmul():
        a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
        for _ in range(4):
            a @ b

    train = {"deterministic train step": trainer_for(deterministic), "SVI train step": trainer_for(svi)}
    seconds = {
        **interleaved_medians({"matmul 2048² x4": matmul}, repeats),
        **interleaved_medians(train, repeats),
        **interleaved_medians({"frozen forward, batch 16": frozen_forward,
                               "lite-steered forward, batch 16": steered_forward}, repeats),
        **interleaved_medians({f"guided DDIM, 64 conditions, {ddim_steps} steps": guided_ddim}, max(3, repeats // 3)),
    }
    flops = {"matmul 2048² x4": 4 * 2 * 2048**3,
             "deterministic train step": _flops(train["deterministic train step"]),
             "SVI train step": _flops(train["SVI train step"]),
             f"guided DDIM, 64 conditions, {ddim_steps} steps": _flops(guided_ddim)}
    return {"seconds": seconds, "flops": flops, "threads": torch.get_num_threads(), "torch": torch.__version__}


# ---------------------------------------------------------------------------------------------
# Orchestration: this checkout and the baseline's worktree, in alternating processes


def _run_child(checkout: Path, repeats: int) -> dict:
    environment = {**os.environ, "PYTHONPATH": str(checkout)}
    command = [sys.executable, str(Path(__file__).resolve()), "--measure", "--repeats", str(repeats)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=checkout, env=environment, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"measuring {checkout} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _combine(runs: list[dict]) -> dict:
    names = runs[0]["seconds"]
    return {"seconds": {name: statistics.median(run["seconds"][name] for run in runs) for name in names},
            "flops": runs[0]["flops"], "threads": runs[0]["threads"], "torch": runs[0]["torch"]}


def _report(label: str, result: dict) -> list[str]:
    seconds, flops = result["seconds"], result["flops"]
    peak = flops["matmul 2048² x4"] / seconds["matmul 2048² x4"]
    lines = [f"### {label}", "", f"matmul 2048² fp32: {peak / 1e9:.1f} GFLOP/s ({result['threads']} threads, "
             f"torch {result['torch']})", "", "| step | time | GFLOP | GFLOP/s | of matmul rate |",
             "|---|---|---|---|---|"]
    for name, value in seconds.items():
        if name.startswith("matmul"):
            continue
        if name in flops:
            rate = flops[name] / value
            lines.append(f"| {name} | {value * 1e3:.1f} ms | {flops[name] / 1e9:.2f} | {rate / 1e9:.1f} | "
                         f"{rate / peak:.0%} |")
        else:
            lines.append(f"| {name} | {value * 1e3:.1f} ms | | | |")
    steered = seconds["lite-steered forward, batch 16"] / seconds["frozen forward, batch 16"]
    svi = seconds["SVI train step"] / seconds["deterministic train step"]
    lines += ["", f"lite-steered / frozen forward: **{steered:.3f}**; "
              f"SVI / deterministic train step: **{svi:.3f}**", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=STARTING_COMMIT, help="commit to compare with ('none': skip)")
    parser.add_argument("--rounds", type=int, default=2, help="processes per checkout, in alternation")
    parser.add_argument("--repeats", type=int, default=10, help="timed repeats per measurement in a process")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # the child's mode
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.repeats)))
        return

    checkouts = {"current": ROOT}
    with tempfile.TemporaryDirectory(prefix="bayes_bps-baseline-") as folder:
        if args.baseline != "none":
            worktree = Path(folder) / "baseline"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.baseline],
                           check=True, capture_output=True)
            checkouts["baseline"] = worktree
        try:
            runs: dict[str, list[dict]] = {name: [] for name in checkouts}
            for _ in range(args.rounds):
                for name, checkout in checkouts.items():
                    runs[name].append(_run_child(checkout, args.repeats))
        finally:
            if "baseline" in checkouts:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(checkouts["baseline"])],
                               check=False, capture_output=True)
    results = {name: _combine(values) for name, values in runs.items()}
    lines = _report("this checkout", results["current"])
    if "baseline" in results:
        lines += _report(f"baseline {args.baseline}", results["baseline"])
        lines += ["| step | baseline / current (speed-up) |", "|---|---|"]
        for name, value in results["current"]["seconds"].items():
            if not name.startswith("matmul"):
                lines.append(f"| {name} | **{results['baseline']['seconds'][name] / value:.2f}×** |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

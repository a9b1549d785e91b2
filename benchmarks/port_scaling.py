"""Why did a stronger likelihood turn the top ports down? Scale ports of a fitted network and look.

    python benchmarks/port_scaling.py runs/shapes-sketch-deterministic-n40-seed0

On a fitted official-recipe run (the network the first Bayesian model fitted its coefficients
against: trained by ε-MSE at the head-heavy constants), multiply the top encoder port and the
highest-resolution decoder ports by c, at every t, at high noise only (t ≥ T/2) or at low noise
only, and measure with common random numbers (the same x_0, t and ε for every c):

- ε-MSE per quartile of t, on the training pairs and on as many held-out pairs;
- held-out edge F1 of DDIM samples (the same noise for every c).

Two readings of the first model's λ = 0.01 result (top port 16 → 2.2, edge F1 0.82 → 0.43):
*iterate noise* (the network is stationary at c = 1, so training ε-MSE is flat there and the
coefficients only tracked the optimiser) or *weighting plus rigid gates* (uniform-t ε-MSE is
dominated by low-noise steps, where less steering fits better, and a gate that could only be
turned down everywhere also removed the high-noise steering that edge fidelity needs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bayes_bps.base import NoisyBatch, TrainingPairs
from bayes_bps.data import make_dataset
from bayes_bps.metrics import edge_f1
from bayes_bps.sampling import steered_sample_images
from bayes_bps.steering import steered_noise
from bayes_bps.training import load_run

FACTORS = (0.125, 0.25, 0.5, 1.0, 2.0)
WINDOWS = {"all t": (0, 1000), "high noise (t ≥ 500)": (500, 1000), "low noise (t < 500)": (0, 500)}
QUARTILES = ((0, 250), (250, 500), (500, 750), (750, 1000))


def fixed_batches(run, pairs: TrainingPairs, repeats: int, seed: int) -> list[NoisyBatch]:
    """Every pair noised `repeats` times, t stratified over the quartiles: common random numbers."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for quartile in QUARTILES:
        for _ in range(repeats):
            timesteps = torch.randint(*quartile, (len(pairs),), generator=generator)
            noise = torch.randn(pairs.samples.shape, generator=generator)
            batches.append(NoisyBatch(torch.arange(len(pairs)), run.base.add_noise(pairs.samples, noise, timesteps),
                                      timesteps, noise, pairs.conditions, pairs.caption_states))
    return batches


def scaled_weights(weights: dict[str, float], ports: list[str], factor: float, window: tuple[int, int]):
    def at(timesteps: torch.Tensor) -> dict[str, torch.Tensor]:
        inside = ((timesteps >= window[0]) & (timesteps < window[1])).float()
        scale = 1 + (factor - 1) * inside
        return {name: value * scale if name in ports else value for name, value in weights.items()}
    return at


@torch.no_grad()
def quartile_mse(run, batches: list[NoisyBatch], weights) -> list[float]:
    sums = [0.0] * len(QUARTILES)
    counts = [0] * len(QUARTILES)
    for batch in batches:
        error = (steered_noise(run.base, run.objective.adapter, batch, weights) - batch.noise).square()
        per_example = error.flatten(1).mean(dim=1)
        for q, (low, high) in enumerate(QUARTILES):
            inside = (batch.timesteps >= low) & (batch.timesteps < high)
            sums[q] += float(per_example[inside].sum())
            counts[q] += int(inside.sum())
    return [s / max(c, 1) for s, c in zip(sums, counts)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a deterministic (official-recipe) run")
    parser.add_argument("--repeats", type=int, default=4, help="noisings of every pair per quartile")
    parser.add_argument("--samples", type=int, default=64, help="held-out conditions for edge F1")
    parser.add_argument("--ddim-steps", type=int, default=50)
    args = parser.parse_args()
    run = load_run(args.run_dir, device="cpu")
    if run.bayesian:
        parser.error(f"{args.run_dir} is a Bayesian run; this measures the official recipe's network")
    options = run.options
    held_out = make_dataset(options.domain, options.task, split="validation", length=len(run.pairs),
                            resolution=run.base.resolution)
    sets = {"train": run.pairs, "held-out": TrainingPairs.encode(run.base, held_out, len(held_out))}
    batches = {name: fixed_batches(run, pairs, args.repeats, seed=1) for name, pairs in sets.items()}
    names = list(run.objective.weights)
    ports = [names[0], *[name for name in names if name.startswith(f"up.{len(run.base.unet.up_blocks) - 1}.")]]
    _, conditions, captions, _ = run.held_out(args.samples)
    print(f"ports scaled: {ports}; ε-MSE per t-quartile {QUARTILES}; {len(run.pairs)} pairs x {args.repeats} "
          f"per quartile; edge F1 on {len(captions)} held-out sketches, DDIM {args.ddim_steps}\n")
    print("| window | c | train ε-MSE by quartile | held-out ε-MSE by quartile | edge F1 |\n|---|---|---|---|---|")
    unscaled = None  # c = 1 is the same in every window: measured once
    for label, window in WINDOWS.items():
        for factor in FACTORS:
            if factor == 1 and unscaled is not None:
                mse, fidelity = unscaled
            else:
                weights = scaled_weights(run.objective.weights, ports, factor, window)
                mse = {name: quartile_mse(run, batches[name], weights) for name in sets}
                images = steered_sample_images(run.base, run.objective.adapter, weights, conditions, captions,
                                               steps=args.ddim_steps, seed=options.seed, progress=False)
                fidelity = edge_f1(images, conditions).mean().item()
                if factor == 1:
                    unscaled = mse, fidelity
            print(f"| {label} | {factor:g} | {' / '.join(f'{v:.4f}' for v in mse['train'])} | "
                  f"{' / '.join(f'{v:.4f}' for v in mse['held-out'])} | {fidelity:.3f} |", flush=True)


if __name__ == "__main__":
    main()

"""What steering costs: parameters, and time ratios measured side by side in one run.

    python benchmarks/steering_overhead.py            # embedded shapes base, lite adapter
    python benchmarks/steering_overhead.py --sd15     # also the SD1.5 config, official-sd15, batch 1

Ratios: steered/frozen UNet forward (a denoising step), the same with the adapter's decoder
ports pruned (what both pruning rankings of `bayesian_value.py` drop first, 67 % of the
adapter's FLOPs), steered train step/frozen forward, and an SVI step (Bayesian steering,
negative ELBO) with each guide family against a plain training step (deterministic ε-MSE) on
the same minibatches.
Where a steered forward's extra time goes: the adapter alone, and the frozen forward with
precomputed residuals injected by the hooks (their additions, without the adapter), each beside
the adapter's share of the FLOPs (`FlopCounterMode`).

Absolute times drift on shared machines, so every number that matters is a ratio of two
timings interleaved in the same run (medians over repeats). The SD1.5 UNet and adapter are
randomly initialised: timing needs the architecture, not the weights.
"""

from __future__ import annotations

import argparse
from functools import partial

import torch
from diffusers import UNet2DConditionModel
from timing import interleaved_medians  # this folder's side-by-side timer
from torch.utils.flop_counter import FlopCounterMode

from bayes_bps.base import FrozenBase, TrainingPairs
from bayes_bps.bayes import GUIDE_FAMILIES, BayesianSteering, ELBOObjective, per_example_temperature
from bayes_bps.data import make_dataset
from bayes_bps.steering import BPSAdapter, build_adapter, find_ports, head_heavy_profile, inject, steer
from bayes_bps.steering.reference import hidden_scales
from bayes_bps.training import DeterministicObjective, SteeringTrainer


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def measure(unet: UNet2DConditionModel, adapter: BPSAdapter, batch: int, condition_size: int,
            text_tokens: int, repeats: int, train: bool) -> dict[str, float]:
    generator = torch.Generator().manual_seed(0)
    config = unet.config
    sample = torch.randn(batch, config.in_channels, config.sample_size, config.sample_size, generator=generator)
    timesteps = torch.randint(0, 1000, (batch,), generator=generator)
    text = torch.randn(batch, text_tokens, config.cross_attention_dim, generator=generator)
    condition = torch.rand(batch, adapter.config.condition_channels, condition_size, condition_size,
                           generator=generator)
    weights = head_heavy_profile(find_ports(unet))
    with torch.no_grad():  # heads away from zero, so no work is skipped by accident
        for head in adapter.heads:
            head.weight.normal_(std=1e-3)
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=1e-4)

    def frozen_forward():
        with torch.no_grad():
            unet(sample, timesteps, text)

    def steered_forward():
        with torch.no_grad(), steer(unet, adapter, condition, weights):
            unet(sample, timesteps, text)

    # the decoder ports pruned: their heads and the adapter's decoder are not run
    encoder_and_middle = partial(adapter, ports=[p.name for p in find_ports(unet) if p.stage != "decoder"])

    def pruned_forward():
        with torch.no_grad(), steer(unet, encoder_and_middle, condition, weights):
            unet(sample, timesteps, text)

    with torch.no_grad():
        time_embedding = unet.time_embedding(unet.get_time_embed(sample, timesteps))
        residuals = {name: weights[name] * r for name, r in adapter(condition, time_embedding).items()}

    def adapter_alone():
        with torch.no_grad():
            adapter(condition, time_embedding)

    def injected_forward():
        with torch.no_grad(), inject(unet, residuals):
            unet(sample, timesteps, text)

    def steered_train_step():
        with steer(unet, adapter, condition, weights):
            loss = unet(sample, timesteps, text).sample.square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    functions = {"frozen forward": frozen_forward, "steered forward": steered_forward,
                 "decoder-pruned forward": pruned_forward, "adapter alone": adapter_alone,
                 "injected forward": injected_forward}
    if train:
        functions["steered train step"] = steered_train_step
    times = interleaved_medians(functions, repeats)
    times["adapter FLOPs / frozen FLOPs"] = flops(adapter_alone) / flops(frozen_forward)
    return times


def flops(function) -> int:
    with FlopCounterMode(display=False) as counter:
        function()
    return counter.get_total_flops()


def svi_versus_plain(base: FrozenBase, batch_size: int, repeats: int) -> dict[str, float]:
    """Seconds per optimisation step of the plain objective and of the SVI one with each guide
    family, 40 shapes sketch pairs."""
    pairs = TrainingPairs.encode(base, make_dataset("shapes", "sketch", length=40), 40)
    weights = head_heavy_profile(find_ports(base.unet))
    objectives = {"plain training step": DeterministicObjective(base, build_adapter(base, "lite", 1), weights)}
    generator, reference = torch.Generator().manual_seed(0), hidden_scales(base, pairs)
    for family in GUIDE_FAMILIES:
        model = BayesianSteering(base, build_adapter(base, "lite", 1, scale_free=True), weights, reference,
                                 len(pairs), per_example_temperature(base))
        example = pairs.noisy_batch(base, pairs.draw_indices(batch_size, generator), generator)
        objectives[f"SVI step, {family}"] = ELBOObjective(model, example, guide_family=family)
    trainers = {name: SteeringTrainer(base, pairs, objective, batch_size=batch_size, lr=1e-3)
                for name, objective in objectives.items()}
    return interleaved_medians({name: lambda t=trainer: t.train(t.step + 1, progress=False)
                                for name, trainer in trainers.items()}, repeats)


def report(title: str, unet: UNet2DConditionModel, adapter: BPSAdapter, times: dict[str, float]) -> None:
    print(f"\n## {title}")
    print(f"UNet parameters {count(unet):,}; adapter {count(adapter):,} "
          f"({count(adapter) / count(unet):.1%} of the UNet)")
    flop_share = times.pop("adapter FLOPs / frozen FLOPs")
    for name, seconds in times.items():
        print(f"  {name:<20} {seconds * 1000:9.1f} ms")
    frozen = times["frozen forward"]
    print(f"  steered/frozen forward ratio: {times['steered forward'] / frozen:.3f}; decoder pruned: "
          f"{times['decoder-pruned forward'] / frozen:.3f}")
    print(f"  of the frozen forward: the adapter alone {times['adapter alone'] / frozen:.3f} of its time for "
          f"{flop_share:.3f} of its FLOPs; the injection of precomputed residuals "
          f"{times['injected forward'] / frozen - 1:+.3f}")
    if "steered train step" in times:
        print(f"  steered train step / frozen forward: {times['steered train step'] / frozen:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="embedded-base batch (a CFG step of 8)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--sd15", action="store_true", help="also time the SD1.5 config (slow)")
    parser.add_argument("--sd15-repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    base = FrozenBase.from_pretrained("shapes")
    adapter = BPSAdapter.from_unet(base.unet, preset="lite", condition_channels=1, unshuffle_factor=1)
    times = measure(base.unet, adapter, args.batch, base.resolution, 12, args.repeats, train=True)
    report(f"embedded shapes base, lite adapter, batch {args.batch}", base.unet, adapter, times)
    steps = svi_versus_plain(base, batch_size=8, repeats=args.repeats)
    plain = steps["plain training step"]
    for name, seconds in steps.items():
        print(f"  {name:<28} {seconds * 1000:9.1f} ms  (batch 8, 40 pairs)  / plain step {seconds / plain:.3f}")

    if args.sd15:
        unet = UNet2DConditionModel(cross_attention_dim=768, sample_size=64).eval().requires_grad_(False)
        official = BPSAdapter.from_unet(unet, preset="official-sd15", condition_channels=1, unshuffle_factor=8)
        times = measure(unet, official, 1, 512, 77, args.sd15_repeats, train=False)
        report("SD1.5 config, official-sd15 adapter, batch 1, 64x64 latent", unet, official, times)


if __name__ == "__main__":
    main()

"""DDIM sampling, from a frozen base or from a fitted run's posterior: `python -m bayes_bps.sample`.

    python -m bayes_bps.sample                                   # shapes base, test captions
    python -m bayes_bps.sample --base digits --caption "a handwritten digit 7" --n 8
    python -m bayes_bps.sample runs/x                            # 8 test conditions x 8 posterior draws
    python -m bayes_bps.sample runs/x --condition sketch.png --caption "a red circle" --draws 16

Runs are reproducible: the initial noise and every DDIM draw come from one seeded CPU
generator, and a run's posterior draws from `seed` too. `steered_ddim_sample` wraps the UNet
in `steer`, so the same loop samples steered models; `posterior_predictive` samples one
condition under K posterior draws of the steering coefficients.

A run's samples go to --out (default RUN_DIR/samples/): per condition i, grid_i.png
(condition | K draws | posterior mean | per-pixel posterior sd, scaled to its maximum),
mean_i.png and sd_i.png (sd in image units, unscaled), and samples.pt with every tensor.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from diffusers import DDIMScheduler
from PIL import Image
from tqdm.auto import tqdm

from .bayes import COEFFICIENTS, HEAD_SITE, BayesianSteering, posterior_draws
from .data import make_dataset
from .data.folder import GRAYSCALE_MODES, PIL_MODES, load_image
from .grids import save_image_grid, to_unit
from .ports import steer
from .prior import FrozenPrior

if TYPE_CHECKING:  # runs imports fit_options, which imports this module: see `sample_run`
    from .runs import FittedRun

# Classifier-free guidance 3, for base and steered samples alike: without it the embedded
# bases draw colours and classes loosely (see their model cards for the measured gain).
DEFAULT_GUIDANCE_SCALE = 3.0


def start_noise(prior: FrozenPrior, count: int, generator: torch.Generator) -> torch.Tensor:
    """x_T for `count` samples, standard normal in model space, drawn on the CPU."""
    config = prior.unet.config
    return torch.randn((count, config.in_channels, config.sample_size, config.sample_size), generator=generator)


@torch.no_grad()
def ddim_sample(
    prior: FrozenPrior, captions: list[str], *, steps: int = 50, guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
    seed: int = 0, eta: float = 0.0, progress: bool = True, noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """One image in [-1, 1] per caption, with classifier-free guidance when `guidance_scale != 1`.

    `noise` (one x_T per caption, from `start_noise`) replaces the seeded initial noise, so
    callers can start several samples from the same x_T."""
    generator = torch.Generator().manual_seed(seed)
    scheduler = DDIMScheduler.from_config(prior.scheduler.config)
    scheduler.set_timesteps(steps)
    noise = start_noise(prior, len(captions), generator) if noise is None else noise
    if len(noise) != len(captions):
        raise ValueError(f"{len(noise)} initial noises for {len(captions)} captions")
    sample = noise.to(prior.device) * scheduler.init_noise_sigma

    # 1. caption states; the empty caption is the unconditional branch of guidance
    guided = guidance_scale != 1.0
    states = prior.encode_captions(([""] * len(captions) if guided else []) + list(captions))
    # 2. denoise from pure noise, one DDIM step per timestep
    for t in tqdm(scheduler.timesteps, desc="DDIM", disable=not progress, leave=False):
        model_input = torch.cat([sample, sample]) if guided else sample
        predicted = prior.predict_noise(model_input, t, states)
        if guided:
            unconditional, conditional = predicted.chunk(2)
            predicted = unconditional + guidance_scale * (conditional - unconditional)
        sample = scheduler.step(predicted, t, sample, eta=eta, generator=generator).prev_sample
    # 3. back to image space
    return prior.decode_samples(sample)


@torch.no_grad()
def steered_ddim_sample(prior: FrozenPrior, adapter: Callable, scales: Mapping | Callable,
                        conditions: torch.Tensor, captions: list[str], **sampling) -> torch.Tensor:
    """`ddim_sample` with every UNet call steered by `adapter` on `conditions` (one per caption)."""
    with steer(prior.unet, adapter, conditions.to(prior.device), scales):
        return ddim_sample(prior, captions, **sampling)


# ---------------------------------------------------------------------------------------------
# Posterior predictive


def coefficient_draws(run: FittedRun, num_draws: int, seed: int) -> dict[str, torch.Tensor]:
    """`num_draws` joint draws from the run's guide, from `seed` (torch's global RNG, which Pyro
    draws from, is restored afterwards)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return posterior_draws(run.objective.guide, num_draws)


def _draw_major_scales(model: BayesianSteering, draws: Mapping[str, torch.Tensor], batch: int) -> Callable:
    """`steer` scales for K·B images in draw-major order: image k·B + j gets draw k's coefficients.

    The rows are tiled again to the UNet batch, as `steer` tiles the conditions: guidance
    doubles it to [unconditional; conditional]."""
    per_image = {name: draws[name].repeat_interleave(batch, dim=0) for name in COEFFICIENTS}

    def scales(timesteps: torch.Tensor) -> dict[str, torch.Tensor]:
        tiled = {name: value.repeat(len(timesteps) // len(value), 1) for name, value in per_image.items()}
        return model.scales_for(tiled)(timesteps)

    return scales


@torch.no_grad()
def steered_draws(model: BayesianSteering, draws: Mapping[str, torch.Tensor], conditions: torch.Tensor,
                  captions: list[str], *, seed: int = 0, **sampling) -> torch.Tensor:
    """(K, B, C, H, W): each of the B conditions steered by each of the K coefficient draws.

    Every draw of condition j starts from the same x_T (the one `ddim_sample` draws from
    `seed` for B captions), so the spread across draws is the coefficients' uncertainty alone.
    The K draws run as one DDIM loop over K·B images, each image with its draw's port scales.
    Bayesian port heads are adapter weights, which one adapter call cannot vary per image: then
    each draw gets its own loop of B images (same work, less parallelism)."""
    num_draws, batch = len(draws["fusion"]), len(captions)
    noise = start_noise(model.frozen, batch, torch.Generator().manual_seed(seed))
    if any(site.startswith(HEAD_SITE) for site in draws):
        one_by_one = ({site: value[k] for site, value in draws.items()} for k in range(num_draws))
        return torch.stack([
            steered_ddim_sample(model.frozen, model.adapter_for(draw), model.scales_for(draw), conditions,
                                captions, seed=seed, noise=noise, **sampling) for draw in one_by_one])
    images = steered_ddim_sample(model.frozen, model.adapter, _draw_major_scales(model, draws, batch),
                                 conditions.repeat(num_draws, 1, 1, 1), list(captions) * num_draws,
                                 seed=seed, noise=noise.repeat(num_draws, 1, 1, 1), **sampling)
    return images.unflatten(0, (num_draws, batch))


def posterior_steering(model: BayesianSteering, guide, conditions: torch.Tensor) -> AbstractContextManager:
    """`steer` with its own posterior draw of the coefficients for each condition, so every
    image sampled inside is one draw from the posterior predictive (draws from torch's RNG)."""
    if model.bayesian_heads:
        raise ValueError("one adapter call cannot vary Bayesian head weights per image; "
                         "use `posterior_predictive`, which loops over draws")
    draws = posterior_draws(guide, len(conditions))
    return steer(model.frozen.unet, model.adapter, conditions, _draw_major_scales(model, draws, 1))


@torch.no_grad()
def one_draw_per_image(model: BayesianSteering, guide, conditions: torch.Tensor, captions: list[str], *,
                       seed: int = 0, **sampling) -> torch.Tensor:
    """Posterior-predictive samples in [-1, 1], image j steered by its own coefficient draw.

    The draws come from `seed` (torch's global RNG is restored afterwards), as does the noise."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        with posterior_steering(model, guide, conditions.to(model.frozen.device)):
            return ddim_sample(model.frozen, captions, seed=seed, **sampling)


def posterior_predictive(run: FittedRun, conditions: torch.Tensor, captions: list[str], num_draws: int, *,
                         steps: int = 50, seed: int = 0, guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
                         progress: bool = True) -> torch.Tensor:
    """Samples in [-1, 1], (K, B, C, H, W): K posterior draws of the gates and fusion
    coefficients (and heads, if Bayesian) per condition, all from the condition's one x_T
    (see `steered_draws`). Time and memory are linear in K (one batch of K·B images: pass fewer
    conditions per call for a large base). A deterministic run has no posterior: it gives one
    draw, (1, B, C, H, W), whatever `num_draws`."""
    sampling = {"steps": steps, "seed": seed, "guidance_scale": guidance_scale, "progress": progress}
    if not run.bayesian:
        objective = run.objective
        return steered_ddim_sample(run.prior, objective.adapter, objective.scales, conditions, captions,
                                   **sampling)[None]
    draws = coefficient_draws(run, num_draws, seed)
    return steered_draws(run.objective.model, draws, conditions, captions, **sampling)


def predictive_summary(draws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior-mean images (B, C, H, W) and the per-pixel posterior sd averaged over channels
    (B, 1, H, W), in image units; the sd of a single draw is zero."""
    sd = draws.std(dim=0) if len(draws) > 1 else torch.zeros_like(draws[0])
    return draws.mean(dim=0), sd.mean(dim=1, keepdim=True)


# ---------------------------------------------------------------------------------------------
# Files


def load_condition(path: Path, channels: int, resolution: int) -> torch.Tensor:
    """A condition image as the run's conditions are: (channels, resolution, resolution) in [0, 1].

    Nothing is resized or converted between grey and colour: a mismatch is an error naming
    the file, since a silently adapted condition would steer with something else."""
    image = load_image(path)
    found = (1 if image.mode in GRAYSCALE_MODES else 3, image.height, image.width)
    if found != (channels, resolution, resolution):
        raise ValueError(f"condition {path} is (channels, height, width) = {found}; this run takes "
                         f"{(channels, resolution, resolution)} (the run's condition channels, the base's resolution)")
    pixels = np.asarray(image.convert(PIL_MODES[channels]), dtype=np.float32) / 255
    return torch.from_numpy(pixels.reshape(resolution, resolution, channels)).permute(2, 0, 1).contiguous()


def save_png(image: torch.Tensor, path: Path) -> None:
    """One (C, H, W) image in [0, 1] as an 8-bit PNG, pixel for pixel."""
    pixels = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0)
    Image.fromarray(pixels.squeeze(-1).numpy() if pixels.shape[-1] == 1 else pixels.numpy()).save(path)


def write_samples(out: Path, draws: torch.Tensor, conditions: torch.Tensor, captions: list[str],
                  **facts) -> Path:
    """The grids, mean and sd PNGs and samples.pt of the module docstring; `facts` go into samples.pt."""
    out.mkdir(parents=True, exist_ok=True)
    draws = draws.cpu()
    mean, sd = predictive_summary(draws)
    top = sd.max().clamp(min=1e-8)
    labels = ["condition", *(f"draw {k + 1}" for k in range(len(draws))), "posterior mean",
              f"posterior sd (max {top.item():.2f})"]
    for i, caption in enumerate(captions):
        row = [conditions[i].cpu(), *to_unit(draws[:, i]), to_unit(mean[i]), sd[i] / top]
        save_image_grid([row], out / f"grid_{i:03d}.png", row_labels=[caption], column_labels=labels)
        save_png(to_unit(mean[i]), out / f"mean_{i:03d}.png")
        save_png(sd[i], out / f"sd_{i:03d}.png")
    torch.save({"draws": draws, "mean": mean, "std": sd, "conditions": conditions.cpu(),
                "captions": list(captions), **facts}, out / "samples.pt")
    return out


def default_captions(prior: FrozenPrior, count: int) -> list[str]:
    """Captions of the base's own test split, for bases pretrained on a built-in domain."""
    if prior.domain not in ("shapes", "digits"):
        raise ValueError("this base was not pretrained on a built-in domain: pass --caption")
    dataset = make_dataset(prior.domain, split="test", length=count, resolution=prior.resolution)
    return [dataset[i][2] for i in range(count)]


def sample_grid(prior: FrozenPrior, captions: list[str], per_caption: int, out: Path, *,
                steps: int, guidance_scale: float, seed: int) -> Path:
    """Sample `per_caption` images for each caption and save them as one labelled grid."""
    repeated = [caption for caption in captions for _ in range(per_caption)]
    images = ddim_sample(prior, repeated, steps=steps, guidance_scale=guidance_scale, seed=seed)
    rows = list(to_unit(images).split(per_caption))
    return save_image_grid(rows, out, row_labels=captions)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bayes_bps.sample", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, help="a fit's run folder: sample its posterior "
                        "predictive (omit to sample a bare --base)")
    parser.add_argument("--base", help="without RUN_DIR: embedded base name or diffusers folder [shapes]")
    parser.add_argument("--caption", action="append", help="caption (repeatable); default: the captions of "
                        "the base's test split, or of the run's --split conditions")
    parser.add_argument("--num-captions", type=int, default=6, help="without RUN_DIR: test captions when none given [6]")
    parser.add_argument("--n", type=int, help="samples per caption [6]; with RUN_DIR: conditions from --split [8]")
    parser.add_argument("--split", choices=("test", "train"), help="with RUN_DIR: where conditions come from "
                        "(folder datasets have only train pairs) [test]")
    parser.add_argument("--condition", action="append", type=Path, help="with RUN_DIR: a condition image "
                        "(repeatable) instead of --split; needs --caption, once or once per condition")
    parser.add_argument("--draws", type=int, help="with RUN_DIR: posterior draws per condition [8] "
                        "(a deterministic run gives one)")
    parser.add_argument("--checkpoint", type=Path, help="with RUN_DIR: checkpoint folder [the latest]")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps (1-1000) [50]")
    parser.add_argument("--guidance-scale", type=float, default=DEFAULT_GUIDANCE_SCALE,
                        help=f"classifier-free guidance (1: off) [{DEFAULT_GUIDANCE_SCALE}]")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial noise and the posterior draws [0]")
    parser.add_argument("--out", type=Path, help="PNG grid to write [samples.png]; with RUN_DIR: "
                        "folder to write [RUN_DIR/samples]")
    return parser


def sample_base(args: argparse.Namespace) -> Path:
    """The bare base: `--n` samples per caption in one labelled grid."""
    prior = FrozenPrior.from_pretrained(args.base or "shapes")
    captions = args.caption or default_captions(prior, args.num_captions)
    return sample_grid(prior, captions, args.n or 6, args.out or Path("samples.png"), steps=args.steps,
                       guidance_scale=args.guidance_scale, seed=args.seed)


def run_conditions(run: FittedRun, args: argparse.Namespace) -> tuple[torch.Tensor, list[str]]:
    """The conditions to sample: image files, or the first `--n` of the run's test or train split."""
    if args.condition:
        if args.n is not None or args.split is not None:
            raise ValueError("--n and --split choose conditions from the run's data; not with --condition")
        if not args.caption:
            raise ValueError("--condition needs --caption: one for every condition, or one per condition")
        channels, resolution = run.pairs.condition_channels, run.prior.resolution
        conditions = torch.stack([load_condition(path, channels, resolution) for path in args.condition])
        captions = []
    elif args.split == "train":
        conditions, captions = run.pairs.conditions[: args.n or 8].cpu(), run.pairs.captions[: args.n or 8]
    else:
        _, conditions, captions, _ = run.held_out(args.n or 8)
    if args.caption:
        if len(args.caption) not in (1, len(conditions)):
            raise ValueError(f"{len(args.caption)} --caption for {len(conditions)} conditions: give one "
                             "for every condition, or one per condition")
        captions = args.caption * len(conditions) if len(args.caption) == 1 else args.caption
    return conditions, captions


def sample_run(args: argparse.Namespace) -> Path:
    """A fitted run: `--draws` posterior-predictive samples per condition, written by `write_samples`."""
    # imported here, not at the top: runs imports fit_options, which imports this module
    from .runs import load_run

    run = load_run(args.run_dir, args.checkpoint)
    conditions, captions = run_conditions(run, args)
    draws = posterior_predictive(run, conditions, captions, args.draws or 8, steps=args.steps, seed=args.seed,
                                 guidance_scale=args.guidance_scale)
    if not run.bayesian:
        print("a deterministic run has no posterior: one sample per condition, zero sd")
    return write_samples(args.out or args.run_dir / "samples", draws, conditions, captions, seed=args.seed,
                         steps=args.steps, guidance_scale=args.guidance_scale, bayesian=run.bayesian)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 1 <= args.steps <= 1000:
        parser.error(f"--steps must be in 1..1000, got {args.steps}")
    for name in ("n", "draws", "num_captions"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    run_only = [flag for flag in ("split", "condition", "draws", "checkpoint") if getattr(args, flag) is not None]
    if args.run_dir is None and run_only:
        parser.error(f"--{run_only[0]} needs a RUN_DIR")
    if args.run_dir is not None and args.base is not None:
        parser.error("--base: a run samples the base it was fitted on (its options.json)")
    try:
        path = sample_base(args) if args.run_dir is None else sample_run(args)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Sample a base, or a fitted run's posterior predictive: `python -m bayes_bps.sample`.

    python -m bayes_bps.sample                                   # shapes base, test captions
    python -m bayes_bps.sample --base digits --caption "a handwritten digit 7" --n 8
    python -m bayes_bps.sample runs/x                            # 8 test conditions x 8 posterior draws
    python -m bayes_bps.sample runs/x --condition sketch.png --caption "a red circle" --draws 16
    python -m bayes_bps.sample exported/x --condition sketch.png --caption "a red circle"   # no data needed

Runs are reproducible: the initial noise, every DDIM draw and a run's posterior draws come from
`--seed`. A bare base writes one labelled grid (--out, default samples.png). A run and an
exported pipeline folder (`python -m bayes_bps.export`) are both sampled through `BPSPipeline`
(a run's own pipeline is built in memory, as `export` would write it) and write, to --out
(default FOLDER/samples/), per condition i grid_i.png (condition | K draws | posterior mean |
per-pixel posterior sd), mean_i.png and sd_i.png, and samples.pt with every tensor. A run reads
its training pairs from its pairs.pt, so `--condition` files or `--split train` need no data;
its held-out split is drawn from the data. An exported folder needs `--condition` files.
Each writes its resolved options as JSON beside what it wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .base import SCHEDULERS, FrozenBase
from .base.sampler import caption_grid
from .pipelines import BPSPipeline, pipeline_for
from .sampling import held_out_captions, load_condition, write_samples
from .sampling.options import SampleOptions
from .training import FittedRun, load_run
from .utils import options as option_files
from .utils.cli import fail
from .utils.grids import save_png


def sample_base(options: SampleOptions) -> Path:
    """The bare base: `--n` samples per caption in one labelled grid."""
    base = FrozenBase.from_pretrained(options.base or "shapes")
    captions = options.caption or held_out_captions(base, options.num_captions)
    out = options.out or Path("samples.png")
    save_png(caption_grid(base, captions, options.n or 6, steps=options.steps, guidance_scale=options.guidance_scale,
                          seed=options.seed, scheduler=options.scheduler), out)
    option_files.write(options, out.with_suffix(".options.json"))
    return out


def condition_files(options: SampleOptions, channels: int, resolution: int) -> torch.Tensor:
    """The `--condition` images, checked against the adapter's channels and the base's resolution."""
    return torch.stack([load_condition(path, channels, resolution) for path in options.condition])


def given_captions(options: SampleOptions, count: int) -> list[str]:
    """`--caption` for `count` conditions: one for all, or one each."""
    if len(options.caption) not in (1, count):
        raise ValueError(f"{len(options.caption)} --caption for {count} conditions: give one for every "
                         "condition, or one per condition")
    return options.caption * count if len(options.caption) == 1 else options.caption


def run_conditions(run: FittedRun, options: SampleOptions) -> tuple[torch.Tensor, list[str]]:
    """The conditions to sample: image files, or the first `--n` of the run's held-out or train split."""
    count = options.n or 8
    if options.condition:
        conditions, captions = condition_files(options, run.pairs.condition_channels, run.base.resolution), []
    elif options.split == "train":
        conditions, captions = run.pairs.conditions[:count].cpu(), run.pairs.captions[:count]
    else:
        _, conditions, captions, _ = run.held_out(count)
    if options.caption:
        captions = given_captions(options, len(conditions))
    return conditions, captions


def sample_through(pipe: BPSPipeline, conditions: torch.Tensor, captions: list[str], options: SampleOptions,
                   out: Path) -> Path:
    """`--draws` posterior-predictive samples per condition from `pipe`, written by `write_samples`."""
    pipe.scheduler = SCHEDULERS[options.scheduler].from_config(pipe.scheduler.config)
    result = pipe(captions, image=conditions, num_posterior_draws=options.draws or 8,
                  generator=torch.Generator().manual_seed(options.seed), num_inference_steps=options.steps,
                  guidance_scale=options.guidance_scale, output_type="pt")
    draws = result.images.unflatten(0, (len(conditions), -1)).transpose(0, 1) * 2 - 1  # (K, B, C, H, W)
    out = write_samples(out, draws, conditions, captions, seed=options.seed, steps=options.steps,
                        guidance_scale=options.guidance_scale, scheduler=options.scheduler,
                        bayesian=pipe.posterior.config.bayesian)
    option_files.write(options, out / "options.json")
    return out


def sample_run(options: SampleOptions) -> Path:
    """A fitted run, through the pipeline it exports to (`pipeline_for`), held in memory."""
    run = load_run(options.run_dir, options.checkpoint)
    conditions, captions = run_conditions(run, options)
    if not run.bayesian:
        print("a deterministic run has no posterior: one sample per condition, zero sd")
    return sample_through(pipeline_for(run), conditions, captions, options, options.out or options.run_dir / "samples")


def is_exported(folder: Path) -> bool:
    index = folder / "model_index.json"
    return index.is_file() and json.loads(index.read_text()).get("_class_name") == BPSPipeline.__name__


def sample_exported(options: SampleOptions) -> Path:
    """An exported pipeline folder (`python -m bayes_bps.export`): no training data, so the
    conditions are `--condition` files with their `--caption`s; written like a run's samples."""
    if not options.condition or not options.caption:
        raise ValueError(f"{options.run_dir} is an exported pipeline and holds no conditions: pass --condition "
                         "PNG and --caption (once, or once per condition)")
    pipe = BPSPipeline.from_pretrained(options.run_dir)
    conditions = condition_files(options, pipe.adapter.config.condition_channels, pipe.frozen_base().resolution)
    captions = given_captions(options, len(conditions))
    return sample_through(pipe, conditions, captions, options, options.out or options.run_dir / "samples")


def main(argv: list[str] | None = None) -> None:
    try:
        options, _ = option_files.parse(SampleOptions, argv, "python -m bayes_bps.sample", __doc__.splitlines()[0])
        if options.run_dir is None:
            path = sample_base(options)
        else:
            path = sample_exported(options) if is_exported(options.run_dir) else sample_run(options)
    except (ValueError, FileNotFoundError) as error:
        fail(error)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

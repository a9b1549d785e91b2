"""The model card of a pretrained base: how it was made and how well it draws its captions."""

from __future__ import annotations

from pathlib import Path

from .options import PretrainOptions


def write_model_card(out: Path, options: PretrainOptions, stats: dict) -> None:
    stages = stats["stages"]
    wall = sum(stage["wall_seconds"] for stage in stages)
    weighting = f", Min-SNR-γ weighted (γ = {options.min_snr_gamma:g})" if options.min_snr_gamma > 0 else ""
    image = f"{stats['image_channels']} × {options.resolution} × {options.resolution}"
    lines = [
        f"# Embedded base: {options.domain}",
        "",
        "A small pixel-space diffusion model (diffusers `UNet2DConditionModel`) with a word-level",
        "caption encoder, pretrained from scratch by bayes_bps. It is the frozen prior that",
        "Bayesian Power Steering adapts.",
        "",
        "| | |", "|---|---|",
        f"| seed | {options.seed} |",
        f"| training steps | {sum(stage['steps'] for stage in stages)} in {len(stages)} stage(s), below |",
        f"| wall time | {wall / 60:.1f} min in all |",
        f"| loss | ε-MSE{weighting}, caption dropout {options.caption_dropout:g}, EMA {options.ema_decay:g} |",
        f"| UNet parameters | {stats['unet_parameters']:,} |",
        f"| caption encoder parameters | {stats['caption_parameters']:,} |",
        f"| image | {image}, pixel space, values in [-1, 1] |",
        f"| final loss (mean of last 100 steps) | {stats['final_loss']:.4f} |",
        "",
        "| stage | command | steps × batch | wall time |", "|---|---|---|---|",
        *(f"| {i + 1} | `python -m bayes_bps.pretrain {' '.join(stage['argv'])}` | "
          f"{stage['steps']} × {stage['batch_size']} | {stage['wall_seconds'] / 60:.1f} min "
          f"({stage['wall_seconds'] / stage['steps']:.2f} s/step, {stage['machine']}) |"
          for i, stage in enumerate(stages)),
        "",
        "![loss curve of the last stage](loss.png)",
        "",
    ]
    if "evaluation" in stats:
        evaluation = stats["evaluation"]
        rows = [(f"generated, guidance {evaluation['generated']['guidance_scale']:g} (the default)",
                 evaluation["generated"]),
                ("generated, guidance 1 (none)", evaluation["generated_unguided"]),
                ("real validation images (classifier ceiling)", evaluation["real_validation"])]
        lines += [
            "## Does it draw what the caption says?",
            "",
            f"The shipped domain classifier (`classifier/`, {stats['classifier_steps']} training steps) "
            f"reads the caption's content back from {evaluation['generated']['n']} samples generated for "
            f"validation-split captions (DDIM {options.eval_ddim_steps} steps, the same noise at both "
            "guidance scales). "
            "Agreement is the fraction of images whose predicted labels equal the caption's exactly; "
            "label F1 scores the overlap of the predicted and captioned label sets (it equals "
            "agreement for one label per image); chance is each score against shuffled captions.",
            "",
            "| images | agreement | chance | label F1 | chance |", "|---|---|---|---|---|",
            *(f"| {name} | {result['agreement']:.3f} | {result['chance']:.3f} | "
              f"{result['label_f1']:.3f} | {result['label_f1_chance']:.3f} |"
              for name, result in rows),
            "",
            "![samples](samples.png)",
            "",
        ]
    (out / "README.md").write_text("\n".join(lines))

"""A fitted run as a self-contained `BPSPipeline` folder, with a model card.

The folder is what `BPSPipeline.from_pretrained` reads: the base's components, the adapter, the
posterior (safetensors), `model_index.json`, and a `README.md` model card (huggingface_hub's
`ModelCard`) with the fit's options and its evaluation. Sampling it needs no training data.
"""

from __future__ import annotations

import json
from pathlib import Path

from diffusers import DDIMScheduler
from huggingface_hub import ModelCard

from ..bayes.exported import SteeringPosterior
from ..training import FittedRun, load_run
from ..utils import options as option_files
from .bps import BPSPipeline


def pipeline_for(run: FittedRun) -> BPSPipeline:
    base, objective = run.base, run.objective
    if run.bayesian:
        posterior = SteeringPosterior.from_guide(objective.model, objective.guide)
    else:
        posterior = SteeringPosterior.from_weights(dict(objective.weights), base.num_train_timesteps)
    return BPSPipeline(unet=base.unet, scheduler=DDIMScheduler.from_config(base.scheduler.config),
                       text_encoder=base.text_encoder, adapter=objective.export_adapter(), posterior=posterior,
                       tokenizer=base.tokenizer, vae=base.vae)


def _model_card(run_dir: Path, run: FittedRun) -> ModelCard:
    evaluation_file = run_dir / "evaluation.json"
    evaluation = json.loads(evaluation_file.read_text()) if evaluation_file.is_file() else {}
    rows = []
    for samples in ("unsteered", "steered", "posterior_predictive", "real"):
        for metric, score in evaluation.get(samples, {}).items():
            if "low" in score:
                rows.append(f"| {samples} | {metric} | {score['value']:.3f} [{score['low']:.3f}, {score['high']:.3f}] "
                            f"| {score['n']} |")
    kind = "Bayesian (posterior over the port weights and time profiles)" if run.bayesian else "deterministic"
    lines = [
        "---", "library_name: diffusers", "tags: [bayes_bps, steering]", "---", "",
        f"# Bayesian Power Steering: {run_dir.name}", "",
        f"A {kind} BPS steering of a frozen base, exported from `{run_dir}` by `python -m bayes_bps.export`.",
        "", "```python", "from bayes_bps import BPSPipeline",
        "pipe = BPSPipeline.from_pretrained(FOLDER)",
        "out = pipe(prompt, image=condition, num_posterior_draws=8)   # out.images, out.mean, out.sd", "```", "",
        f"## Evaluation ({evaluation.get('conditions', 'not evaluated')})", "",
        "| samples | metric | value [95 % interval] | n |", "|---|---|---|---|", *rows, "",
        "## Fit options", "", "```json", option_files.to_json(run.options).strip(), "```", ""]
    return ModelCard("\n".join(lines))


def export_run(run_dir: str | Path, out: str | Path) -> Path:
    """Write the run's pipeline folder to `out`; returns it."""
    run_dir, out = Path(run_dir), Path(out)
    run = load_run(run_dir, device="cpu")
    pipeline_for(run).save_pretrained(out)
    _model_card(run_dir, run).save(out / "README.md")
    return out

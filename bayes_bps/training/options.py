"""The options of `python -m bayes_bps.fit`: one readable block, each flag's help beside its field.

Precedence: defaults < config file (YAML or TOML, keys as the flags without dashes) < flags.
The priors are a nested group (`bayes.SteeringPriors`): their flags sit with the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..base import DEFAULT_GUIDANCE_SCALE, SCHEDULERS
from ..base.pairs import TIMESTEP_SAMPLING
from ..bayes import GUIDE_FAMILIES, GUIDE_LEARNING_RATES, SteeringPriors
from ..data import HELD_OUT, check_task, parse_domain
from ..steering import PRESETS, PROFILES
from ..utils.options import option


@dataclass
class FitOptions:
    # what to adapt, to what
    base: str = option("shapes", "embedded base ('shapes', 'digits') or a local diffusers folder")
    domain: str = option("shapes", "training data: shapes, digits, or folder:PATH (source/, target/, prompt.json)")
    task: str = option("sketch", "condition type: sketch, segmentation, layout, style (shapes); sketch otherwise")
    n_train: int = option(40, "number of training pairs", low=1)
    # the steering network
    preset: str = option("lite", "adapter size", choices=PRESETS)
    profile: str = option("head-heavy", "prior mean (or fixed value) of the port weights: "
                          f"{', '.join(PROFILES)}, or a JSON file {{port: weight}} such as a Bayesian run's "
                          "posterior_profile.json")
    deterministic: bool = option(False, "run the official recipe (fixed weights, ε-MSE) through the same loop")
    # priors and likelihood
    temperature: float | None = option(None, "likelihood temperature λ (default: calibrated from the data, "
                                       "see --calibrate-temperature)", above=0)
    calibrate_temperature: bool = option(True, "without --temperature: estimate λ by the sandwich rule after "
                                         "the warm-up (bayes/temperature.py) and fix it; --no-calibrate-temperature "
                                         "uses λ = 1/D (each example one observation)")
    priors: SteeringPriors = option(SteeringPriors(), "priors of the steering coefficients")
    guide: str = option("mean-field", "variational family of the coefficients: mean-field; full-rank (their "
                        "correlations); flow (also curved dependence). The last two need point-estimated heads",
                        choices=GUIDE_FAMILIES)
    # optimisation
    steps: int = option(1000, "optimisation steps", low=1)
    batch_size: int = option(8, "pairs per step", low=1)
    timestep_sampling: str = option("uniform", "training timesteps: uniform, or high-noise (T2I-Adapter's "
                                    "t = (1 - u^3) T)", choices=TIMESTEP_SAMPLING)
    caption_dropout: float = option(0.0, "fraction of training captions replaced by the empty one "
                                    "(ControlNet's recipe drops half)", low=0, high=0.99)
    lr: float = option(1e-3, "learning rate of the adapter body and σ", above=0)
    guide_lr: float | None = option(None, "learning rate of the variational parameters (default: the family's, "
                                    + ", ".join(f"{family} {rate:g}" for family, rate in GUIDE_LEARNING_RATES.items())
                                    + ")", above=0)
    noise_lr: float = option(5e-2, "learning rate of the likelihood's log σ(t)", above=0)
    grad_clip: float = option(1.0, "maximum gradient norm of the network (σ(t) and the guide are not clipped)",
                              above=0)
    weight_decay: float = option(0.0, "AdamW's decoupled weight decay of the network, an L2 penalty (σ(t) and "
                                 "the guide are not decayed; the official recipe has none)", low=0)
    steering_warmup: int = option(100, "steps over which the Bayesian steering strength ramps from 0 (the "
                                  "frozen UNet) to 1", low=0)
    kl_anneal_steps: int = option(0, "ramp the KL weight from 0 to 1 over this many steps (0: off)", low=0)
    seed: int = option(0, "seed of every random draw", low=0)
    # outputs
    out: str | None = option(None, "run folder (default: runs/<domain>-<task>-<bayes|deterministic>-n<N>-seed<S>)")
    checkpoint_every: int = option(200, "steps between checkpoints", low=1)
    checkpoints_total_limit: int = option(2, "checkpoints kept (the oldest are deleted)", low=1)
    report_to: str = option("none", "tracker of the loss, KL, λ, σ(t) and port medians (RUN/logs)",
                            choices=("none", "tensorboard"))
    log_every: int = option(10, "steps between tracker logs", low=1)
    validation_steps: int = option(0, "every N steps, sample the first --grid-conditions held-out conditions "
                                   "(posterior mean and sd) into RUN/validation/ and the tracker (0: off)", low=0)
    posterior_draws: int = option(8, "posterior draws per condition behind the sd in samples.png", low=2)
    grid_conditions: int = option(6, "conditions shown in samples.png", low=1)
    eval_split: str = option("validation", "held-out split of evaluation.json (keep test for the study's "
                             "final numbers)", choices=HELD_OUT)
    eval_domain: str | None = option(None, "a held-out folder:PATH to evaluate a folder fit on (without it, "
                                     "a folder fit is evaluated on its own training pairs)")
    eval_samples: int = option(64, "held-out conditions for evaluation.json", low=1)
    ddim_steps: int = option(50, "sampling steps of the evaluation (DDIM by default)", low=1)
    scheduler: str = option("ddim", "sampler of the evaluation", choices=SCHEDULERS)
    guidance_scale: float = option(DEFAULT_GUIDANCE_SCALE, "classifier-free guidance scale when sampling", above=0)
    sample_cache: bool = option(True, "reuse the unsteered evaluation samples of earlier fits of the same base "
                                "($BAYES_BPS_CACHE, default ~/.cache/bayes_bps)")

    def validate(self) -> None:
        if self.profile not in PROFILES and not self.profile.endswith(".json"):
            raise ValueError(f"--profile must be one of {', '.join(PROFILES)} or a .json file, got {self.profile!r}")
        parse_domain(self.domain)
        check_task(self.domain, self.task)
        if self.guide != "mean-field" and self.priors.head_scale is not None:
            raise ValueError(f"--guide {self.guide} covers the coefficients only; Bayesian heads (--head-prior-scale) "
                             "need --guide mean-field")
        if self.eval_domain is not None:
            if not parse_domain(self.eval_domain)[0].needs_path:
                raise ValueError(f"--eval-domain must be a folder:PATH, got {self.eval_domain!r}; a built-in "
                                 "domain is evaluated on its --eval-split")
            check_task(self.eval_domain, self.task)

    @property
    def domain_name(self) -> str:
        return parse_domain(self.domain)[0].name

    @property
    def run_dir(self) -> Path:
        if self.out is not None:
            return Path(self.out)
        _, path = parse_domain(self.domain)
        source = Path(path).name if path else self.domain
        kind = "deterministic" if self.deterministic else "bayes"
        return Path("runs") / f"{source}-{self.task}-{kind}-n{self.n_train}-seed{self.seed}"

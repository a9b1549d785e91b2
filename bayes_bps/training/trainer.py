"""One optimisation loop for every steering method, deterministic, Bayesian or a baseline.

The frozen UNet receives no gradient and no update; only the objective's parameter groups are
trained (`objective.py` says what an objective provides).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from ..base import FrozenBase, TrainingPairs
from ..steering import BPSAdapter, profile_weights
from .deterministic import DeterministicObjective
from .objective import SteeringObjective
from .options import FitOptions


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the step is named so the run can be inspected."""


class SteeringTrainer:
    """Minibatches from the training pairs, AdamW, gradient clipping per group, a resumable state;
    optionally T2I-Adapter's high-noise timesteps, ControlNet's caption dropout and an L2
    penalty on the network (AdamW's decoupled `weight_decay`, 0 in the official recipe).

    Every random draw of a step (the minibatch, t, ε) comes from one seeded generator, and the
    Bayesian guide's draws from torch's global generator; both are part of `state_dict`, so a
    run restored from it continues exactly as if it had never stopped.
    """

    def __init__(self, base: FrozenBase, pairs: TrainingPairs, objective: SteeringObjective, *,
                 batch_size: int, lr: float, guide_lr: float | None = None, noise_lr: float = 5e-2,
                 grad_clip: float = 1.0, weight_decay: float = 0.0, seed: int = 0,
                 timestep_sampling: str = "uniform", caption_dropout: float = 0.0, accelerator=None):
        if not 0 <= caption_dropout < 1:
            raise ValueError(f"caption_dropout must be in [0, 1), got {caption_dropout}")
        self.base, self.pairs, self.batch_size = base, pairs, batch_size
        self.timestep_sampling, self.caption_dropout = timestep_sampling, caption_dropout
        self.empty_caption_states = base.encode_captions([""]) if caption_dropout > 0 else None
        self.objective, self.accelerator = objective, accelerator
        self.loss_label = objective.loss_label
        groups = objective.parameter_groups(lr, guide_lr=guide_lr, noise_lr=noise_lr)
        for group in groups:
            group.setdefault("max_grad_norm", grad_clip)
            group.setdefault("weight_decay", weight_decay)
        self.optimizer = torch.optim.AdamW(groups)
        if accelerator is not None:  # DDP-wraps the objective on several processes
            self.objective, self.optimizer = accelerator.prepare(objective, self.optimizer)
        process = 0 if accelerator is None else accelerator.process_index
        self.generator = torch.Generator().manual_seed(seed + process)
        self.step = 0
        self.losses: list[float] = []

    def train(self, steps: int, on_step: Callable[[int], None] | None = None,
              description: str = "steer", progress: bool = True) -> list[float]:
        """Run until `steps` steps are done in all; `on_step(step)` follows each (checkpoints)."""
        with tqdm(total=steps, initial=self.step, desc=description, disable=not progress) as bar:
            while self.step < steps:
                indices = self.pairs.draw_indices(self.batch_size, self.generator)
                batch = self.pairs.noisy_batch(self.base, indices, self.generator, self.timestep_sampling,
                                               self.caption_dropout, self.empty_caption_states)
                loss = self.objective(batch, self.step)
                if not torch.isfinite(loss):
                    raise NonFiniteLossError(f"loss is {loss.item()} at step {self.step}; stopped "
                                             "(the last checkpoint, if any, is the last good state)")
                self.optimizer.zero_grad(set_to_none=True)
                if self.accelerator is None:
                    loss.backward()
                else:
                    self.accelerator.backward(loss)
                for group in self.optimizer.param_groups:  # each group on its own threshold
                    if group["max_grad_norm"] is not None:
                        torch.nn.utils.clip_grad_norm_(group["params"], group["max_grad_norm"])
                self.optimizer.step()
                self.losses.append(loss.item())
                self.step += 1
                bar.update()
                rate = bar.format_dict["rate"]  # steps per second, smoothed by tqdm
                bar.set_postfix({self.loss_label: f"{loss.item():.4g}",
                                 "s/step": f"{1 / rate:.3f}" if rate else "?"})
                if on_step is not None:
                    on_step(self.step)
        return self.losses

    def _unwrapped(self) -> SteeringObjective:
        return self.objective if self.accelerator is None else self.accelerator.unwrap_model(self.objective)

    def _random_states(self) -> dict[str, torch.Tensor]:
        states = {"generator": self.generator.get_state(), "torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available():
            states["cuda_rng"] = torch.cuda.get_rng_state()
        return states

    def state_dict(self) -> dict:
        """Everything a resumed run needs. Under several processes every rank must call it: the
        random states of all ranks are gathered (each rank draws its own minibatches), and
        the main process saves them all."""
        states = self._random_states()
        state = {"objective": self._unwrapped().state_dict(), "optimizer": self.optimizer.state_dict(),
                 **states, "step": self.step, "losses": list(self.losses)}
        if self.accelerator is not None and self.accelerator.num_processes > 1:
            device = self.accelerator.device
            state["per_rank"] = {name: self.accelerator.gather(value[None].to(device)).cpu()
                                 for name, value in states.items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        self._unwrapped().load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        states = {name: state[name] for name in ("generator", "torch_rng", "cuda_rng") if name in state}
        processes = 1 if self.accelerator is None else self.accelerator.num_processes
        if processes > 1:
            saved = len(state["per_rank"]["generator"]) if "per_rank" in state else 1
            if saved != processes:
                raise ValueError(f"this checkpoint was written by {saved} process(es); resume it with {saved}, "
                                 f"not {processes}, so that every rank continues its own random draws")
            states = {name: rows[self.accelerator.process_index].clone() for name, rows in state["per_rank"].items()}
        self.generator.set_state(states["generator"])
        torch.set_rng_state(states["torch_rng"])
        if "cuda_rng" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state(states["cuda_rng"])
        self.step, self.losses = state["step"], list(state["losses"])


def trainer_for(options: FitOptions, base: FrozenBase, pairs: TrainingPairs, objective: SteeringObjective,
                accelerator=None) -> SteeringTrainer:
    """The trainer a fit's options describe."""
    return SteeringTrainer(base, pairs, objective, batch_size=options.batch_size, lr=options.lr,
                           guide_lr=options.guide_lr, noise_lr=options.noise_lr, grad_clip=options.grad_clip,
                           weight_decay=options.weight_decay, seed=options.seed,
                           timestep_sampling=options.timestep_sampling, caption_dropout=options.caption_dropout,
                           accelerator=accelerator)


def train_adapter(
    base: FrozenBase, adapter: BPSAdapter, pairs: TrainingPairs, *, steps: int,
    batch_size: int = 8, lr: float = 1e-3, profile: str = "head-heavy", seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """The official recipe in one call: fit the adapter by ε-MSE with fixed port weights."""
    objective = DeterministicObjective(base, adapter, profile_weights(base.unet, profile))
    trainer = SteeringTrainer(base, pairs, objective, batch_size=batch_size, lr=lr, seed=seed)
    adapter.train()
    losses = trainer.train(steps, description="steer (deterministic)", progress=progress)
    adapter.eval()
    return losses

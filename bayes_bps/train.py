"""One optimisation loop for steering, deterministic or Bayesian.

The deterministic objective is the official BPS recipe: ε-MSE at uniform t, AdamW on the
adapter, the official fixed fusion constants (the head-heavy profile) as port scales. The
Bayesian objective (`bayes.ELBOObjective`) plugs into the same `SteeringTrainer`. The frozen
UNet receives no gradient and no update in either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .adapter import BPSAdapter
from .pairs import NoisyBatch, TrainingPairs
from .ports import PROFILES, find_ports, steer
from .prior import FrozenPrior


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the step is named so the run can be inspected."""


def adapter_for(prior: FrozenPrior, preset: str, condition_channels: int) -> BPSAdapter:
    """A fresh adapter shaped for the prior's UNet; conditions unshuffle by the VAE factor."""
    return BPSAdapter.from_unet(prior.unet, preset=preset, condition_channels=condition_channels,
                                unshuffle_factor=prior.latent_factor).to(prior.device)


def profile_scales(prior: FrozenPrior, profile: str) -> dict[str, float]:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[profile](find_ports(prior.unet))


def steered_noise(prior: FrozenPrior, adapter: Callable, batch: NoisyBatch,
                  scales: Mapping[str, float | torch.Tensor] | Callable) -> torch.Tensor:
    """ε̂ of the steered UNet for a batch: ε_prior plus the steering the adapter adds."""
    with steer(prior.unet, adapter, batch.conditions, scales):
        return prior.predict_noise(batch.noisy, batch.timesteps, batch.caption_states)


class DeterministicObjective(nn.Module):
    """The official recipe's loss: ε-MSE of the adapter steering with fixed port scales."""

    loss_name = "mse"

    def __init__(self, prior: FrozenPrior, adapter: BPSAdapter, scales: Mapping[str, float]):
        super().__init__()
        self.adapter, self.scales = adapter, dict(scales)
        self._prior = (prior,)  # a tuple: the frozen prior is not part of this module's state

    def forward(self, batch: NoisyBatch, step: int) -> torch.Tensor:
        return F.mse_loss(steered_noise(self._prior[0], self.adapter, batch, self.scales), batch.noise)

    def export_adapter(self) -> BPSAdapter:
        return self.adapter

    def parameter_groups(self, lr: float, guide_lr: float) -> list[dict]:
        return [{"params": list(self.adapter.parameters()), "lr": lr}]


class SteeringTrainer:
    """Minibatches from the training pairs, AdamW, gradient clipping, a resumable state.

    Every random draw of a step (the minibatch, t, ε) comes from one seeded generator, and the
    Bayesian guide's draws from torch's global generator; both are part of `state_dict`, so a
    run restored from it continues exactly as if it had never stopped.
    """

    def __init__(self, prior: FrozenPrior, pairs: TrainingPairs, objective: nn.Module, *,
                 batch_size: int, lr: float, guide_lr: float = 1e-2, grad_clip: float = 1.0,
                 seed: int = 0, accelerator=None):
        self.prior, self.pairs, self.batch_size, self.grad_clip = prior, pairs, batch_size, grad_clip
        self.objective, self.accelerator = objective, accelerator
        self.optimizer = torch.optim.AdamW(objective.parameter_groups(lr, guide_lr), weight_decay=0.0)
        if accelerator is not None:  # DDP-wraps the objective on several processes
            self.objective, self.optimizer = accelerator.prepare(objective, self.optimizer)
        process = 0 if accelerator is None else accelerator.process_index
        self.generator = torch.Generator().manual_seed(seed + process)
        self.step = 0
        self.losses: list[float] = []
        self.objective_name = getattr(objective, "loss_name", "loss")

    def train(self, steps: int, on_step: Callable[[int], None] | None = None,
              description: str = "steer", progress: bool = True) -> list[float]:
        """Run until `steps` steps are done in all; `on_step(step)` follows each (checkpoints)."""
        parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
        with tqdm(total=steps, initial=self.step, desc=description, disable=not progress) as bar:
            while self.step < steps:
                indices = self.pairs.draw_indices(self.batch_size, self.generator)
                batch = self.pairs.noisy_batch(self.prior, indices, self.generator)
                loss = self.objective(batch, self.step)
                if not torch.isfinite(loss):
                    raise NonFiniteLossError(f"loss is {loss.item()} at step {self.step}; stopped "
                                             "(the last checkpoint, if any, is the last good state)")
                self.optimizer.zero_grad(set_to_none=True)
                if self.accelerator is None:
                    loss.backward()
                else:
                    self.accelerator.backward(loss)
                torch.nn.utils.clip_grad_norm_(parameters, self.grad_clip)
                self.optimizer.step()
                self.losses.append(loss.item())
                self.step += 1
                bar.update()
                rate = bar.format_dict["rate"]  # steps per second, smoothed by tqdm
                bar.set_postfix({self.objective_name: f"{loss.item():.4g}",
                                 "s/step": f"{1 / rate:.3f}" if rate else "?"})
                if on_step is not None:
                    on_step(self.step)
        return self.losses

    def state_dict(self) -> dict:
        objective = self.objective if self.accelerator is None else self.accelerator.unwrap_model(self.objective)
        return {"objective": objective.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
                "step": self.step, "losses": list(self.losses)}

    def load_state_dict(self, state: dict) -> None:
        objective = self.objective if self.accelerator is None else self.accelerator.unwrap_model(self.objective)
        objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.step, self.losses = state["step"], list(state["losses"])


def train_adapter(
    prior: FrozenPrior, adapter: BPSAdapter, pairs: TrainingPairs, *, steps: int,
    batch_size: int = 8, lr: float = 1e-3, profile: str = "head-heavy", seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """The official recipe in one call: fit the adapter by ε-MSE with fixed port scales."""
    objective = DeterministicObjective(prior, adapter, profile_scales(prior, profile))
    trainer = SteeringTrainer(prior, pairs, objective, batch_size=batch_size, lr=lr, seed=seed)
    adapter.train()
    losses = trainer.train(steps, description="steer (deterministic)", progress=progress)
    adapter.eval()
    return losses

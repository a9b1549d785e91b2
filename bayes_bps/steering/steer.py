"""Steering a frozen UNet: add the adapter's residuals at its ports while a context is open.

    with steer(unet, adapter, condition, head_heavy_profile(find_ports(unet))):
        eps = unet(x_t, t, text_embeddings).sample

The residual of a port is added after every submodule of that port (`ports.py`), by forward
hooks, so the diffusers model itself is never modified and is exactly the frozen base once the
context closes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial

import torch
from torch import Tensor, nn

from ..base import FrozenBase, NoisyBatch
from .hooks import add_to_output, removed_on_exit, repeat_to_batch, unet_call_inputs
from .ports import find_ports

Weight = float | Tensor
PortWeights = Mapping[str, Weight] | Callable[[Tensor], Mapping[str, Weight]]
# What `steer` needs from an adapter: (condition, time embedding, sample grid) -> residual per port.
Adapter = Callable[..., Mapping[str, Tensor]]


def _add_residual(residuals: Mapping[str, Tensor], port: str, module: nn.Module, args: tuple, output):
    residual = residuals.get(port)
    if residual is None:
        return None  # port not steered: keep the module's output
    return add_to_output(output, residual, f"port {port!r}")


@contextmanager
def inject(unet: nn.Module, residuals: Mapping[str, Tensor]) -> Iterator[None]:
    """Add `residuals[port]` after every submodule of that port while the context is open.

    The mapping is read at every UNet call, so a caller may refill it between calls (this is how
    `steer` works); ports missing from it are left alone. The hooks are removed on exit, also when
    the body raises.
    """
    ports = find_ports(unet)
    unknown = set(residuals) - {p.name for p in ports}
    if unknown:
        raise ValueError(f"residuals for unknown ports {sorted(unknown)}; the UNet has {[p.name for p in ports]}")
    with removed_on_exit([]) as handles:
        for port in ports:
            for module_name in port.modules:
                hook = partial(_add_residual, residuals, port.name)
                handles.append(unet.get_submodule(module_name).register_forward_hook(hook))
        yield


def _check_weights(weights: Mapping[str, Weight], port_names: set[str]) -> None:
    if set(weights) != port_names:
        missing, unknown = sorted(port_names - set(weights)), sorted(set(weights) - port_names)
        raise ValueError(f"weights must give one value per port; missing {missing}, unknown {unknown}")


def _apply_weight(weight: Weight, residual: Tensor, port: str) -> Tensor:
    if isinstance(weight, Tensor) and weight.ndim == 1 and weight.shape[0] == residual.shape[0]:
        return weight.view(-1, 1, 1, 1).to(residual.dtype) * residual  # one weight per example
    if isinstance(weight, Tensor) and weight.ndim != 0:
        raise ValueError(
            f"weight of port {port!r} must be a scalar or have shape ({residual.shape[0]},); got {tuple(weight.shape)}"
        )
    return weight * residual


def _is_zero(weight: Weight) -> bool:
    return not bool(torch.as_tensor(weight).any())


@contextmanager
def steer(unet: nn.Module, adapter: Adapter, condition: Tensor, weights: PortWeights,
          scale: float = 1.0) -> Iterator[None]:
    """Steer every UNet call inside the context with `adapter` and a fixed `condition`.

    A forward pre-hook on the UNet reads each call's `sample` and `timestep`, embeds the timestep
    with the frozen UNet's own `time_proj` + `time_embedding`, runs the adapter once and stashes
    weight * residual per port for the block hooks. So a whole DDIM loop, or a training step, is
    steered by wrapping it in one `with`; the adapter gets gradients, the UNet needs none.

    - The UNet batch may be a multiple of the condition batch: classifier-free guidance doubles
      the batch as [uncond; cond], so the condition is repeated the same way.
    - `timestep` may be a scalar or one value per example, as for the UNet itself.
    - `weights` gives one value per port (0 turns a port off): a float, a 0-d tensor, or a tensor
      with one value per UNet-batch example. It may also be a callable mapping the per-example
      timesteps to such a dict, for time-dependent weights. Outside autograd, a call whose weights
      are all zero skips the adapter: the UNet runs frozen (how time gates save sampling time).
    - `scale` multiplies every port's residual at sampling time, like diffusers' ControlNet
      `conditioning_scale` (the study tunes it on validation for every method alike).
    - The stash lives until the next call, so gradient checkpointing can recompute the blocks
      during backward; run backward before the next steered call.
    """
    port_names = {p.name for p in find_ports(unet)}
    if not callable(weights):
        _check_weights(weights, port_names)
    stash: dict[str, Tensor] = {}

    def compute_residuals(module: nn.Module, args: tuple, kwargs: dict) -> None:
        # 1. this call's sample, timestep and port weights, positional or keyword as in
        #    UNet2DConditionModel.forward. With every weight zero, sampling skips the adapter (the
        #    output is the same); training runs it, so its parameters still get their (zero)
        #    gradients and the optimizer steps as it would
        sample, timestep, _ = unet_call_inputs(args, kwargs)
        batch = sample.shape[0]
        timesteps = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(batch)
        call_weights = weights(timesteps) if callable(weights) else weights
        _check_weights(call_weights, port_names)
        stash.clear()
        if not torch.is_grad_enabled() and all(_is_zero(weight) for weight in call_weights.values()):
            return
        # 2. the UNet batch is copies of the condition batch (classifier-free guidance's [uncond;
        #    cond], or K posterior draws); the adapter sees only the condition and t, so when
        #    every copy has the same t it runs once on the conditions and its residuals are tiled
        repeated = repeat_to_batch(condition, batch)
        copies = timesteps.view(batch // len(condition), len(condition))
        shared = bool((copies == copies[:1]).all())
        inputs, steps = (condition, copies[0]) if shared else (repeated, timesteps)
        # 3. the frozen time embedding: an input of the adapter, nothing in it is fitted; in the
        #    condition's dtype, since an fp32 adapter may steer an fp16 UNet
        with torch.no_grad():
            embedded = unet.get_time_embed(sample[: len(inputs)], steps)
            time_embedding = unet.time_embedding(embedded).to(condition.dtype)
        # 4. run the adapter and stash the weighted residuals for the block hooks
        residuals = adapter(inputs, time_embedding, sample_size=tuple(sample.shape[-2:]))
        if set(residuals) - port_names:
            raise ValueError(f"the adapter steers ports the UNet does not have: {sorted(set(residuals) - port_names)}")
        if shared:
            residuals = {name: repeat_to_batch(r, batch) for name, r in residuals.items()}
        stash.update({name: scale * _apply_weight(call_weights[name], r, name) for name, r in residuals.items()})

    try:
        with removed_on_exit([unet.register_forward_pre_hook(compute_residuals, with_kwargs=True)]), \
                inject(unet, stash):
            yield
    finally:
        stash.clear()


def steered_noise(base: FrozenBase, adapter: Adapter, batch: NoisyBatch, weights: PortWeights) -> Tensor:
    """ε̂ of the steered UNet for a batch: ε_prior plus the steering the adapter adds."""
    with steer(base.unet, adapter, batch.conditions, weights):
        return base.predict_noise(batch.noisy, batch.timesteps, batch.caption_states)

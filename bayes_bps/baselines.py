"""The reference systems BPS is compared with: diffusers' ControlNet and T2I-Adapter, as-is.

The data-efficiency study trains each baseline on the same pairs, steps and seeds as BPS, through
the same `SteeringTrainer`, so the only difference is the steering network. Each baseline comes
as a builder (a fresh module shaped for the prior's UNet) and a steering context that, like
`ports.steer`, makes every call of the frozen UNet inside it steered, so `prior.predict_noise`
and `sample.ddim_sample` need no change:

    baseline = BASELINES["controlnet"]
    module = baseline.build(prior, pairs.condition_channels)
    SteeringTrainer(prior, pairs, baseline.objective(prior, module), batch_size=8, lr=1e-3).train(steps)
    with baseline.steering(prior.unet, module, conditions):
        images = ddim_sample(prior, captions)

The diffusers classes are used unchanged; only their configuration is chosen here so that they
fit a pixel-space base (latent factor 1) as well as SD1.5 (factor 8).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial

import torch.nn.functional as F
from diffusers import ControlNetModel, T2IAdapter
from torch import Tensor, nn

from .pairs import NoisyBatch
from .prior import FrozenPrior

# diffusers' conditioning-embedding widths for SD1.5; each entry after the first halves the grid
SD_CONDITIONING_CHANNELS = (16, 32, 96, 256)
_UNET_POSITIONAL = ("sample", "timestep", "encoder_hidden_states")

Steering = Callable[..., AbstractContextManager]


def trainable_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------------------------
# Builders


def _halvings(latent_factor: int) -> int:
    """log2 of the latent factor: how often the condition must be halved to reach model space."""
    halvings = latent_factor.bit_length() - 1
    if latent_factor < 1 or 2**halvings != latent_factor or halvings >= len(SD_CONDITIONING_CHANNELS):
        raise ValueError(f"latent factor {latent_factor} is not one of 1, 2, 4, 8: ControlNet's "
                         "conditioning embedding halves the condition's grid 0 to 3 times")
    return halvings


def controlnet_for(prior: FrozenPrior, condition_channels: int) -> ControlNetModel:
    """`ControlNetModel.from_unet`: a trainable copy of the frozen encoder plus zero convs.

    diffusers' conditioning embedding downsamples once per width after the first, so SD1.5 keeps
    its four widths (factor 8) and a pixel-space base gets one (no downsampling).
    """
    widths = SD_CONDITIONING_CHANNELS[: _halvings(prior.latent_factor) + 1]
    return ControlNetModel.from_unet(prior.unet, conditioning_embedding_out_channels=widths,
                                     conditioning_channels=condition_channels).to(prior.device)


def t2i_adapter_for(prior: FrozenPrior, condition_channels: int) -> T2IAdapter:
    """A full T2I-Adapter with one feature map per down block of the prior's UNet.

    Its pixel unshuffle is the latent factor, so feature i has the channels and the grid of down
    block i. Pixel bases get one ResBlock per level (they are small); SD keeps diffusers' two.
    """
    config = prior.unet.config
    return T2IAdapter(in_channels=condition_channels, channels=list(config.block_out_channels),
                      num_res_blocks=1 if prior.latent_factor == 1 else 2,
                      downscale_factor=prior.latent_factor, adapter_type="full_adapter").to(prior.device)


# ---------------------------------------------------------------------------------------------
# Steering contexts


def _unet_inputs(args: tuple, kwargs: dict) -> tuple[Tensor, Tensor, Tensor]:
    """sample, timestep, encoder_hidden_states of a UNet2DConditionModel call, positional or keyword."""
    call = {**dict(zip(_UNET_POSITIONAL, args)), **kwargs}
    return call["sample"], call["timestep"], call.get("encoder_hidden_states")


def _check_conditions(method: str, conditions: Tensor, channels: int, grid: tuple[int, ...], factor: int) -> None:
    """Conditions must have the module's channels and `factor` times the UNet's sample grid."""
    if conditions.ndim != 4 or conditions.shape[1] != channels:
        raise ValueError(f"{method}: conditions of shape {tuple(conditions.shape)} do not have the "
                         f"(batch, {channels}, height, width) shape the module was built for")
    expected = tuple(factor * side for side in grid)
    if tuple(conditions.shape[-2:]) != expected:
        raise ValueError(f"{method}: conditions are {tuple(conditions.shape[-2:])} pixels, but a UNet sample of "
                         f"{tuple(grid)} cells needs {expected} (factor {factor})")


def _repeat_to_batch(tensor: Tensor, batch: int) -> Tensor:
    """[c; c; ...]: classifier-free guidance runs the UNet on [uncond; cond], twice the conditions."""
    if batch % tensor.shape[0]:
        raise ValueError(f"the UNet batch ({batch}) is not a multiple of the condition batch ({tensor.shape[0]})")
    return tensor.repeat(batch // tensor.shape[0], *([1] * (tensor.ndim - 1)))


def _refuse_existing(kwargs: dict, names: tuple[str, ...], method: str) -> None:
    given = [name for name in names if kwargs.get(name) is not None]
    if given:
        raise ValueError(f"{method}: the UNet call already passes {given}; one steering at a time")


@contextmanager
def controlnet_steering(unet: nn.Module, controlnet: ControlNetModel, conditions: Tensor,
                        scale: float = 1.0) -> Iterator[None]:
    """Steer every call of `unet` inside the context with `controlnet` on `conditions`.

    A forward pre-hook runs the ControlNet on the call's own sample, timestep and caption states
    and passes its residuals through the UNet's `down_block_additional_residuals` and
    `mid_block_additional_residual`, as diffusers' ControlNet pipeline does. The hook is removed
    on exit, also when the body raises.
    """
    config = controlnet.config
    factor = 2 ** (len(config.conditioning_embedding_out_channels) - 1)

    def add_residuals(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        # 1. this call's inputs; the conditions repeated to its batch and checked against its grid
        sample, timestep, states = _unet_inputs(args, kwargs)
        _refuse_existing(kwargs, ("down_block_additional_residuals", "mid_block_additional_residual"), "ControlNet")
        _check_conditions("ControlNet", conditions, config.conditioning_channels, sample.shape[-2:], factor)
        repeated = _repeat_to_batch(conditions.to(sample.device, controlnet.dtype), sample.shape[0])
        # 2. the ControlNet in its own dtype (an fp32 baseline may steer an fp16 UNet)
        down, mid = controlnet(sample.to(controlnet.dtype), timestep, encoder_hidden_states=states.to(controlnet.dtype),
                               controlnet_cond=repeated, conditioning_scale=scale, return_dict=False)
        # 3. its residuals as UNet arguments
        kwargs = {**kwargs, "down_block_additional_residuals": tuple(r.to(sample.dtype) for r in down),
                  "mid_block_additional_residual": mid.to(sample.dtype)}
        return args, kwargs

    handle = unet.register_forward_pre_hook(add_residuals, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def _down_block_ends(unet: nn.Module) -> list[nn.Module]:
    """Per down block, the module whose output is the block's hidden state before its downsampler."""
    return [block.attentions[-1] if getattr(block, "attentions", None) else block.resnets[-1]
            for block in unet.down_blocks]


def _add_feature(features: list[Tensor], index: int, module: nn.Module, args: tuple, output):
    # Transformer2DModel returns a tuple (sample,) when diffusers blocks call it with return_dict=False.
    hidden = output[0] if isinstance(output, tuple) else output
    feature = features[index]
    if feature.shape != hidden.shape:
        raise ValueError(f"T2I-Adapter feature {index} has shape {tuple(feature.shape)}, but down block {index} "
                         f"of the UNet ends with {tuple(hidden.shape)}")
    hidden = hidden + feature.to(hidden.dtype)
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


@contextmanager
def t2i_adapter_steering(unet: nn.Module, adapter: T2IAdapter, conditions: Tensor,
                         scale: float = 1.0) -> Iterator[None]:
    """Steer every call of `unet` inside the context with the T2I-Adapter's features.

    Feature i is added once at the end of down block i, before its downsampler: where the
    T2I-Adapter paper adds it, and what diffusers' `down_intrablock_additional_residuals` does for
    cross-attention blocks and for a last block without downsampler (SD1.5's layout). diffusers
    adds it *after* the downsampler of a plain DownBlock2D (an SDXL convention for its XL
    adapter), which no full adapter fits; the embedded bases start with such blocks, so the
    features are added by forward hooks at the paper's place, for every layout alike.
    """
    ends = _down_block_ends(unet)
    if len(ends) != len(adapter.config.channels):
        raise ValueError(f"the T2I-Adapter makes {len(adapter.config.channels)} feature maps but the UNet "
                         f"has {len(ends)} down blocks")
    features: list[Tensor] = []

    def compute_features(module: nn.Module, args: tuple, kwargs: dict) -> None:
        # 1. the features of the conditions (they do not depend on t), scaled and repeated to the batch
        sample = _unet_inputs(args, kwargs)[0]
        _refuse_existing(kwargs, ("down_intrablock_additional_residuals",), "T2I-Adapter")
        _check_conditions("T2I-Adapter", conditions, adapter.config.in_channels, sample.shape[-2:],
                          adapter.downscale_factor)
        maps = adapter(conditions.to(sample.device, adapter.dtype))
        # 2. stash them for the block hooks of this call
        features[:] = [_repeat_to_batch(scale * f, sample.shape[0]) for f in maps]

    handles = [unet.register_forward_pre_hook(compute_features, with_kwargs=True)]
    try:
        for index, end in enumerate(ends):
            handles.append(end.register_forward_hook(partial(_add_feature, features, index)))
        yield
    finally:
        for handle in handles:
            handle.remove()
        features.clear()


# ---------------------------------------------------------------------------------------------
# Training objective and registry


class BaselineObjective(nn.Module):
    """ε-MSE of the frozen UNet steered by a baseline: the loss of BPS's deterministic recipe.

    Only the baseline module is trained; `SteeringTrainer` runs it like any other objective.
    """

    loss_name = "mse"

    def __init__(self, prior: FrozenPrior, module: nn.Module, steering: Steering):
        super().__init__()
        self.module, self.steering = module, steering
        self._prior = (prior,)  # a tuple: the frozen prior is not part of this module's state

    def forward(self, batch: NoisyBatch, step: int) -> Tensor:
        prior = self._prior[0]
        with self.steering(prior.unet, self.module, batch.conditions):
            predicted = prior.predict_noise(batch.noisy, batch.timesteps, batch.caption_states)
        return F.mse_loss(predicted, batch.noise)

    def export_adapter(self) -> nn.Module:
        return self.module

    def parameter_groups(self, lr: float, guide_lr: float) -> list[dict]:
        return [{"params": [p for p in self.module.parameters() if p.requires_grad], "lr": lr}]


@dataclass(frozen=True)
class Baseline:
    """How a study loop builds one reference method and steers the frozen UNet with it."""

    build: Callable[[FrozenPrior, int], nn.Module]  # (prior, condition channels) -> fresh module
    steering: Steering  # (unet, module, conditions, scale=1.0) -> context manager

    def objective(self, prior: FrozenPrior, module: nn.Module) -> BaselineObjective:
        return BaselineObjective(prior, module, self.steering)


BASELINES: dict[str, Baseline] = {
    "controlnet": Baseline(controlnet_for, controlnet_steering),
    "t2i-adapter": Baseline(t2i_adapter_for, t2i_adapter_steering),
}


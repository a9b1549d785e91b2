"""diffusers' ControlNet as a baseline: `ControlNetModel.from_unet` and its steering context."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from diffusers import ControlNetModel
from torch import Tensor, nn

from ...base import FrozenBase
from ...steering.hooks import removed_on_exit, repeat_to_batch, unet_call_inputs
from .checks import check_conditions, refuse_existing

# diffusers' conditioning-embedding widths for SD1.5; each entry after the first halves the grid
SD_CONDITIONING_CHANNELS = (16, 32, 96, 256)


def _halvings(latent_factor: int) -> int:
    """log2 of the latent factor: how often the condition must be halved to reach model space."""
    halvings = latent_factor.bit_length() - 1
    if latent_factor < 1 or 2**halvings != latent_factor or halvings >= len(SD_CONDITIONING_CHANNELS):
        raise ValueError(f"latent factor {latent_factor} is not one of 1, 2, 4, 8: ControlNet's "
                         "conditioning embedding halves the condition's grid 0 to 3 times")
    return halvings


def controlnet_for(base: FrozenBase, condition_channels: int) -> ControlNetModel:
    """`ControlNetModel.from_unet`: a trainable copy of the frozen encoder plus zero convs.

    diffusers' conditioning embedding downsamples once per width after the first, so SD1.5 keeps
    its four widths (factor 8) and a pixel-space base gets one (no downsampling).
    """
    widths = SD_CONDITIONING_CHANNELS[: _halvings(base.latent_factor) + 1]
    return ControlNetModel.from_unet(base.unet, conditioning_embedding_out_channels=widths,
                                     conditioning_channels=condition_channels).to(base.device)


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
        sample, timestep, states = unet_call_inputs(args, kwargs)
        refuse_existing(kwargs, ("down_block_additional_residuals", "mid_block_additional_residual"), "ControlNet")
        check_conditions("ControlNet", conditions, config.conditioning_channels, sample.shape[-2:], factor)
        repeated = repeat_to_batch(conditions.to(sample.device, controlnet.dtype), sample.shape[0])
        # 2. the ControlNet in its own dtype (an fp32 baseline may steer an fp16 UNet)
        down, mid = controlnet(sample.to(controlnet.dtype), timestep, encoder_hidden_states=states.to(controlnet.dtype),
                               controlnet_cond=repeated, conditioning_scale=scale, return_dict=False)
        # 3. its residuals as UNet arguments
        kwargs = {**kwargs, "down_block_additional_residuals": tuple(r.to(sample.dtype) for r in down),
                  "mid_block_additional_residual": mid.to(sample.dtype)}
        return args, kwargs

    with removed_on_exit([unet.register_forward_pre_hook(add_residuals, with_kwargs=True)]):
        yield

"""diffusers' T2I-Adapter as a baseline: a full adapter shaped for the base, and its steering."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

from diffusers import T2IAdapter
from torch import Tensor, nn

from ...base import FrozenBase
from ...steering.hooks import add_to_output, removed_on_exit, repeat_to_batch, unet_call_inputs
from .checks import check_conditions, refuse_existing


def t2i_adapter_for(base: FrozenBase, condition_channels: int) -> T2IAdapter:
    """A full T2I-Adapter with one feature map per down block of the base's UNet.

    Its pixel unshuffle is the latent factor, so feature i has the channels and the grid of down
    block i. Pixel bases get one ResBlock per level (they are small); SD keeps diffusers' two.
    """
    config = base.unet.config
    return T2IAdapter(in_channels=condition_channels, channels=list(config.block_out_channels),
                      num_res_blocks=1 if base.latent_factor == 1 else 2,
                      downscale_factor=base.latent_factor, adapter_type="full_adapter").to(base.device)


def _down_block_ends(unet: nn.Module) -> list[nn.Module]:
    """Per down block, the module whose output is the block's hidden state before its downsampler."""
    return [block.attentions[-1] if getattr(block, "attentions", None) else block.resnets[-1]
            for block in unet.down_blocks]


def _add_feature(features: list[Tensor], index: int, module: nn.Module, args: tuple, output):
    return add_to_output(output, features[index], f"T2I-Adapter feature {index} (down block {index})")


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
        sample = unet_call_inputs(args, kwargs)[0]
        refuse_existing(kwargs, ("down_intrablock_additional_residuals",), "T2I-Adapter")
        check_conditions("T2I-Adapter", conditions, adapter.config.in_channels, sample.shape[-2:],
                         adapter.downscale_factor)
        maps = adapter(conditions.to(sample.device, adapter.dtype))
        # 2. stash them for the block hooks of this call
        features[:] = [repeat_to_batch(scale * f, sample.shape[0]) for f in maps]

    try:
        with removed_on_exit([unet.register_forward_pre_hook(compute_features, with_kwargs=True)]) as handles:
            for index, end in enumerate(ends):
                handles.append(end.register_forward_hook(partial(_add_feature, features, index)))
            yield
    finally:
        features.clear()

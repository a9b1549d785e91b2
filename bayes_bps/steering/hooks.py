"""Hook helpers shared by every steering context: BPS's ports and the baselines alike.

A steering context never modifies the diffusers UNet: it registers a forward pre-hook on the
UNet that reads each call's inputs and computes what to add, and forward hooks on blocks that
add it to their outputs. These helpers are the pieces each context needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import Tensor
from torch.utils.hooks import RemovableHandle

_UNET_POSITIONAL = ("sample", "timestep", "encoder_hidden_states")


def unet_call_inputs(args: tuple, kwargs: dict) -> tuple[Tensor, Tensor, Tensor | None]:
    """sample, timestep, encoder_hidden_states of a UNet2DConditionModel call, positional or keyword."""
    call = {**dict(zip(_UNET_POSITIONAL, args)), **kwargs}
    return call["sample"], call["timestep"], call.get("encoder_hidden_states")


def repeat_to_batch(tensor: Tensor, batch: int) -> Tensor:
    """[c; c; ...] up to the UNet batch: classifier-free guidance runs [uncond; cond], twice the conditions."""
    if batch % tensor.shape[0]:
        raise ValueError(f"the UNet batch ({batch}) is not a multiple of the condition batch ({tensor.shape[0]})")
    return tensor.repeat(batch // tensor.shape[0], *([1] * (tensor.ndim - 1)))


def add_to_output(output, addition: Tensor, where: str):
    """A block's output with `addition` added to its hidden state, in the hidden state's dtype.

    Transformer2DModel returns a tuple (sample,) when diffusers blocks call it with
    return_dict=False; the tuple's other entries are kept."""
    hidden = output[0] if isinstance(output, tuple) else output
    if not isinstance(hidden, Tensor):
        raise TypeError(f"{where}: cannot add a residual to a {type(output).__name__} output")
    if addition.shape != hidden.shape:
        raise ValueError(f"{where}: residual has shape {tuple(addition.shape)}, the UNet hidden state has "
                         f"{tuple(hidden.shape)}")
    hidden = hidden + addition.to(hidden.dtype)  # an fp32 adapter may steer an fp16 UNet
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


@contextmanager
def removed_on_exit(handles: list[RemovableHandle]) -> Iterator[list[RemovableHandle]]:
    """Yield a list to append hook handles to; every handle is removed on exit, also on error."""
    try:
        yield handles
    finally:
        for handle in handles:
            handle.remove()


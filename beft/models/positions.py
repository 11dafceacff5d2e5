"""Position ids of a prefix-tuned decoder: the prompt's tokens at 0, 1, ... as in the reference (docs/method.md §6.2).

peft's prefix tuning prepends ``num_virtual_tokens`` ones to the attention mask and adds ``num_virtual_tokens`` to
explicit position ids, so the model puts the first real token at position ``num_virtual_tokens`` (OPT derives
positions from the mask; generation passes shifted ones). The reference's prefixes (MeZO's) enter each attention layer
only, and the real tokens keep positions 0, 1, ... ``method.positions=from_zero`` (the default) restores that with a
forward pre-hook on the transformers model inside peft's wrapper; ``after_prefix`` keeps peft's positions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

POSITION_MODES = ("from_zero", "after_prefix")


def mask_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """OPT's positions for a (left-)padded mask: real tokens count 0, 1, ...; padding gets -1 (OPT's padding slot)."""
    mask = attention_mask.long()
    return mask.cumsum(-1) * mask - 1


def reference_positions(kwargs: dict[str, Any], num_prefix: int, query_len: int) -> torch.Tensor:
    """The position ids of the ``query_len`` tokens a call feeds, without the ``num_prefix`` virtual tokens: explicit
    ones less the offset peft added to them, else from the attention mask without its prefix columns."""
    if kwargs.get("position_ids") is not None:
        return kwargs["position_ids"] - num_prefix
    mask = kwargs.get("attention_mask")
    if mask is None or mask.dim() != 2:
        device = next(iter(v for v in kwargs.values() if isinstance(v, torch.Tensor))).device
        return torch.arange(query_len, device=device).unsqueeze(0)
    return mask_positions(mask[:, num_prefix:])[:, -query_len:]


def start_real_tokens_at_zero(model: nn.Module, num_prefix: int) -> torch.utils.hooks.RemovableHandle:
    """Make every forward of ``model`` (the transformers model inside peft's prefix-tuning wrapper, called by it with
    keyword arguments) use ``reference_positions``."""

    def hook(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        tokens = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs.get("inputs_embeds")
        if tokens is None or args:  # not a call through peft (positional inputs): leave it alone
            return args, kwargs
        return args, {**kwargs, "position_ids": reference_positions(kwargs, num_prefix, tokens.shape[1])}

    return model.register_forward_pre_hook(hook, with_kwargs=True)

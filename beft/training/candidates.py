"""Candidate scoring with each example's prompt run once (``decoder.shared_prefix``, docs/architecture.md).

The candidates of an example share their leading tokens (the prompt) and differ in their last few (the option). One
packed sequence per example holds the shared tokens once, then every candidate's remaining tokens; a block attention
mask lets each candidate's tokens see the shared tokens and, causally, its own tokens only, and position ids continue
the shared tokens' positions in every candidate. Every candidate token so sees exactly the context and position it has
in the candidate's own sequence, so the option log-probabilities are those of the per-candidate path
(``beft.training.decoder.CandidateCollator``), with the shared tokens computed once instead of once per candidate.
Batches are padded on the left to a multiple of 8, as there.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from beft.errors import ConfigError

PAD_SEGMENT = -1  # segment id of padding; 0 = the shared tokens, c + 1 = candidate c's own tokens
MASK_KINDS = {"sdpa": "bool", "eager": "float"}  # attention implementations that take a custom 4D mask


def shared_length(seqs: Sequence[Sequence[int]], option_lens: Sequence[int]) -> int:
    """The tokens every candidate starts with, up to the first option token of any candidate."""
    limit = min(len(s) - n for s, n in zip(seqs, option_lens, strict=True))
    first = seqs[0]
    for i in range(limit):
        if any(s[i] != first[i] for s in seqs[1:]):
            return i
    return limit


def pack_example(seqs: Sequence[Sequence[int]], option_lens: Sequence[int]) -> dict[str, list[int]]:
    """One example's packed sequence: its tokens, segment and position ids, and for every option token of every
    candidate (in order) the packed index of the token that predicts it, the token itself and its candidate."""
    shared = shared_length(seqs, option_lens)
    ids, segments, positions = list(seqs[0][:shared]), [0] * shared, list(range(shared))
    source, target, candidate = [], [], []
    for c, (seq, n) in enumerate(zip(seqs, option_lens, strict=True)):
        start = len(ids) - shared  # packed index of the candidate's token ``shared`` is start + shared
        ids += seq[shared:]
        segments += [c + 1] * (len(seq) - shared)
        positions += range(shared, len(seq))
        for t in range(len(seq) - n, len(seq)):
            source.append(t - 1 + start if t - 1 >= shared else t - 1)
            target.append(seq[t])
            candidate.append(c)
    return {"ids": ids, "segments": segments, "positions": positions, "source": source, "target": target,
            "candidate": candidate}  # fmt: skip


class SharedPrefixCollator:
    """Rows (``beft.data.prompts``) -> one packed, left-padded sequence per example with all its candidates."""

    def __init__(self, pad_id: int, multiple: int = 8) -> None:
        self.pad_id = pad_id
        self.multiple = multiple

    def __call__(self, rows: list[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        packs = [pack_example(row["input_ids"], row["option_len"]) for row in rows]
        width = -(-max(len(p["ids"]) for p in packs) // self.multiple) * self.multiple
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        segments = torch.full((len(rows), width), PAD_SEGMENT, dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        rows_t, cols, targets, owners, offset = [], [], [], [], 0
        for b, p in enumerate(packs):
            left = width - len(p["ids"])
            ids[b, left:] = torch.as_tensor(p["ids"])
            segments[b, left:] = torch.as_tensor(p["segments"])
            positions[b, left:] = torch.as_tensor(p["positions"])
            rows_t += [b] * len(p["source"])
            cols += [left + s for s in p["source"]]
            targets += p["target"]
            owners += [offset + c for c in p["candidate"]]
            offset += len(rows[b]["input_ids"])
        return {
            "input_ids": ids,
            "segments": segments,
            "position_ids": positions,
            "target_rows": torch.as_tensor(rows_t),
            "target_cols": torch.as_tensor(cols),
            "target_ids": torch.as_tensor(targets),
            "target_candidates": torch.as_tensor(owners),
            "num_candidates": torch.as_tensor([len(r["input_ids"]) for r in rows]),
            "gold": torch.as_tensor([r["gold"].index(1) if 1 in r["gold"] else -100 for r in rows]),
        }


def is_packed(batch: Mapping[str, torch.Tensor]) -> bool:
    return "segments" in batch


def block_mask(segments: torch.Tensor, num_prefix: int, kind: str, dtype: torch.dtype) -> torch.Tensor:
    """(batch, 1, query, prefix + key): a token sees the shared tokens and, causally, its own segment; every token
    sees the ``num_prefix`` trained prefix positions (prefix tuning), and padding sees itself (no empty softmax row)."""
    width = segments.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool, device=segments.device).tril()
    keys, queries = segments.unsqueeze(1), segments.unsqueeze(2)
    allowed = causal & (keys >= 0) & ((keys == 0) | (keys == queries))
    allowed |= torch.eye(width, dtype=torch.bool, device=segments.device)
    if num_prefix:
        prefix = torch.ones(*allowed.shape[:2], num_prefix, dtype=torch.bool, device=segments.device)
        allowed = torch.cat([prefix, allowed], dim=-1)
    allowed = allowed.unsqueeze(1)
    if kind == "bool":
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


def mask_kind(model: nn.Module) -> str:
    """How the model's attention takes a custom 4D mask: bool (sdpa) or additive float (eager)."""
    impl = getattr(model.config, "_attn_implementation", None) or "eager"
    if impl not in MASK_KINDS:
        raise ConfigError(
            f"decoder.shared_prefix=true needs an attention implementation that takes a 4D mask "
            f"({sorted(MASK_KINDS)}); the model uses {impl!r}: set decoder.shared_prefix=false"
        )
    return MASK_KINDS[impl]


def prefix_tokens(model: nn.Module) -> int:
    """The trained prefix length when ``model`` is peft's prefix-tuning wrapper, else 0."""
    config = getattr(model, "active_peft_config", None)
    return int(config.num_virtual_tokens) if config is not None and config.peft_type == "PREFIX_TUNING" else 0


def option_logprobs(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p of every option token, the candidate each belongs to, numbered across the batch). Logits are computed
    for the positions from the first predicting token on (``logits_to_keep``): left padding puts them last."""
    ids, segments = batch["input_ids"], batch["segments"]
    num_prefix = prefix_tokens(model)
    base = model.get_base_model() if num_prefix else model
    dtype = next(base.parameters()).dtype
    keep = ids.shape[1] - int(batch["target_cols"].min())
    kwargs: dict[str, Any] = {
        "input_ids": ids,
        "attention_mask": block_mask(segments, num_prefix, mask_kind(base), dtype),
        "position_ids": batch["position_ids"] + num_prefix,
        "use_cache": False,
    }
    params = inspect.signature(base.forward).parameters
    if num_prefix:  # peft's prefix-tuning forward, with the 4D mask widened above instead of its 2D concatenation
        cache_key = "cache" if "cache" in params else "past_key_values"
        kwargs[cache_key] = model.get_prompt(ids.shape[0], max_cache_len=ids.shape[1] + num_prefix)
    if "logits_to_keep" in params:
        kwargs["logits_to_keep"] = keep
    logits = base(**kwargs).logits
    cols = batch["target_cols"] - (ids.shape[1] - logits.shape[1])
    picked = logits[batch["target_rows"], cols].float().log_softmax(-1)
    logp = picked.gather(-1, batch["target_ids"].unsqueeze(-1)).squeeze(-1)
    return logp, batch["target_candidates"]

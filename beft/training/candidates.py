"""Candidate scoring with each example's prompt run once (``decoder.shared_prefix``, docs/architecture.md).

The candidates of an example share their leading tokens (the prompt) and differ in their last few (the option). An
example's pack holds the shared tokens once, then every candidate's remaining tokens; position ids continue the shared
tokens' positions in every candidate. Packs are laid side by side in rows as wide as the batch's longest pack (first
fit, longest first), so that short examples fill the room that padding would take. A block attention mask lets each
token see, causally, the shared tokens of its own example and its own candidate's tokens only. Every candidate token
so sees exactly the context and position it has in the candidate's own sequence, and the option log-probabilities are
those of the per-candidate path (``beft.training.decoder.CandidateCollator``), with the shared tokens computed once
instead of once per candidate. Rows are padded on the left to a multiple of 8, as there.
"""

from __future__ import annotations

import inspect
import itertools
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


def fill_rows(lengths: Sequence[int], width: int) -> list[list[int]]:
    """The packs (indices into ``lengths``) of each row: first fit, longest first, into rows of ``width`` tokens."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((r for r, free in enumerate(room) if free >= lengths[i]), len(rows))
        if row == len(rows):
            rows.append([])
            room.append(width)
        rows[row].append(i)
        room[row] -= lengths[i]
    return rows


class SharedPrefixCollator:
    """Rows (``beft.data.prompts``) -> the examples' packs in rows, left-padded, with what scoring needs: per token
    its example and segment, per option token the packed row and column that predicts it; the columns whose logits
    are needed (``kept_cols``) and where each option token's column is among them (``target_kept``)."""

    def __init__(self, pad_id: int, multiple: int = 8) -> None:
        self.pad_id = pad_id
        self.multiple = multiple

    def __call__(self, rows: list[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        packs = [pack_example(row["input_ids"], row["option_len"]) for row in rows]
        lengths = [len(p["ids"]) for p in packs]
        width = -(-max(lengths) // self.multiple) * self.multiple
        layout = fill_rows(lengths, width)
        shape = (len(layout), width)
        ids = torch.full(shape, self.pad_id, dtype=torch.long)
        examples, segments = torch.full(shape, PAD_SEGMENT), torch.full(shape, PAD_SEGMENT)
        positions = torch.zeros(shape, dtype=torch.long)
        first_candidate = [0, *itertools.accumulate(len(row["input_ids"]) for row in rows)]
        targets: list[tuple[int, int, int, int]] = []  # (candidate, row, column, token), by candidate at the end
        for r, members in enumerate(layout):
            col = width - sum(lengths[i] for i in members)
            for i in members:
                p, span = packs[i], slice(col, col + lengths[i])
                ids[r, span], positions[r, span] = torch.as_tensor(p["ids"]), torch.as_tensor(p["positions"])
                segments[r, span], examples[r, span] = torch.as_tensor(p["segments"]), i
                targets += [(first_candidate[i] + c, r, col + s, t) for s, t, c in
                            zip(p["source"], p["target"], p["candidate"], strict=True)]  # fmt: skip
                col += lengths[i]
        targets.sort(key=lambda t: t[0])  # stable: each candidate's option tokens stay in order
        owners, rows_t, cols, tokens = (torch.as_tensor(v) for v in zip(*targets, strict=True))
        kept, index = torch.unique(cols, return_inverse=True)
        return {
            "input_ids": ids,
            "examples": examples,
            "segments": segments,
            "position_ids": positions,
            "target_rows": rows_t,
            "target_kept": index,
            "kept_cols": kept,
            "target_ids": tokens,
            "target_candidates": owners,
            "num_candidates": torch.as_tensor([len(r["input_ids"]) for r in rows]),
            "gold": torch.as_tensor([r["gold"].index(1) if 1 in r["gold"] else -100 for r in rows]),
        }


def is_packed(batch: Mapping[str, torch.Tensor]) -> bool:
    return "segments" in batch


def block_mask(
    examples: torch.Tensor, segments: torch.Tensor, num_prefix: int, kind: str, dtype: torch.dtype
) -> torch.Tensor:
    """(rows, 1, query, prefix + key): a token sees, causally, its own example's shared tokens and its own segment;
    every token sees the ``num_prefix`` trained prefix positions (prefix tuning), and padding sees itself (no empty
    softmax row)."""
    width = segments.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool, device=segments.device).tril()
    keys, queries = segments.unsqueeze(1), segments.unsqueeze(2)
    same_example = (examples.unsqueeze(1) == examples.unsqueeze(2)) & (examples.unsqueeze(1) >= 0)
    allowed = causal & same_example & ((keys == 0) | (keys == queries))
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
    for the columns that predict an option token only (``logits_to_keep``)."""
    ids = batch["input_ids"]
    num_prefix = prefix_tokens(model)
    base = model.get_base_model() if num_prefix else model
    dtype = next(base.parameters()).dtype
    kwargs: dict[str, Any] = {
        "input_ids": ids,
        "attention_mask": block_mask(batch["examples"], batch["segments"], num_prefix, mask_kind(base), dtype),
        "position_ids": batch["position_ids"] + num_prefix,
        "use_cache": False,
    }
    params = inspect.signature(base.forward).parameters
    if num_prefix:  # peft's prefix-tuning forward, with the 4D mask widened above instead of its 2D concatenation
        cache_key = "cache" if "cache" in params else "past_key_values"
        kwargs[cache_key] = model.get_prompt(ids.shape[0], max_cache_len=ids.shape[1] + num_prefix)
    kept = "logits_to_keep" in params
    if kept:
        kwargs["logits_to_keep"] = batch["kept_cols"]
    logits = base(**kwargs).logits
    cols = batch["target_kept"] if kept else batch["kept_cols"][batch["target_kept"]]
    picked = logits[batch["target_rows"], cols].float().log_softmax(-1)
    logp = picked.gather(-1, batch["target_ids"].unsqueeze(-1)).squeeze(-1)
    return logp, batch["target_candidates"]

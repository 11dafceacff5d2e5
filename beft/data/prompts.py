"""Framed examples as token ids: every candidate's full text and how many of its last tokens are the option.

docs/experiments.md §6.1-6.3 and docs/templates.md: a candidate's option tokens are the tokens its full text has beyond
the prompt (``len(tok(candidate)) - len(tok(prompt))``, special tokens included); over-long texts lose tokens from the
left, keeping the BOS token. ``model.bos_token_id`` replaces the tokenizer's BOS token (OPT: token 0 instead of 2,
as the reference sets it before encoding). A row holds ``input_ids`` (one list per candidate), ``option_len``,
``gold`` (a 0/1 mark per candidate) and, for generation tasks, ``prompt_ids`` (the prompt cut to
``max_length - max_new_tokens``) and the gold ``answers``. Rows of a split are built once and cached
(``features.cached``).

In-context learning (docs/experiments.md §6.6) puts demonstrations, the gold texts of training examples, before each
prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from beft.data import features
from beft.data.templates import TEMPLATES, Framed
from beft.errors import ConfigError

MAX_NEW_TOKENS = 50  # greedy decoding budget of generation tasks (docs/templates.md)
CACHE_VERSION = 1  # bump when the encoding changes: cached rows of older versions are then ignored


def template(name: str | None):
    if name not in TEMPLATES:
        raise ConfigError(f"task.template={name!r} is not a known prompt template; valid: {sorted(TEMPLATES)}")
    return TEMPLATES[name]


class Encoder:
    """Tokenises framed texts the same way for training, evaluation and demonstrations."""

    def __init__(self, tokenizer, max_length: int, bos_token_id: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        probe = tokenizer("a").input_ids
        self.keeps_bos = tokenizer.bos_token_id is not None and probe[:1] == [tokenizer.bos_token_id]
        if bos_token_id is not None and not self.keeps_bos:
            raise ConfigError(
                f"model.bos_token_id={bos_token_id}: this tokenizer starts no encoding with a BOS token to replace; "
                "set model.bos_token_id=null"
            )
        self.bos_token_id = bos_token_id

    def ids(self, text: str) -> list[int]:
        ids = self.tokenizer(text.strip(" ")).input_ids
        if self.bos_token_id is not None:
            ids[0] = self.bos_token_id
        return ids

    def truncate(self, ids: list[int], limit: int) -> list[int]:
        """Drop tokens from the left, keeping the BOS token (the reference's left truncation)."""
        if len(ids) <= limit:
            return ids
        return ids[:1] + ids[len(ids) - limit + 1 :] if self.keeps_bos else ids[len(ids) - limit :]

    def encode(self, framed: Framed, prefix: str = "") -> dict[str, Any]:
        """One row; ``prefix`` (demonstrations) goes before the prompt and every candidate."""

        def join(text: str) -> str:
            return (prefix + text.strip(" ")).lstrip() if prefix else text

        prompt = self.ids(join(framed.prompt))
        row: dict[str, Any] = {"input_ids": [], "option_len": [], "gold": []}
        for i, text in enumerate(framed.candidates):
            ids = self.ids(join(text))
            row["input_ids"].append(self.truncate(ids, self.max_length))
            row["option_len"].append(max(1, min(len(ids) - len(prompt), self.max_length - 1)))
            row["gold"].append(int(i in framed.gold))
        row["prompt_ids"] = self.truncate(prompt, self.max_length - MAX_NEW_TOKENS)
        row["answers"] = list(framed.answers)
        return row


def encode_split(
    ds: datasets.Dataset,
    template_name: str,
    tokenizer,
    max_length: int,
    cache_dir: str | Path | None,
    bos_token_id: int | None = None,
) -> datasets.Dataset:
    """Every example of a split, framed and tokenised (cached across runs, keyed by data, tokenizer and settings)."""
    frame, encoder = template(template_name), Encoder(tokenizer, max_length, bos_token_id)

    def build() -> datasets.Dataset:
        rows = [encoder.encode(frame(ex)) for ex in ds]
        return datasets.Dataset.from_list(rows, features=ROW_FEATURES)

    key = [CACHE_VERSION, features.data_fingerprint(ds), template_name, features.tokenizer_fingerprint(tokenizer),
           max_length, *([] if bos_token_id is None else [("bos", bos_token_id)])]  # fmt: skip
    return features.cached(key, build, cache_dir)


ROW_FEATURES = datasets.Features(
    {
        "input_ids": datasets.List(datasets.List(datasets.Value("int32"))),
        "option_len": datasets.List(datasets.Value("int32")),
        "gold": datasets.List(datasets.Value("int8")),
        "prompt_ids": datasets.List(datasets.Value("int32")),
        "answers": datasets.List(datasets.Value("string")),
    }
)


def demonstration(framed: Framed) -> str:
    """A training example as an in-context demonstration: its gold text (generation: the training text), stripped."""
    return framed.candidates[framed.gold[0]].strip()


def icl_split(
    eval_ds: datasets.Dataset,
    train_ds: datasets.Dataset,
    template_name: str,
    tokenizer,
    max_length: int,
    num_demos: int,
    seed: int,
    bos_token_id: int | None = None,
) -> datasets.Dataset:
    """Evaluation rows with ``num_demos`` demonstrations each (docs/experiments.md §6.6): example i draws
    ``RandomState(seeds[i]).permutation(N_train)[:k]`` with ``seeds = RandomState(seed).randint(0, 10000, N_eval)``;
    demonstrations are joined by a blank line and the example follows after another one."""
    frame, encoder = template(template_name), Encoder(tokenizer, max_length, bos_token_id)
    seeds = np.random.RandomState(seed).randint(0, 10000, len(eval_ds))
    rows = []
    for i, ex in enumerate(eval_ds):
        picks: Sequence[int] = np.random.RandomState(seeds[i]).permutation(len(train_ds))[:num_demos].tolist()
        demos = [demonstration(frame(train_ds[j])) for j in picks]
        prefix = "\n\n".join(demos) + "\n\n" if demos else ""
        rows.append(encoder.encode(frame(ex), prefix))
    return datasets.Dataset.from_list(rows, features=ROW_FEATURES)

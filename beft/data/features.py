"""Tokenised features of a task's splits, cached on disk so that no run tokenises the same split twice.

A whole split is tokenised once (every regime and seed then selects its rows from the cache); the cache key covers
the data itself, the tokenizer and the tokenisation settings, so a change to any of them never reuses stale features.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import datasets
import pyarrow as pa

from beft import atomic

PADDING_MODES = ("dynamic", "max_length")
log = logging.getLogger(__name__)


def data_fingerprint(ds: datasets.Dataset) -> str:
    """A content hash of a split (its Arrow table and features), independent of where it was loaded from: the
    schema's metadata is the features' alone (a dataset's own adds its cache fingerprint, which names the source)."""
    sink = pa.BufferOutputStream()
    table = ds.with_format("arrow")[:]  # the rows as selected (respects .select())
    table = table.replace_schema_metadata(ds.features.arrow_schema.metadata)
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:16]


def tokenizer_fingerprint(tokenizer) -> str:
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    special = json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str)
    return hashlib.sha256(f"{type(tokenizer).__name__}|{vocab}|{special}".encode()).hexdigest()[:16]


def tokenize(
    ds: datasets.Dataset,
    text_fields: list[str],
    tokenizer,
    max_length: int,
    padding: str,
    cache_dir: str | Path | None,
) -> datasets.Dataset:
    """``input_ids``/``attention_mask`` (+ ``token_type_ids``) and ``label``; from the cache when it has them."""
    if padding not in PADDING_MODES:
        raise ValueError(f"data.padding={padding!r} is not valid; choose one of {list(PADDING_MODES)}")
    key = [data_fingerprint(ds), text_fields, tokenizer_fingerprint(tokenizer), max_length, padding]
    return cached(key, lambda: _tokenize(ds, text_fields, tokenizer, max_length, padding), cache_dir)


def tokenize_choices(
    ds: datasets.Dataset,
    question_field: str,
    choices_field: str,
    tokenizer,
    max_length: int,
    padding: str,
    cache_dir: str | Path | None,
) -> datasets.Dataset:
    """Multiple choice: every (question, choice) pair tokenised, so a row's ``input_ids`` holds one sequence per choice
    (the layout ``AutoModelForMultipleChoice`` and ``DataCollatorForMultipleChoice`` take); cached like ``tokenize``."""
    if padding not in PADDING_MODES:
        raise ValueError(f"data.padding={padding!r} is not valid; choose one of {list(PADDING_MODES)}")
    key = ["choices", data_fingerprint(ds), question_field, choices_field, tokenizer_fingerprint(tokenizer), max_length,
           padding]  # fmt: skip

    def encode(batch: dict) -> dict:
        sizes = [len(choices) for choices in batch[choices_field]]
        firsts = [q for q, n in zip(batch[question_field], sizes, strict=True) for _ in range(n)]
        seconds = [c for choices in batch[choices_field] for c in choices]
        flat = tokenizer(firsts, seconds, truncation=True, max_length=max_length,
                         padding="max_length" if padding == "max_length" else False)  # fmt: skip
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        return {k: [v[s : s + n] for s, n in zip(starts, sizes, strict=True)] for k, v in flat.items()}

    def build() -> datasets.Dataset:
        return ds.map(encode, batched=True, remove_columns=[question_field, choices_field], desc="Tokenising")

    return cached(key, build, cache_dir)


def cached(key: list, build: Callable[[], datasets.Dataset], cache_dir: str | Path | None) -> datasets.Dataset:
    """``build()``'s dataset, from ``cache_dir/features/<hash of key>`` when an earlier run built it.

    The key must name everything the features depend on (the data's fingerprint, the tokenizer's, the settings).
    """
    if cache_dir is None:
        return build()
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:24]
    target = Path(cache_dir) / "features" / digest
    if (target / "dataset_info.json").is_file():
        try:
            return _load_checked(target)
        except Exception as err:  # a damaged entry (a disk error, a hand-edited file): rebuilt, never reused
            log.warning("the feature cache entry %s is unreadable (%s); rebuilding it", target, type(err).__name__)
            shutil.rmtree(target, ignore_errors=True)
    features = build()
    with atomic.folder(target, keep_existing=True) as tmp:  # a concurrent run sees no cache or a complete one
        features.save_to_disk(str(tmp))
    return datasets.load_from_disk(str(target))


def _load_checked(folder: Path) -> datasets.Dataset:
    """A cache entry, read through once (every Arrow record batch), so a truncated file fails here, not mid-run."""
    ds = datasets.load_from_disk(str(folder))
    for _ in ds.with_format("arrow").iter(batch_size=65536):
        pass
    return ds


def _tokenize(ds: datasets.Dataset, text_fields: list[str], tokenizer, max_length: int, padding: str):
    def encode(batch: dict) -> dict:
        return tokenizer(
            *[batch[f] for f in text_fields],
            truncation=True,
            max_length=max_length,
            padding="max_length" if padding == "max_length" else False,
        )

    return ds.map(encode, batched=True, remove_columns=text_fields, desc="Tokenising")

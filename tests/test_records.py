"""Records are written atomically; only completed ones count as done."""

from __future__ import annotations

import json
import os

import pytest

from beft import records


def test_write_then_read(tmp_path):
    path = records.write_record(tmp_path / "run", {"status": "completed", "score": 0.5})
    assert json.loads(path.read_text())["score"] == 0.5
    assert records.is_completed(tmp_path / "run")
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["record.json"]  # no temporary left behind


def test_failed_missing_or_corrupt_records_are_not_completed(tmp_path):
    records.write_record(tmp_path / "failed", {"status": "failed", "error": "boom"})
    assert not records.is_completed(tmp_path / "failed")
    assert not records.is_completed(tmp_path / "missing")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "record.json").write_text('{"status": "compl')
    assert records.read_record(tmp_path / "corrupt") is None


def test_failed_write_keeps_the_previous_record(tmp_path, monkeypatch):
    records.write_record(tmp_path, {"status": "completed", "score": 1})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        records.write_record(tmp_path, {"status": "completed", "score": 2})
    assert records.read_record(tmp_path)["score"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_environment_names_library_versions():
    env = records.environment()
    assert env["packages"]["torch"] and env["packages"]["transformers"] and env["python"]
    assert "git_commit" in env

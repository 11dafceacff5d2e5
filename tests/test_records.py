"""Records are written atomically; only completed ones count as done."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from beft import records
from tests.conftest import REPO, write_record


def test_write_then_read(tmp_path):
    path = write_record(tmp_path / "run", {"status": "completed", "score": 0.5})
    assert json.loads(path.read_text())["score"] == 0.5
    assert records.completed_record(tmp_path / "run") is not None
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["record.json"]  # no temporary left behind


def test_failed_missing_or_corrupt_records_are_not_completed(tmp_path):
    write_record(tmp_path / "failed", {"status": "failed", "error": "boom"})
    assert records.completed_record(tmp_path / "failed") is None
    assert records.completed_record(tmp_path / "missing") is None
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "record.json").write_text('{"status": "compl')
    assert records.read_run(tmp_path / "corrupt") is None


def test_failed_write_keeps_the_previous_record(tmp_path, monkeypatch):
    write_record(tmp_path, {"status": "completed", "score": 1})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_record(tmp_path, {"status": "completed", "score": 2})
    assert records.read_run(tmp_path).score == 1
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_environment_names_library_versions():
    env = records.environment()
    assert env["packages"]["torch"] and env["packages"]["transformers"] and env["python"]
    assert "git_commit" in env


def test_every_committed_record_reads_back_to_the_same_json():
    """The typed records read every record in results/runs and write it back unchanged (keys, order, values)."""
    paths = sorted((REPO / "results" / "runs").rglob("*.json"))
    checked = 0
    for path in paths:
        if path.name not in (records.RECORD_FILE, records.RANKING_FILE):
            continue
        data = json.loads(path.read_text())
        record = (
            records.read_run(path.parent) if path.name == records.RECORD_FILE else records.read_ranking(path.parent)
        )
        assert record is not None and not record.extra, path
        assert json.dumps(records.to_dict(record)) == json.dumps(data), path
        checked += 1
    assert checked >= 100


def test_completed_record_is_the_one_decider(tmp_path):
    write_record(tmp_path / "done", {"status": "completed", "score": {"metric": "accuracy", "final": 0.5}})
    write_record(tmp_path / "rank", {"status": "completed", "target": "v"}, name=records.RANKING_FILE)
    done = records.completed_record(tmp_path / "done")
    assert done is not None and done.final_score == 0.5 and done.score.metric == "accuracy"
    assert records.completed_record(tmp_path / "done", "rank") is None  # a run record is no ranking
    assert records.completed_record(tmp_path / "rank", "rank").target == "v"
    assert records.run_folder("runs", "m/t/low/beft-v/seed=0", "data.num_train=8") == (
        Path("runs") / "m/t/low/beft-v/seed=0__data.num_train=8"
    )

"""Shared by the fault matrix: a results tree with one completed run, and running a config as the entry point does."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from beft.sweeps.guard import guarded
from beft.train import run_from_config
from tests.conftest import write_record
from tests.sweeps.conftest import hydra_app  # noqa: F401 (a fixture: a sweep's master config and Hydra's context)

LOG = logging.getLogger("beft.train")
DONE = Path("minilm/rte/low/beft-v/seed=0")  # the completed run every case must leave alone


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` but the run lock (a run takes it), by path: what "nothing changed" compares."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"
    }


@pytest.fixture
def results(tmp_path) -> Path:
    """A results tree holding one completed run with its adapter, as a user's tree does."""
    folder = tmp_path / "runs" / DONE
    write_record(folder, {"status": "completed", "score": {"final": 0.7}, "adapter": {"path": str(folder / "adapter")}})
    (folder / "adapter").mkdir()
    (folder / "adapter" / "adapter_config.json").write_text('{"peft_type": "BEFT"}')
    return tmp_path / "runs"


def one_error_line(caplog) -> str:
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    return lines[0]


def train_fault(cfg, caplog, code: int = 2) -> str:
    """Run a composed config as ``python -m beft.train`` runs it; its exit code and its one error line."""
    caplog.clear()
    with pytest.raises(SystemExit) as exit_, caplog.at_level(logging.INFO):
        guarded(run_from_config, cfg, LOG)
    assert exit_.value.code == code
    return one_error_line(caplog)


def must_not_load(*args, **kwargs):
    raise AssertionError("the model was loaded although the fault is known up front")

"""Result records: one JSON per run, the unit of truth that tables, resumption and the README are derived from.

A record is written atomically (temporary file in the same folder, fsync, rename), so a run killed at any moment
leaves either a complete record or none. A run whose record says ``completed`` is skipped unless forced.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

RECORD_FILE = "record.json"
SCHEMA_VERSION = 1
COMPLETED = "completed"
FAILED = "failed"
_PACKAGES = (
    "torch",
    "transformers",
    "datasets",
    "hydra-core",
    "omegaconf",
    "numpy",
    "scipy",
    "scikit-learn",
    "peft",
)


def record_path(run_folder: str | Path) -> Path:
    return Path(run_folder) / RECORD_FILE


def read_record(run_folder: str | Path) -> dict[str, Any] | None:
    """The run's record, or None when there is none (an unreadable file counts as none: the run is redone)."""
    path = record_path(run_folder)
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_completed(run_folder: str | Path) -> bool:
    record = read_record(run_folder)
    return record is not None and record.get("status") == COMPLETED


def write_record(run_folder: str | Path, record: dict[str, Any]) -> Path:
    folder = Path(run_folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".record-", suffix=".json.tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=2, sort_keys=False, default=_jsonable)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, record_path(folder))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return record_path(folder)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def environment() -> dict[str, Any]:
    """Library versions, machine and git commit: what a reader needs to trust and rerun a number."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "packages": versions,
        **_git_state(),
    }


def _git_state() -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}

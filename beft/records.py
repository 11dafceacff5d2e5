"""Result records: one JSON per run, the unit of truth that tables, resumption and the README are derived from.

A record is written atomically (temporary file in the same folder, fsync, rename), so a run killed at any moment
leaves either a complete record or none; a leftover ``.record-*.tmp`` is never read as a record. A run whose record
says ``completed`` is skipped unless forced. A run holds its folder's lock (``run_lock``) while it runs, so two jobs
never run the same run at once; jobs of different runs write into different folders.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from beft.errors import BeftError

RECORD_FILE = "record.json"
RANKING_FILE = "ranking.json"  # beft.rank's record, next to the run records
LOCK_FILE = ".lock"
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


def record_path(run_folder: str | Path, name: str = RECORD_FILE) -> Path:
    return Path(run_folder) / name


def read_record(run_folder: str | Path, name: str = RECORD_FILE) -> dict[str, Any] | None:
    """The run's record, or None when there is none (an unreadable file counts as none: the run is redone)."""
    path = record_path(run_folder, name)
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_completed(run_folder: str | Path, name: str = RECORD_FILE) -> bool:
    record = read_record(run_folder, name)
    return record is not None and record.get("status") == COMPLETED


def write_record(run_folder: str | Path, record: dict[str, Any], name: str = RECORD_FILE) -> Path:
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
        os.replace(tmp, record_path(folder, name))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return record_path(folder, name)


class RunLockedError(BeftError):
    """Another live job is running the same run (it holds the run folder's lock)."""


@contextlib.contextmanager
def run_lock(run_folder: str | Path, name: str = LOCK_FILE) -> Iterator[None]:
    """Hold the run folder's exclusive lock for the whole run, so two jobs never train or write the same run at once.

    ``flock`` is released by the kernel when the process ends, SIGKILL included: a killed or preempted job leaves
    no stale lock and its rerun (or requeued job) takes over at once. Non-blocking: a second job is told who holds it.
    """
    folder = Path(run_folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text().strip() or "holder unknown"
            raise RunLockedError(f"{folder} is being run by another job ({holder}); not starting a 2nd copy") from None
        os.ftruncate(fd, 0)
        since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        os.write(fd, f"pid {os.getpid()} on {platform.node()} since {since}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock


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

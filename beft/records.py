"""Result records: one JSON per run, the unit of truth that tables, resumption and docs/reproduction.md derive from.

Two kinds, each a dataclass with one writer (``write``) and one reader (``read_run`` / ``read_ranking``):
``RunRecord`` (``record.json``, written by ``beft.train``) and ``RankingRecord`` (``ranking.json``, ``beft.rank``).
A record is written atomically (``beft.atomic``), so a run killed at any moment leaves a complete record or none.
``completed_record`` is the one place that decides whether a run is finished. A run holds its folder's lock
(``run_lock``) while it runs, so two jobs never run the same run at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from beft import atomic
from beft.errors import BeftError

RECORD_FILE = "record.json"
RANKING_FILE = "ranking.json"
ATTEMPT_FILE = "failed_attempt.json"  # a forced rerun's failure, beside the completed record it leaves in place
LOCK_FILE = ".lock"
SCHEMA_VERSION = 1
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
VARIANT_NAME_MAX = 120  # longer override lists are hashed into the folder name
_PACKAGES = ("torch", "transformers", "datasets", "hydra-core", "omegaconf", "numpy", "scipy", "scikit-learn", "peft")

Entry = Literal["train", "rank"]


@dataclass
class Score:
    """The run's score: the final epoch's main metric (reported) and the best epoch (diagnostic only)."""

    metric: str | None = None
    split: str | None = None
    final: float | None = None
    best: float | None = None
    best_epoch: int | None = None


@dataclass
class RunId:
    """What a run is: the paper's coordinates, plus the variant (non-default overrides) when there is one."""

    model: str | None = None
    task: str | None = None
    regime: str | None = None
    seed: int | None = None
    variant: str | None = None
    name: str | None = None
    method: str | None = None
    bias: str | None = None
    label: str | None = None

    def matches(self, **coords: Any) -> bool:
        """Whether this run has every given coordinate (``model="minilm", bias="v"``, ...)."""
        return all(getattr(self, key) == value for key, value in coords.items())


# The order in which a run record's keys are written (the committed records' order).
_RUN_ID_ORDER = ("name", "model", "task", "regime", "method", "bias", "label", "seed", "variant")
_RANKING_ID_ORDER = ("model", "task", "regime", "seed", "variant")


class _Outcome:
    """What both kinds of record answer: is the run finished, and its score (a sweep job's return value)."""

    status: str

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED


@dataclass
class RunRecord(_Outcome):
    """One fine-tuning run. Fields left None are not written (a failed run has no score, epochs, params...)."""

    status: str = RUNNING
    run: RunId = field(default_factory=RunId)
    seeds: dict[str, Any] | None = None
    device: str | None = None
    overrides: list[str] | None = None
    config: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    score: Score | None = None
    final: dict[str, dict[str, float]] | None = None
    epochs: list[dict[str, Any]] | None = None
    params: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    model_source: str | None = None
    adapter: dict[str, Any] | None = None
    artifact: dict[str, Any] | None = None  # the trained tensors when no adapter holds them (beft/artifacts.py)
    predictions: dict[str, str] | None = None  # split -> file relative to the run folder (beft/predictions.py)
    auto: dict[str, Any] | None = None  # bias=auto: approach, chosen bias, scores of b_q/b_k/b_v, ranking record used
    train_runtime_s: float | None = field(default=None, metadata={"written_with": "score"})  # null: nothing trained
    bias_change: list[dict[str, Any]] | None = None
    warnings: list[str] | None = None
    tracking: dict[str, Any] | None = None
    error: str | None = None
    time: dict[str, Any] | None = None
    memory: dict[str, Any] | None = None
    schema: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as read

    FILE = RECORD_FILE
    _ID_ORDER = _RUN_ID_ORDER

    @property
    def final_score(self) -> float | None:
        return None if self.score is None else self.score.final


@dataclass
class RankingRecord(_Outcome):
    """One ranking of the bias kinds (``beft.rank``): the scores of every approach and the target it picks."""

    status: str = RUNNING
    run: RunId = field(default_factory=RunId)
    bitfit_run: str | None = None
    config: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    target: str | None = None
    approaches: dict[str, Any] | None = None
    heatmaps: dict[str, str] | None = None
    bitfit_score: Score | None = None
    error: str | None = None
    wall_s: float | None = None
    schema: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    FILE = RANKING_FILE
    _ID_ORDER = _RANKING_ID_ORDER

    @property
    def final_score(self) -> float | None:
        return None if self.bitfit_score is None else self.bitfit_score.final


Record = RunRecord | RankingRecord
_KINDS: dict[Entry, type[RunRecord] | type[RankingRecord]] = {"train": RunRecord, "rank": RankingRecord}


def to_dict(record: Record) -> dict[str, Any]:
    """The record as JSON-able data: ``schema`` first, then the fields in order, unset (None) fields left out."""
    out: dict[str, Any] = {"schema": record.schema}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if f.name in ("schema", "extra"):
            continue
        if value is None and getattr(record, f.metadata.get("written_with", f.name)) is None:
            continue
        if f.name == "run":
            value = {k: getattr(value, k) for k in record._ID_ORDER}
        elif dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        out[f.name] = value
    return {**out, **record.extra}


def from_dict(kind: type[RunRecord] | type[RankingRecord], data: dict[str, Any]) -> Record:
    """A record from its JSON data; missing keys take their defaults, unknown keys are kept in ``extra``."""
    names = {f.name for f in dataclasses.fields(kind)} - {"extra"}
    values = {k: v for k, v in data.items() if k in names}
    if isinstance(values.get("run"), dict):
        values["run"] = _known(RunId, values["run"])
    for key in ("score", "bitfit_score"):
        if isinstance(values.get(key), dict):
            values[key] = _known(Score, values[key])
    return kind(**values, extra={k: v for k, v in data.items() if k not in names})


def _known(cls, data: dict[str, Any]):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def write(folder: str | Path, record: Record, name: str | None = None) -> Path:
    """Write the record into its run folder, atomically; the only writer of records. ``name``: another file than
    the record's own (``ATTEMPT_FILE``)."""
    text = json.dumps(to_dict(record), indent=2, sort_keys=False, default=_jsonable) + "\n"
    return atomic.write_text(Path(folder) / (name or record.FILE), text)


def _read(folder: str | Path, kind: type[RunRecord] | type[RankingRecord]) -> Record | None:
    """The record, or None when there is none (an unreadable or truncated file counts as none: the run is redone)."""
    try:
        data = json.loads((Path(folder) / kind.FILE).read_text())
        return from_dict(kind, data) if isinstance(data, dict) else None
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError, TypeError):
        return None


def read_run(folder: str | Path) -> RunRecord | None:
    return _read(folder, RunRecord)  # type: ignore[return-value]


def read_ranking(folder: str | Path) -> RankingRecord | None:
    return _read(folder, RankingRecord)  # type: ignore[return-value]


def unreadable(folder: str | Path, entry: Entry = "train") -> Path | None:
    """The record file when it exists but cannot be read (truncated, not JSON): a run to redo, said aloud."""
    path = Path(folder) / _KINDS[entry].FILE
    return path if path.is_file() and _read(folder, _KINDS[entry]) is None else None


def iter_unreadable(results_dir: str | Path) -> Iterator[Path]:
    """Every run record file under a results tree that exists but cannot be read."""
    for path in sorted(Path(results_dir).rglob(RECORD_FILE)):
        if read_run(path.parent) is None:
            yield path


def completed_record(folder: str | Path, entry: Entry = "train") -> Record | None:
    """The folder's completed record of the entry point's kind, or None: the one test of "is this run finished"."""
    record = _read(folder, _KINDS[entry])
    return record if record is not None and record.completed else None


def iter_runs(results_dir: str | Path) -> Iterator[tuple[Path, RunRecord]]:
    """Every readable run record under a results tree, in path order."""
    for path in sorted(Path(results_dir).rglob(RECORD_FILE)):
        if (record := read_run(path.parent)) is not None:
            yield path.parent, record


def iter_rankings(results_dir: str | Path) -> Iterator[tuple[Path, RankingRecord]]:
    for path in sorted(Path(results_dir).rglob(RANKING_FILE)):
        if (record := read_ranking(path.parent)) is not None:
            yield path.parent, record


def variant_suffix(override_dirname: str | None) -> str:
    """The folder suffix of a variant ("" for the paper's configuration); long override lists are hashed."""
    if not override_dirname:
        return ""
    if len(override_dirname) > VARIANT_NAME_MAX:
        return f"__variant-{hashlib.sha256(override_dirname.encode()).hexdigest()[:12]}"
    return f"__{override_dirname.replace('/', '_')}"


def run_folder(results_dir: str | Path, name: str, variant: str | None = None) -> Path:
    """The folder of a run or ranking: ``<results_dir>/<name>[__<variant>]`` (Hydra's run dir resolves the same)."""
    return Path(results_dir) / f"{name}{variant_suffix(variant)}"


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
        os.write(fd, f"pid {os.getpid()} on {platform.node()} since {now()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def lock_holder(run_folder: str | Path, name: str = LOCK_FILE) -> str | None:
    """Who holds the run folder's lock (a live job running it), or None; creates nothing."""
    path = Path(run_folder) / name
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return path.read_text().strip() or "holder unknown"
    finally:
        os.close(fd)
    return None


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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

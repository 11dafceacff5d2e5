"""GLUE/SuperGLUE submission files from a run's predictions on a test split (docs/usage.md, Leaderboard files).

GLUE takes one TSV per task (``RTE.tsv``: ``index`` and ``prediction`` columns); SuperGLUE one JSON-lines file per
task (``CB.jsonl``: ``{"idx": 0, "label": "entailment"}``); the file name's suffix says which. The file names and the
value each class is written as are the task's ``leaderboard:`` block in conf/task/<name>.yaml. Each call writes one
split's files into the folder given, so one folder collects a whole submission; an existing file is kept unless
``overwrite``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from beft import CONF_DIR, atomic
from beft.data.tasks import TaskSpec
from beft.errors import BeftError

FORMATS = (".tsv", ".jsonl")  # GLUE's, SuperGLUE's


class LeaderboardError(BeftError):
    """A leaderboard file cannot be written: a task or split without one, or a file that exists."""


def task_from_conf(name: str, trained: TaskSpec) -> TaskSpec:
    """The task as conf/task/<name>.yaml describes it now (test files, leaderboard block): the run's config may
    predate them. Its labels and text fields must be the ones the run was trained with."""
    path = CONF_DIR / "task" / f"{name}.yaml"
    if not path.is_file():
        raise LeaderboardError(f"task {name!r} has no {path}: no leaderboard files")
    task = TaskSpec.from_config(OmegaConf.to_container(OmegaConf.load(path), resolve=True))  # type: ignore[arg-type]
    if (task.label_names, task.text_fields) != (trained.label_names, trained.text_fields):
        raise LeaderboardError(
            f"{path} has labels {task.label_names} and fields {task.text_fields}; the run was trained with "
            f"{trained.label_names} and {trained.text_fields}"
        )
    return task


def targets(task: TaskSpec, split: str, out_dir: str | Path, overwrite: bool = False) -> list[Path]:
    """The files ``split``'s predictions go to, checked before any model loads."""
    board = task.leaderboard
    if board is None:
        raise LeaderboardError(f"task {task.name!r} has no leaderboard files (no GLUE/SuperGLUE test set)")
    if split not in board.files:
        raise LeaderboardError(f"task {task.name!r}: --leaderboard takes a test split; valid: {list(board.files)}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LeaderboardError(f"--leaderboard {out_dir} is a file, not a folder")
    paths = [out_dir / name for name in board.files[split]]
    for path in paths:
        if path.suffix not in FORMATS:
            raise LeaderboardError(f"leaderboard file {path.name!r} of task {task.name!r}: valid suffixes {FORMATS}")
        if path.exists() and not overwrite:
            raise LeaderboardError(f"{path} exists; pass --overwrite to replace it")
    return paths


def submission_rows(task: TaskSpec, ids: Sequence[Any], results: Sequence[dict[str, Any]]) -> list[tuple[Any, Any]]:
    """(example id, value as the benchmark expects it) per prediction: the mapped label, or the score to 3 decimals."""
    board = task.leaderboard
    assert board is not None
    if len(ids) != len(results):
        raise LeaderboardError(f"{len(ids)} example ids for {len(results)} predictions")
    if board.labels is None:
        return [(i, round(float(r["score"]), 3)) for i, r in zip(ids, results, strict=True)]
    return [(i, board.labels[r["label"]]) for i, r in zip(ids, results, strict=True)]


def render(suffix: str, rows: list[tuple[Any, Any]]) -> str:
    """GLUE's TSV (``.tsv``) or SuperGLUE's JSON lines (``.jsonl``)."""
    if suffix == ".tsv":
        return "index\tprediction\n" + "".join(f"{i}\t{v}\n" for i, v in rows)
    return "".join(json.dumps({"idx": _int(i), "label": v}) + "\n" for i, v in rows)


def _int(value: Any) -> Any:
    """SuperGLUE's ids are integers; the test file's id is kept as written when it is not one."""
    return int(value) if str(value).isdigit() else value


def write(
    task: TaskSpec,
    split: str,
    out_dir: str | Path,
    ids: Sequence[Any],
    results: Sequence[dict[str, Any]],
    overwrite: bool = False,
) -> list[Path]:
    """Write ``split``'s submission files into ``out_dir`` (each atomically); their paths."""
    rows = submission_rows(task, ids, results)
    return [atomic.write_text(path, render(path.suffix, rows)) for path in targets(task, split, out_dir, overwrite)]

"""Per-example predictions of a run: one gzip-compressed JSON-lines file per evaluation split, next to the record.

``predictions/<split>.jsonl.gz`` holds one object per evaluated example, in evaluation order:
``{"id": ..., "gold": ..., "prediction": ..., "probs": [...]}`` for classification (class probabilities in the
task's label order), ``"score"`` in place of ``probs`` for regression, ``"text"`` for generated answers. The record's
``predictions`` field maps each split to its file, relative to the run folder. ``write`` and ``read`` are the only
writer and reader.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from beft import atomic
from beft.errors import BeftError

FOLDER = "predictions"
SUFFIX = ".jsonl.gz"


def path_for(split: str) -> str:
    """The file of a split, relative to the run folder."""
    return f"{FOLDER}/{split}{SUFFIX}"


def write(run_folder: str | Path, split: str, rows: list[dict[str, Any]]) -> str:
    """Write one split's rows atomically; returns the path to store in the record (relative to the run folder)."""
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    # mtime=0: the same predictions give the same bytes
    atomic.write_bytes(Path(run_folder) / path_for(split), gzip.compress(text.encode("utf-8"), mtime=0))
    return path_for(split)


def read(run_folder: str | Path, relative_path: str) -> list[dict[str, Any]]:
    """The rows of one predictions file (``relative_path`` as the record stores it)."""
    path = Path(run_folder) / relative_path
    try:
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            return [json.loads(line) for line in lines]
    except FileNotFoundError:
        raise BeftError(
            f"{path}: predictions file missing (the record lists it); rerun the run with force=true"
        ) from None
    except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BeftError(f"{path}: unreadable predictions file ({err}); rerun the run with force=true") from None

"""The suite's one way to write a file or a folder: a temporary sibling, fsync, rename.

A reader (or a run killed at any moment) sees the old content or the new one, never a half-written file; a leftover
temporary (``.<name>-*.tmp``) is never read as a result. Records, bench results, tables, plots, adapters and caches all
go through here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

FILE_MODE = 0o644  # results are meant to be shared; mkstemp creates owner-only files
DIR_MODE = 0o755


def file_in_the_way(folder: str | Path) -> Path | None:
    """The existing file that stops ``folder`` being made (``folder`` itself or its nearest existing parent), or None
    when the folder exists or can be created."""
    path = Path(folder).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())  # the root always exists
    return None if existing.is_dir() else existing


def write_bytes(path: str | Path, data: bytes) -> Path:
    return write_with(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_with(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` (e.g. a figure's ``savefig``), then move the finished file to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        _fsync(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


@contextlib.contextmanager
def folder(path: str | Path, keep_existing: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it replaces ``path`` as a whole (an adapter).

    ``keep_existing``: a cache another job may be writing too; when ``path`` exists by the time ours is complete,
    the first one stays and ours is dropped (readers of the first are never disturbed). On any error or signal the
    temporary folder is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        for file in tmp.rglob("*"):
            if file.is_file():
                _fsync(file)
                file.chmod(FILE_MODE)
        tmp.chmod(DIR_MODE)
        if keep_existing:
            try:
                os.rename(tmp, path)  # fails when another job's folder is already there
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
        else:
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Make the rename itself durable (a crash right after it must not bring the old file back)."""
    with contextlib.suppress(OSError):
        _fsync(path)

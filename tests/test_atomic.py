"""Every file and folder the suite writes appears whole or not at all."""

from __future__ import annotations

import os

import pytest

from beft import atomic


def test_write_text_replaces_and_leaves_no_temporary(tmp_path):
    path = atomic.write_text(tmp_path / "sub" / "a.md", "one")
    atomic.write_text(path, "two")
    assert path.read_text() == "two" and [p.name for p in path.parent.iterdir()] == ["a.md"]
    assert oct(path.stat().st_mode & 0o777) == oct(atomic.FILE_MODE)


def test_a_failed_writer_keeps_the_old_file(tmp_path):
    path = atomic.write_text(tmp_path / "a.png", "old")

    def crash(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.write_with(path, crash)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_folder_replaces_a_whole_folder(tmp_path):
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "stale.json").write_text("{}")
    with atomic.folder(tmp_path / "adapter") as tmp:
        (tmp / "new.json").write_text("{}")
    assert [p.name for p in (tmp_path / "adapter").iterdir()] == ["new.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]


def test_folder_keep_existing_leaves_the_first_writers_copy(tmp_path, monkeypatch):
    with atomic.folder(tmp_path / "cache", keep_existing=True) as tmp:
        (tmp / "x").write_text("first")
    with atomic.folder(tmp_path / "cache", keep_existing=True) as tmp:
        (tmp / "x").write_text("second")
    assert (tmp_path / "cache" / "x").read_text() == "first" and len(os.listdir(tmp_path)) == 1


def test_an_interrupted_folder_write_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic.folder(tmp_path / "adapter") as tmp:
        (tmp / "half").write_text("x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []

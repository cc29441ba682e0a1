"""Outputs are written whole or not at all, and a failed write says which directory in one line."""

from __future__ import annotations

import errno
import os

import pytest

from src.utils.atomic import OutputError, atomic_open, write_json


def test_write_replaces_whole_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out" / "results.json"
    write_json(target, {"bleu": 1.0})
    write_json(target, {"bleu": 2.0})
    assert target.read_text() == '{\n  "bleu": 2.0\n}'
    assert sorted(p.name for p in target.parent.iterdir()) == ["results.json"]


def test_a_failure_mid_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("old,complete\n")
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as f:
            f.write("new,half")
            raise RuntimeError("killed")
    assert target.read_text() == "old,complete\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_disk_full_is_one_line_naming_the_directory(tmp_path, monkeypatch):
    def full(*_):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OutputError) as err:
        write_json(tmp_path / "train_summary.json", {"a": 1})
    message = str(err.value)
    assert str(tmp_path) in message and "No space left" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []  # the temp file is gone too

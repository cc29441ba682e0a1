"""Outputs are written whole or not at all, and a failed write says which directory in one line."""

from __future__ import annotations

import errno
import os

import pytest

from src.utils.atomic import OutputError, atomic_dir, atomic_open, write_json


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


def test_an_unwritable_output_dir_stops_before_hydra_with_one_line(tmp_path):
    """A path through a file (as good as read-only, even for root) at Hydra's start: one line, exit 2."""
    import subprocess
    import sys
    from pathlib import Path

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    proc = subprocess.run([sys.executable, "-m", "src.summary", f"hydra.run.dir={blocker / 'run'}"],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"error: cannot write the output dir {blocker / 'run'}: Not a directory; free some space, "
                     "make it writable, or choose another with hydra.run.dir=DIR"]


def test_a_full_disk_at_start_is_one_line_and_leaves_no_probe(tmp_path, monkeypatch, capsys):
    from src.entry.callbacks import check_writable

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(SystemExit) as e:
        check_writable(tmp_path / "sweep", "hydra.sweep.dir")
    assert e.value.code == 2
    assert capsys.readouterr().err == (f"error: cannot write the output dir {tmp_path / 'sweep'}: No space left on "
                                       "device; free some space, make it writable, or choose another with "
                                       "hydra.sweep.dir=DIR\n")
    assert list((tmp_path / "sweep").iterdir()) == []


def test_atomic_dir_installs_whole_replaces_or_keeps_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        assert tmp.parent == tmp_path and not target.exists()  # built beside it, invisible until the end
        (tmp / "sub").mkdir()
        (tmp / "sub" / "w.bin").write_bytes(b"new")
    assert (target / "sub" / "w.bin").read_bytes() == b"new"

    with pytest.raises(RuntimeError):  # a failing build changes nothing
        with atomic_dir(target) as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("killed mid-build")
    assert sorted(p.name for p in target.iterdir()) == ["sub"]

    with atomic_dir(target) as tmp:  # replace: the old one goes
        (tmp / "v2").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["v2"]

    with atomic_dir(target, replace=False) as tmp:  # another process built it first: that one stays
        (tmp / "v3").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["v2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp or old dir left behind


def test_install_dir_swaps_a_finished_dir_in_and_keeps_a_target_another_process_built(tmp_path):
    from src.utils.atomic import install_dir

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "old").write_text("0")
    built = tmp_path / "work" / "model"  # a run dir's finished model, beside nothing: same filesystem
    built.mkdir(parents=True)
    (built / "w").write_text("1")
    install_dir(built, tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["w"] and not built.exists()
    other = tmp_path / "work" / "again"
    other.mkdir()
    (other / "w2").write_text("2")
    install_dir(other, tmp_path / "model", replace=False)
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["w"] and not other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "work"]  # no temp or old dir left behind

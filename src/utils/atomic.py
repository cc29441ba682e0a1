"""Every output file is written whole or not at all: a temp file in the same directory, fsynced, then
`os.replace`d over the target, so a kill mid-write never leaves a truncated file for `src.report` to read; a
directory likewise (`atomic_dir`)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


class OutputError(OSError):
    """An output could not be written (disk full, read-only directory): one line naming the directory."""


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Like open(path, mode) for writing; the file appears under ``path`` only when the block succeeds."""
    path = Path(path)
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as e:
        raise OutputError(f"cannot write {path.name} in {path.parent}: {e.strerror or e}; free some space or "
                          "make the directory writable (outputs: paths.output_dir / hydra.run.dir)") from e
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_json(path: str | Path, obj: Any, **kwargs: Any) -> None:
    write_text(path, json.dumps(obj, indent=kwargs.pop("indent", 2), **kwargs))


def fsync_tree(root: Path) -> None:
    """fsync every file under ``root`` and the directories themselves, so a rename after it publishes whole files."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            with open(Path(dirpath) / name, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(Path(dirpath))


def fsync_dir(path: Path) -> None:
    """Make a directory's entries durable (file systems that cannot fsync a directory are let be)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_dir(target: str | Path, replace: bool = True) -> Iterator[Path]:
    """A directory built whole or not at all: the block fills a temp dir beside ``target`` (the same filesystem),
    which is then installed as ``target`` (`install_dir`). A failing block leaves neither a temp dir nor a changed
    ``target``; a kill leaves the old or the new whole."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        install_dir(tmp, target, replace)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # already gone when it was installed


def install_dir(built: str | Path, target: str | Path, replace: bool = True) -> None:
    """Rename the finished directory ``built`` (beside ``target``) to ``target``, its files fsynced first. An
    existing ``target`` is replaced (moved aside, then deleted) with ``replace``; without, it is kept: another
    process built it first, and ``built`` is deleted."""
    built, target = Path(built), Path(target)
    fsync_tree(built)
    old = None
    try:
        if target.exists() and replace:
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / target.name)
        try:
            os.replace(built, target)
        except OSError:
            if replace or not target.exists():
                raise
            shutil.rmtree(built, ignore_errors=True)
        fsync_dir(target.parent)
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

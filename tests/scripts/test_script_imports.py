"""Every script under scripts/ imports, and every module a command names exists: the `-m` modules and the `-c`
payloads' imports in the Makefile, .ci/run, scripts/ and src/ (shell lines, messages and docstrings that tell a user
what to run, Python command lists such as [sys.executable, "-m", "src.train", ...]), and the scripts they run by
path. A moved or renamed module fails here, not minutes into a CI step, a sweep's child process or a user's terminal.

The scripts are imported by path without running their main. Their only import-time side effect is
`sys.path.insert(0, <repo root>)`; the test puts sys.path back afterwards.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))
TEXT_FILES = [ROOT / "Makefile", ROOT / ".ci" / "run", *sorted((ROOT / "scripts").glob("*.sh"))]
PY_FILES = [*SCRIPTS, *sorted((ROOT / "src").rglob("*.py"))]

MODULE = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
PYTHON = r"(?:\$\((?:GPU_)?PY(?:THON)?\)|\bpython(?:3(?:\.\d+)?)?)(?:[ \t]+-[A-Za-z]\S*)*?"  # and its options
# python -m MODULE, or torchrun / accelerate launch (whose options take values) ... -m MODULE; one line.
# (pytest's `-m slow` is a marker: pytest is not an interpreter here, and `$(PY) -m pytest -q -m slow` ends at pytest.)
RUN_MODULE = re.compile(rf"(?:{PYTHON}|\b(?:torchrun|accelerate[ \t]+launch)(?:[ \t]+\S+)*?)[ \t]+-m[ \t]+({MODULE})\b")
RUN_CODE = re.compile(rf"{PYTHON}[ \t]+-c[ \t]+(['\"])(.*?)\1", re.S)  # python -c '...' in a shell line
RUN_SCRIPT = re.compile(r"(?<!'s )\bscripts/\w+\.(?:py|sh)\b")  # not another project's ("fairseq's scripts/...")


@dataclass(frozen=True)
class Ref:
    """A module (``name`` None: `-m module` or `import module`) or ``from module import name``, and where it is."""

    where: str
    module: str
    name: str | None = None

    def __str__(self) -> str:
        return f"{self.where} {self.module}" + (f":{self.name}" if self.name else "")


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def payload_refs(code: str, where: str) -> list[Ref]:
    """The imports of a `python -c` payload, nested ones too (an `import` inside try/def still runs)."""
    try:
        tree = ast.parse(code)
    except SyntaxError as e:  # `python -c` would fail the same way
        return [Ref(where, f"<payload does not parse: {e.msg}>")]
    refs = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            refs += [Ref(where, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            refs += [Ref(where, node.module, a.name) for a in node.names if a.name != "*"]
    return refs


def text_refs(path: Path) -> list[Ref]:
    """`-m` modules and `-c` payloads written as command lines (Makefile, shell, and any string or comment)."""
    text, rel = path.read_text(encoding="utf-8"), path.relative_to(ROOT)
    refs = [Ref(f"{rel}:{_line(text, m.start())}", m.group(1)) for m in RUN_MODULE.finditer(text)]
    if path.suffix != ".py":  # in Python source a -c payload is a string constant: command_list_refs reads it
        for m in RUN_CODE.finditer(text):
            refs += payload_refs(m.group(2), f"{rel}:{_line(text, m.start())}")
    return refs


def command_list_refs(path: Path) -> list[Ref]:
    """In Python command lists: the first "-m" followed by a module name (a later "-m" is Hydra's multirun flag),
    and "-c" followed by a payload, a string literal or a module-level string constant."""
    tree, rel = ast.parse(path.read_text(encoding="utf-8")), path.relative_to(ROOT)
    constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                 and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
                 for t in n.targets if isinstance(t, ast.Name)}
    refs = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.List | ast.Tuple):
            continue
        items = node.elts
        flags = [i for i, e in enumerate(items[:-1]) if isinstance(e, ast.Constant) and e.value in ("-m", "-c")]
        if not flags:
            continue
        i = flags[0]
        flag, arg, where = items[i].value, items[i + 1], f"{rel}:{node.lineno}"
        if flag == "-m" and isinstance(arg, ast.Constant) and re.fullmatch(MODULE, str(arg.value)):
            refs.append(Ref(where, arg.value))
        elif flag == "-c":
            code = arg.value if isinstance(arg, ast.Constant) else constants.get(getattr(arg, "id", None))
            if isinstance(code, str):
                refs += payload_refs(code, where)
    return refs


def all_refs() -> list[Ref]:
    refs = [r for p in TEXT_FILES + PY_FILES for r in text_refs(p)]
    refs += [r for p in PY_FILES for r in command_list_refs(p)]
    return sorted(set(refs), key=str)


REFS = all_refs()


def _here(origin: str | None, module: str) -> bool:
    """This checkout's own modules (src.*) must come from this checkout: an editable install of another checkout
    of the project (a git worktree sharing a venv) would otherwise answer for a module moved here."""
    return not (ROOT / module.split(".")[0]).is_dir() or (origin is not None and Path(origin).is_relative_to(ROOT))


@pytest.fixture
def restore_sys_path(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_each_script_imports_without_running_main(script, restore_sys_path, monkeypatch):
    name = f"_script_under_test_{script.stem}"
    spec = importlib.util.spec_from_file_location(name, script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # as an import does (dataclasses look their module up there)
    spec.loader.exec_module(module)  # __name__ is not "__main__": main() does not run
    assert callable(module.main), script.name
    elsewhere = sorted(n for n, m in list(sys.modules.items()) if not _here(getattr(m, "__file__", None), n))
    assert elsewhere == [], f"{script.name}: imported from another checkout"
    assert module.__doc__ and module.__doc__.strip(), f"{script.name}: no docstring (its usage)"


@pytest.mark.parametrize("ref", REFS, ids=str)
def test_each_named_module_exists(ref):
    if ref.name is None:
        spec = importlib.util.find_spec(ref.module)
        assert spec is not None and _here(spec.origin, ref.module), f"{ref}: no module {ref.module} in {ROOT}"
        return
    module = importlib.import_module(ref.module)
    assert _here(module.__file__, ref.module), f"{ref}: {ref.module} is {module.__file__}, not in {ROOT}"
    if not hasattr(module, ref.name):  # `from package import submodule`
        spec = importlib.util.find_spec(f"{ref.module}.{ref.name}") if hasattr(module, "__path__") else None
        assert spec is not None and _here(spec.origin, ref.module), f"{ref}: {ref.module} has no {ref.name}"


def test_the_parser_finds_the_known_commands():
    """The regexes and the command-list walk find what is there (a parser that finds nothing passes every check)."""
    found = {(r.where.split(":")[0], r.module, r.name) for r in REFS}
    for expected in [("Makefile", "src.utils.env_check", None), ("Makefile", "src.demo", None),
                     ("Makefile", "pytest", None), ("Makefile", "os", None),  # TEST_WORKERS's -c payload
                     (".ci/run", "src.study", None),
                     ("src/demo.py", "src.pretrain", None), ("src/demo.py", "src.train", None),
                     ("src/study.py", "src.train", None), ("src/entry/timing.py", "src.report", None),
                     ("src/training/distributed.py", "src.train", None),  # torchrun ... -m src.train, a docstring
                     ("scripts/gpu_check.py", "src.train", None), ("scripts/gpu_check.py", "transformers", None),
                     ("src/study.py", "src.study", None),  # the preparation's child process
                     ("scripts/gpu_check.py", "src.study", None),  # its base_study part
                     ("scripts/bench_pretrain.py", "src.pretrain", None)]:
        assert expected in found, expected
    modules = {r.module for r in REFS}
    assert "slow" not in modules  # pytest -m slow: a marker, not a module
    assert not any(m.startswith("+") or "=" in m for m in modules)  # Hydra's multirun -m in src/demo.py
    assert not [r for r in REFS if r.module.startswith("<payload")]
    assert len(SCRIPTS) >= 13


def test_scripts_run_by_path_exist():
    named = {(str(p.relative_to(ROOT)), m.group(0)) for p in TEXT_FILES + PY_FILES
             for m in RUN_SCRIPT.finditer(p.read_text(encoding="utf-8"))}
    assert ("Makefile", "scripts/bench_moe.py") in named and ("Makefile", "scripts/fresh_check.sh") in named
    assert sorted((where, s) for where, s in named if not (ROOT / s).is_file()) == []


def test_make_bench_dry_run_covers_every_bench_script():
    """`make bench DRY=1` (CI) runs every scripts/bench_*.py: a new bench script needs its smallest form there."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    dry = re.search(r"^ifdef DRY\nbench:.*?\n(.*?)^else\n", text, re.M | re.S)
    assert dry is not None, "the Makefile's `ifdef DRY` bench recipe"
    run = re.findall(r"^\t\$\(PY\) (scripts/bench_\w+\.py) ", dry.group(1), re.M)
    assert sorted(run) == sorted(str(p.relative_to(ROOT)) for p in SCRIPTS if p.name.startswith("bench_"))
    assert len(run) == len(set(run))  # each once

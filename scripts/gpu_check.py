"""Every GPU measurement in one prepared call: `make gpu-check` (on a CUDA machine), within 8.5 minutes.

    python scripts/gpu_check.py [--out FILE] [--dry-run]

Parts, each a child process with its own time limit (on the GPU: 20 + 35 + 25 + 55 + 40 + 90 + 45 + 190 s =
500 s); a part that fails or runs out of time is reported and skipped, so one failure does not cost the rest:
  versions    Python, torch, CUDA, transformers, the GPU
  moe         scripts/bench_moe.py: bf16, grouped kernel vs per-expert loop vs transformers' Mixtral
              block vs dense FFN, whisper-small and large-v3 shapes
  encoder     scripts/bench_encoder.py: 5 s clips, pad_to_30s true vs false
  train_step  scripts/bench_train.py: one training step, upcycled vs dense, whisper-small shapes
  upcycle     scripts/bench_upcycle.py: SPRI upcycling at the large-v3 shape, 16 of its 64 FFNs (8 layers of
              encoder and decoder; the table gives the time per layer)
  toy_spri    a short bf16 two-stage SPRI training on a small toy corpus with trainer.compile=true
              (inductor), killed with SIGKILL after a mid-stage-2 checkpoint, resumed, evaluated; checks
              that it completes, resumed, and that every logged loss is finite
  base_study  `python -m src.study --regimes base_constrained`: the data-constrained study on real weights
              (OpenAI's whisper-base, bf16, 60 clips per direction of the toy corpus, 300 steps of 16 clips):
              dense, vanilla, random, drop, SPRI (two stages), SPRI in one stage and SPRI in one stage at a
              larger budget (upcycle.max_init_kl=0.3, its own table), seed 1, all seven at once; its comparison
              tables (BLEU with 95% intervals, Δ vs dense) go into the section and, with the reports' plots and
              each run's logs and records, into base_study/ beside --out (the study's --export)
Writes one Markdown section (GPU name, torch and CUDA versions, date, each part's output and a status
table) to --out (default: $OUT/gpu_check.md when $OUT is set, else outputs/gpu_check.md), ready to
paste into docs/benchmarks.md. `--dry-run`: CPU, tiny shapes, fp32, not compiled (`make test-slow` runs
it, and so should anyone about to spend device time on the script: `make gpu-check DRY=1`, 2-5 minutes).

Interpreter: the one running this script (`make gpu-check` takes .venv's when it exists, else
python3: a device machine without the package index uses its image's torch). base_study needs the offline
whisper-base (the PyPI packages of the lock's `test` extra; src/pretrained/offline.py) in that interpreter.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

# The toy run: the tiny toy corpus and model (conf/experiment/tiny.yaml, as the tests'), SPRI two-stage.
TOY = ["experiment=tiny", "upcycle=spri", "upcycle.energy=0.9",
       "moe.num_experts=4", "trainer.total_steps=30", "trainer.warmup_steps=2", "trainer.save_every=4",
       "trainer.log_every=1", "eval.splits=[test]", "eval.max_examples_per_direction=2", "eval.beam=2",
       "eval.comet.model=null", "progress=false"]
KILL_AT = 25  # stage 2 runs steps 11-30; checkpoints at 14, 18, 22: killed after 25, resumed from 22
# base_study: seven whisper-base runs, expected ~145 s on one H100/H200 (sizing: conf/experiment/base_constrained.yaml)
BASE_STUDY_LIMIT_S = 190


@dataclass
class Part:
    name: str
    title: str
    cmd: list[str]
    limit_s: int
    status: str = "not run"
    seconds: float = 0.0
    output: str = ""
    table: str = ""  # Markdown shown as it is (not as output)


def run_part(part: Part, env: dict | None = None) -> None:
    """One part through the study's job runner (src/entry/timing.py: its own process group, stopped whole at the
    limit); its output is its stdout, with its stderr when it fails."""
    from src.entry.timing import Child, run_one

    print(f"== {part.name} (limit {part.limit_s} s): {' '.join(part.cmd)}", flush=True)
    start, rc = time.perf_counter(), None
    with tempfile.TemporaryDirectory(prefix=f"gpu_check_{part.name}_") as logs:
        child = Child(part.name, tuple(part.cmd), Path(logs) / "stdout", threads=None,
                      env=tuple((env or {}).items()), err=Path(logs) / "stderr")
        try:
            rc = run_one(child, part.limit_s, cwd=ROOT)
            part.status = (f"timed out after {part.limit_s} s" if rc is None else "ok" if rc == 0
                           else f"failed (exit {rc})")
        except OSError as e:
            part.status = f"failed ({e})"
        stdout = "".join(child.log.read_text(errors="replace").splitlines(True)[1:])  # after the log's "$ cmd"
        stderr = child.err.read_text(errors="replace") if child.err.exists() else ""
    part.output = (stdout + ("\n" + stderr if rc else "")).strip()
    part.seconds = time.perf_counter() - start
    print(f"== {part.name}: {part.status} in {part.seconds:.0f} s", flush=True)


VERSIONS = """
import platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version() if torch.cuda.is_available() else None}")
try:
    import transformers
    print(f"transformers {transformers.__version__}")
except ImportError as e:
    print(f"transformers missing: {e}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, sm{p.major}{p.minor}, {torch.cuda.device_count()} visible")
else:
    print("GPU: none (CPU)")
"""


def bench_parts(dry: bool) -> list[Part]:
    s = "scripts/"
    if dry:
        return [
            Part("moe", "MoE layer", [PY, s + "bench_moe.py", "--shapes", "tiny", "--tokens", "64", "--repeats", "1",
                                      "--device", "cpu", "--dtype", "fp32"], 120),
            Part("encoder", "Encoder, short clips", [PY, s + "bench_encoder.py", "--shape", "tiny", "--batch", "1",
                                                     "--seconds", "1", "--repeats", "1", "--device", "cpu"], 120),
            Part("train_step", "Training step", [PY, s + "bench_train.py", "--layers", "1", "--d-model", "64",
                                                 "--batch", "1", "--seconds", "1", "--steps", "1", "--device", "cpu"],
                 180),
            Part("upcycle", "SPRI upcycling", [PY, s + "bench_upcycle.py", "--layers", "1", "--d-model", "128",
                                               "--device", "cpu"], 120),
        ]
    return [
        Part("moe", "MoE layer (bf16)", [PY, s + "bench_moe.py", "--tokens", "16384", "--dtype", "bf16",
                                         "--repeats", "5"], 35),
        Part("encoder", "Encoder, 5 s clips", [PY, s + "bench_encoder.py", "--shape", "small", "--batch", "16",
                                               "--seconds", "5"], 25),
        Part("train_step", "Training step, whisper-small shapes", [PY, s + "bench_train.py", "--batch", "16",
                                                                   "--seconds", "5", "--steps", "10"], 55),
        # 8 of large-v3's 32 layers (16 of its 64 FFNs): the table gives the time per layer (x 32 for the model)
        Part("upcycle", "SPRI upcycling, large-v3 shape, 16 of 64 FFNs", [PY, s + "bench_upcycle.py", "--layers",
                                                                          "8", "--device", "cuda"], 40),
    ]


def toy_spri(work: Path, cache: Path, dry: bool) -> tuple[list[Part], list[str]]:
    """Train (killed after step KILL_AT), resume, evaluate; the checks' findings as lines."""
    run_dir = work / "toy_run"
    common = [*TOY, f"paths.cache_dir={cache}", f"hydra.run.dir={run_dir}"]
    if dry:  # compiling on CPU is tested elsewhere (tests/training/test_trainer.py, aot_eager, both stages); not here
        common += ["trainer.device=cpu", "trainer.precision=fp32", "trainer.compile=false"]
    else:
        common += ["trainer.device=cuda", "trainer.precision=bf16", "trainer.compile=true",
                   "trainer.compile_backend=inductor"]
    first = Part("toy_spri_killed", "Toy SPRI, bf16 + compile: until killed", [
        PY, "-m", "src.train", *common, "logger._target_=src.training.loggers.KillAtStep",
        f"+logger.step={KILL_AT}"], 240 if dry else 90)
    second = Part("toy_spri_resumed", "Toy SPRI: resumed and evaluated",
                  [PY, "-m", "src.train", *common, "trainer.resume=true"], 240 if dry else 45)
    run_part(first)
    if first.status == "failed (exit -9)":
        first.status = "ok (killed with SIGKILL as planned)"
    run_part(second)
    findings = []
    text = second.output
    try:
        text += (run_dir / "train.log").read_text()
    except OSError:
        pass
    resumed = "resuming at stage 2" in text
    findings.append(f"resumed mid-stage 2: {'yes' if resumed else 'NO'}")
    try:
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        losses = [r["loss"] for r in rows if "loss" in r]
        finite = all(math.isfinite(x) for x in losses)
        steps = [r["step"] for r in rows if "loss" in r]
        findings.append(f"losses logged: {len(losses)} (steps {steps[0]}-{steps[-1]}), all finite: "
                        f"{'yes' if finite else 'NO'}, first {losses[0]:.3f}, last {losses[-1]:.3f}")
        ok = finite and resumed and steps == list(range(1, steps[-1] + 1))
    except (OSError, ValueError, IndexError, KeyError) as e:
        findings.append(f"metrics.jsonl unreadable: {e}")
        ok = False
    status = json.loads((run_dir / "status.json").read_text()) if (run_dir / "status.json").exists() else {}
    results = run_dir / "eval" / "test" / "results.csv"
    findings.append(f"job status: {status.get('status', 'missing')}; results.csv: "
                    f"{'present' if results.exists() else 'MISSING'}")
    if second.status == "ok" and not (ok and results.exists()):
        second.status = "failed (checks)"
    return [first, second], findings


def base_study(out_dir: Path, work: Path, cache: Path, dry: bool) -> Part:
    """`python -m src.study --regimes base_constrained` (dry run: --tiny, tiny shapes on the CPU): run dirs in
    ``work``, reports and records exported into out_dir. Its --time-limit stops runs still going before the part's
    limit, so the reports cover the runs that finished instead of the part losing everything (the study exits 1
    then: status failed). `--no-init-cost`: the device minutes go to training; the tables keep the KL at
    init, and `python -m src.study --regimes base_constrained --report DIR` where the run dirs are decodes each init."""
    limit = 300 if dry else BASE_STUDY_LIMIT_S
    cmd = [PY, "-m", "src.study", "--regimes", "base_constrained", "--out", str(work), "--export", str(out_dir),
           "--cache", str(cache), "--time-limit", str(limit - 5), "--no-init-cost", *(["--tiny"] if dry else [])]
    part = Part("base_study", "Data-constrained study on real weights (whisper-base)", cmd, limit)
    run_part(part)
    summaries = sorted(out_dir.glob("base_constrained/report*/summary.md"))
    tables = [(p.parent.name, p.read_text().strip()) for p in summaries]
    for name, table in tables:  # the study prints each table under its dir's name: shown once, as a table
        part.output = part.output.replace(f"### base_constrained/{name}\n\n{table}", "").strip()
    part.table = "\n\n".join(f"Table `{name}`:\n\n{table}" for name, table in tables)
    if tables and part.status != "ok":  # runs cut at the time limit or failed: the tables have the others
        part.status += ", tables of the runs that finished"
    elif not tables and part.status == "ok":
        part.status = "failed (no table)"
    return part


def markdown(parts: list[Part], findings: list[str], versions: str, dry: bool) -> str:
    gpu = next((line.split(":", 1)[1].strip() for line in versions.splitlines() if line.startswith("GPU:")), "?")
    head = (f"## GPU check{' (CPU dry run)' if dry else ''}: {gpu}, {dt.date.today().isoformat()}\n\n"
            f"`python scripts/gpu_check.py{' --dry-run' if dry else ''}` on {platform.node() or 'this machine'}.\n\n"
            f"    {versions.strip().replace(chr(10), chr(10) + '    ')}\n\n"
            "| part | status | seconds |\n| --- | --- | ---: |\n")
    head += "".join(f"| {p.name} | {p.status} | {p.seconds:.0f} |\n" for p in parts)
    body = ""
    for p in parts:
        if p.name.startswith("toy_spri") or p.name == "base_study":
            continue
        out = "\n".join("    " + line for line in p.output.splitlines()) or "    (no output)"
        body += f"\n### {p.title}\n\n`{' '.join(Path(c).name if c == PY else c for c in p.cmd)}`: {p.status}\n\n{out}\n"
    body += "\n### Toy SPRI: bf16, compiled, killed, resumed, evaluated\n\n" + "".join(f"- {f}\n" for f in findings)
    for p in parts:
        if p.name == "base_study":
            body += (f"\n### {p.title}\n\n`python -m src.study --regimes base_constrained{' --tiny' if dry else ''}`"
                     f": {p.status}\n\n"
                     + ("\n".join("    " + line for line in p.output.splitlines()) or "    (no output)") + "\n")
            if p.table:
                body += f"\n{p.table}\n"
    return head + body


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None)
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes: check that every part runs")
    ap.add_argument("--work", default=None, help="scratch dir for the toy run (default: a temp dir)")
    ap.add_argument("--cache", default=None, help="paths.cache_dir for the toy corpus and model (default: in --work)")
    args = ap.parse_args(argv)
    out = Path(args.out or (Path(os.environ["OUT"]) / "gpu_check.md" if os.environ.get("OUT")
                            else ROOT / "outputs" / "gpu_check.md"))
    versions = Part("versions", "Versions", [PY, "-c", VERSIONS], 60 if args.dry_run else 20)
    run_part(versions)
    benches = bench_parts(args.dry_run)

    def run_benches() -> None:
        for p in benches:
            run_part(p, env={"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"} if args.dry_run else None)

    # A dry run checks that every part runs and times nothing, so its benches overlap the toy run; on the GPU
    # the benches run alone (their timings are the point).
    background = threading.Thread(target=run_benches) if args.dry_run else None
    if background is not None:
        background.start()
    else:
        run_benches()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(args.work or tmp)
        cache = Path(args.cache) if args.cache else work / "cache"
        toy, findings = toy_spri(work, cache, args.dry_run)
        if background is not None:
            background.join()
        study = base_study(out.parent / "base_study", work / "base_study", cache, args.dry_run)
    parts = [versions, *benches, *toy, study]
    md = markdown(parts, findings, versions.output, args.dry_run)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(md)
    print("\n" + md)
    print(f"wrote {out}")
    return 0 if all(p.status.startswith("ok") for p in parts) else 1


if __name__ == "__main__":
    sys.exit(main())

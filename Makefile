# upcycle-st. `make demo` and `make test` create .venv on first use (Python 3.11+ and pip are all they need).
# The venv is installed from requirements.lock (every package pinned with hashes) by uv, never from the
# ranges in pyproject.toml; `make lock` regenerates the lock after pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock
UV_VERSION := 0.13.8
UV := $(VENV)/tools/bin/uv
# uv must neither download a Python of its own nor read a user's uv.toml: the venv's Python is the one.
export UV_PYTHON_DOWNLOADS := never
export UV_NO_CONFIG := 1

.PHONY: help setup lock lock-upgrade fresh-check test test-slow test-real lint demo demo-quick demo-seeds demo-full study bench gpu-check pretrain summary clean

help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

setup: $(STAMP)  ## create .venv from the lock and check that torch, torchaudio, transformers and comet load

$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required; $(PYTHON) is " + sys.version.split()[0] + ": run make PYTHON=python3.11 ...")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --target $(VENV)/tools uv==$(UV_VERSION)

# The stamp is written only after the import check passes: a failed or half-done install is retried.
# --compile-bytecode: the .pyc files are written once here; where PYTHONDONTWRITEBYTECODE is set (CI images)
# every process would otherwise compile torch's and transformers' modules again (~5 s of CPU each).
$(STAMP): pyproject.toml $(LOCK) | $(UV)
	@rm -f $(STAMP)
	$(UV) pip sync --quiet --compile-bytecode --python $(PY) --require-hashes $(LOCK)
	$(UV) pip install --quiet --python $(PY) --no-deps --no-build-isolation -e .
	$(PY) -m src.utils.env_check
	@touch $(STAMP)

lock: | $(UV)  ## regenerate requirements.lock from pyproject.toml (keeps existing pins where they still fit)
	$(UV) pip compile pyproject.toml --extra dev --extra test --universal --python-version 3.11 --generate-hashes --quiet -o $(LOCK)

lock-upgrade: | $(UV)  ## re-resolve every pin to the newest version pyproject.toml allows
	$(UV) pip compile pyproject.toml --extra dev --extra test --universal --python-version 3.11 --generate-hashes --quiet --upgrade -o $(LOCK)

fresh-check:  ## clone HEAD into a temp dir, run `make test` and `make demo` there from nothing; prints their times
	bash scripts/fresh_check.sh

# Test files are spread over one worker per core (at most 4), a file's tests on one worker (module fixtures
# built once); tests/conftest.py gives each worker its share of the CPU threads.
TEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; print(min(4, os.cpu_count() or 1))')

test: $(STAMP)  ## the default (fast) test suite, one worker per core
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test-slow: $(STAMP)  ## the heavier checks (pytest -m slow)
	$(PY) -m pytest -q -m slow

test-real: $(STAMP)  ## the slow checks on real pretrained Whispers (tiny.en, base; CI runs them after make test)
	$(PY) -m pytest -q -m "slow and real_model"

lint: $(STAMP)  ## ruff
	$(VENV)/bin/ruff check src tests scripts

pretrain: $(STAMP)  ## build the toy corpus and pretrain the dense toy model
	$(PY) -m src.pretrain

summary: $(STAMP)  ## summarise a data source
	$(PY) -m src.summary

STRATEGIES := dense,vanilla,random,drop,spri
# demo-full adds cluster-aware upcycling (with self-distillation) and SPRI with DPSL and with SD-MoE.
STRATEGIES_FULL := $(STRATEGIES),cluster,spri_dpsl,spri_sd_moe
DEMO_DIR := outputs/demo/$(shell date +%Y-%m-%d_%H-%M-%S)

# The main job (src/demo.py): build or reuse the toy corpus and dense toy model, train every strategy in
# parallel processes, evaluate, print the comparison table and the phase timing (under $(DEMO_DIR)).
demo: $(STAMP)  ## the main job: every strategy on the toy corpus, one seed, comparison table, timing
	$(PY) -m src.demo --strategies $(STRATEGIES) --out $(DEMO_DIR)

demo-quick: $(STAMP)  ## a shorter demo
	$(PY) -m src.demo --experiment toy_demo_quick --strategies $(STRATEGIES) --out $(DEMO_DIR)

demo-seeds: $(STAMP)  ## the demo with 3 seeds (a toy model per seed): mean ± std, 95% intervals, significance
	$(PY) -m src.demo --strategies $(STRATEGIES) --seeds 1,2,3 --out $(DEMO_DIR)

demo-full: $(STAMP)  ## the demo with cluster, SPRI+DPSL and SPRI+SD-MoE too
	$(PY) -m src.demo --strategies $(STRATEGIES_FULL) --out $(DEMO_DIR)

# The schedule study (src/study.py): SPRI's init vs its schedule, in the compute-bound toy regime and the
# data-constrained one; resumable (STUDY_DIR keeps its finished jobs: run it again to continue). The same runner runs
# the real-weights regime (`python -m src.study --regimes base_constrained`, GPU-sized; gpu-check's base_study part).
STUDY_DIR ?= outputs/study
study: $(STAMP)  ## dense, drop (one stage), vanilla and SPRI x one/two stages (10%, 33%) x 3 seeds x 2 regimes: 48 jobs (~2 h on 2 cores)
	$(PY) -m src.study --jobs 2 --out $(STUDY_DIR)

# The CPU-sized benchmark set (each prints its table and ratios; GPU sizes: see docs/benchmarks.md). DRY=1: every
# scripts/bench_*.py (bench_pretrain.py too) in its smallest form on the CPU, a check that each still runs (CI runs it;
# ~80 s on 2 cores, most of it process start-up): its numbers mean nothing.
ifdef DRY
bench: $(STAMP)  ## CPU-sized benchmarks (DRY=1: each script in its smallest form, a check that it runs)
	$(PY) scripts/bench_moe.py --shapes tiny --tokens 64 --repeats 1 --device cpu --dtype fp32
	$(PY) scripts/bench_train.py --layers 1 --d-model 64 --batch 1 --seconds 1 --steps 1 --device cpu
	$(PY) scripts/bench_encoder.py --shape tiny --batch 1 --seconds 1 --repeats 1 --device cpu
	$(PY) scripts/bench_data.py --clips 2 --seconds 1 --repeats 1
	$(PY) scripts/bench_upcycle.py --layers 1 --d-model 128 --device cpu
	$(PY) scripts/bench_malloc.py --shapes tiny --tokens 64 --repeats 1 --rounds 1
	$(PY) scripts/bench_pretrain.py --dry-run
	$(PY) scripts/bench_cached_encoder.py --dry-run --repeats 1
else
bench: $(STAMP)
	$(PY) scripts/bench_moe.py --tokens 2048 --repeats 3
	$(PY) scripts/bench_train.py --batch 2 --seconds 5 --steps 2
	$(PY) scripts/bench_encoder.py --shape small --batch 4 --seconds 5
	$(PY) scripts/bench_data.py --clips 32
	$(PY) scripts/bench_upcycle.py --layers 2
	$(PY) scripts/bench_malloc.py --shapes small --tokens 2048 --repeats 5 --rounds 2
	$(PY) scripts/bench_cached_encoder.py --batch 4 --repeats 3
endif

# Every GPU measurement in one call (scripts/gpu_check.py; at most 8.5 min on one H100/H200, each part within its own
# limit): .venv's Python when it exists, else python3 (a device machine without the package index uses its image's
# torch; the base_study part needs the `test` extra's offline whisper-base). DRY=1: the CPU dry run with tiny shapes
# (make test-slow runs it too; run it before spending device time).
GPU_PY := $(if $(wildcard $(PY)),$(PY),$(PYTHON))
gpu-check:  ## GPU benchmarks, a compiled bf16 SPRI run with kill/resume, the whisper-base study (base_study); one Markdown section (DRY=1: CPU dry run)
	$(GPU_PY) scripts/gpu_check.py $(if $(DRY),--dry-run) $(if $(OUT_FILE),--out $(OUT_FILE))

clean:  ## remove outputs and caches (not the venv)
	rm -rf outputs/* .cache

# upcycle-st. `make demo` and `make test` create .venv on first use (Python 3.11+ and pip only).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test test-slow lint demo demo-quick demo-full bench pretrain summary clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts

pretrain: $(STAMP)
	$(PY) -m src.pretrain

summary: $(STAMP)
	$(PY) -m src.data.summary

STRATEGIES := dense,vanilla,random,drop,spri
# demo-full adds cluster-aware upcycling (with self-distillation) and SPRI with DPSL and with SD-MoE.
STRATEGIES_FULL := $(STRATEGIES),cluster,spri_dpsl,spri_sd
DEMO_DIR := outputs/demo/$(shell date +%Y-%m-%d_%H-%M-%S)

# The main job: build or reuse the toy corpus and dense toy model, train every strategy, evaluate,
# and print the comparison table (tables and plots under $(DEMO_DIR)/report).
demo: $(STAMP)
	$(PY) -m src.train -m experiment=toy_demo upcycle=$(STRATEGIES) hydra.sweep.dir=$(DEMO_DIR) progress=false
	$(PY) -m src.report $(DEMO_DIR) --out $(DEMO_DIR)/report

demo-quick: $(STAMP)
	$(PY) -m src.train -m experiment=toy_demo_quick upcycle=$(STRATEGIES) hydra.sweep.dir=$(DEMO_DIR) progress=false
	$(PY) -m src.report $(DEMO_DIR) --out $(DEMO_DIR)/report

demo-full: $(STAMP)
	$(PY) -m src.train -m experiment=toy_demo upcycle=$(STRATEGIES_FULL) hydra.sweep.dir=$(DEMO_DIR) progress=false
	$(PY) -m src.report $(DEMO_DIR) --out $(DEMO_DIR)/report

# The CPU-sized benchmark set (each prints its table and ratios; GPU sizes: see docs/benchmarks.md).
bench: $(STAMP)
	$(PY) scripts/bench_moe.py --tokens 2048 --repeats 3
	$(PY) scripts/bench_train.py --batch 2 --seconds 5 --steps 2
	$(PY) scripts/bench_encoder.py --shape small --batch 4 --seconds 5
	$(PY) scripts/bench_data.py --clips 32
	$(PY) scripts/bench_upcycle.py --layers 2

clean:
	rm -rf outputs/* .cache

# Two entry points: `make demo` (run the pipeline on a sample workload) and `make test`.
# Needs Python 3.11+, Java 17+ and Maven; everything else is installed here.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install tools demo test lint bench bench-envelopes bench-decisions bench-takeover bench-scale-out bench-escrow bench-reports bench-anomaly bench-forecast \
	bench-pacing bench-scoring bench-tick bench-tick-steady bench-tick-gpu clean

DATA ?= ../shared/data

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# kcat: a third-party Kafka client the integration tests publish and read with.
# g++: builds the CUDA kernels' source for the CPU, so their arithmetic is tested without a GPU.
tools:
	@command -v kcat >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq kcat >/dev/null; \
	  else echo "kcat is missing: sudo apt-get install kcat (its tests are skipped)"; fi; }
	@command -v g++ >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then { apt-get update -qq && apt-get install -y -qq g++ >/dev/null; } \
	    || echo "could not install g++ (kernel-source tests are skipped)"; \
	  else echo "g++ is missing: sudo apt-get install g++ (kernel-source tests are skipped)"; fi; }

demo: install
	$(BIN)/prsm demo

# The pure tests (doctests, tests/unit) on up to four cores at once, then the integration tests
# in two processes, each with its own broker and whole test files (they mostly wait on workers).
test: install tools
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -m "not integration" -n auto --maxprocesses 4
	$(BIN)/pytest -m integration -n 2 --dist loadfile

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/ingest.py --events 100000

bench-envelopes: install
	$(BIN)/python benchmarks/ingest.py --events 100000 --envelope 500

bench-decisions: install
	$(BIN)/python benchmarks/decisions.py --seconds 10

bench-takeover: install
	$(BIN)/python benchmarks/takeover.py --runs 3 --standby 0 1

bench-scale-out: install
	$(BIN)/python benchmarks/scale_out.py --workers 1 2 3

bench-escrow: install
	$(BIN)/python benchmarks/escrow.py --workers 1 2 3

bench-reports: install
	$(BIN)/python benchmarks/reports.py --rows 1000000

bench-anomaly: install
	$(BIN)/python benchmarks/anomaly_nab.py --data $(DATA)/nab/data \
	  --labels $(DATA)/nab/labels/combined_windows.json --out .prsm/nab-results

bench-forecast: install
	$(BIN)/python benchmarks/forecast.py --data $(DATA)

bench-pacing: install
	$(BIN)/python benchmarks/pacing.py \
	  --trace $(DATA)/azure-llm-2023/AzureLLMInferenceTrace_code.csv $(ARGS)

bench-scoring: install
	$(BIN)/python benchmarks/scoring.py

bench-tick: install
	$(BIN)/python benchmarks/watch_tick.py --budgets 10000 100000 1000000 --warm 3

bench-tick-steady: install
	$(BIN)/python benchmarks/watch_tick.py --budgets 100000 1000000 --warm 12 --publish

# the tick on CuPy (a CUDA GPU, the `gpu` extra): 10^6 scopes in the steady state, three rigs
bench-tick-gpu: install
	$(BIN)/python benchmarks/watch_tick.py --backend cupy --budgets 1000000 1000000 1000000 --warm 12

clean:
	-$(BIN)/prsm dev down
	rm -rf $(VENV) .prsm

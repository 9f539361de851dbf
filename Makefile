# The two set-up commands of the README: `make reproduce` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SUITE  := $(VENV)/bin/suite
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
TORCH  := $(shell grep -E '^torch==' constraints.txt)
WORKERS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: install install-test reproduce test lint bench bench-save update-smoke myosuite

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)

# torch first, alone, so nothing can pull the CUDA build; everything else under constraints.txt.
$(VENV)/.core-installed: $(VENV)/bin/activate pyproject.toml constraints.txt
	$(PIP) "$(TORCH)"
	$(PIP) -c constraints.txt -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.core-installed
	$(PIP) -c constraints.txt -e ".[dev,ray,wandb]"
	touch $@

install: $(VENV)/.core-installed
install-test: $(VENV)/.test-installed

## Smoke profile of every task, re-run from scratch (--force), writing results/smoke/ and printing the tables.
## On the same machine type the metrics equal the committed records: `git diff results/smoke` shows only timings.
reproduce: install
	$(SUITE) validate tasks/
# the report (and its closing one-line summary of ok/diverged/failed runs) comes even when a run failed;
# make still fails then, with the sweep's exit status
	$(SUITE) run tasks/ --profile smoke --force --no-report --workers $(WORKERS); status=$$?; \
	$(SUITE) report --profile smoke --benchmarks ''; exit $$status

## Unit/behaviour tests, then `suite check` of the smoke profile against the committed records.
test: install-test
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -p no:cacheprovider --timeout 900 --durations=15
	$(SUITE) check --profile smoke --workers $(WORKERS)

lint: install-test
	$(VENV)/bin/ruff check .

## Speed benchmarks: peer ratios asserted in-process, timings compared with the stored baseline of this
## machine class (fails when a median is more than BENCH_FAIL slower); `make bench-save` stores a new baseline.
## The class names the CPU's widest vector ISA (kernels, and so timings, differ between AVX2 and AVX-512 hosts)
## and, when pinning is off (SUITE_NUMERICS=native), says so: pinned and native timings are different baselines.
ISA        := $(shell grep -q -w avx512f /proc/cpuinfo 2>/dev/null && echo avx512 || \
                (grep -q -w avx2 /proc/cpuinfo 2>/dev/null && echo avx2 || echo base))
NUMERICS   := $(if $(filter native,$(SUITE_NUMERICS)),-native,)
MACHINE    := $(shell uname -m)-$(shell nproc --all 2>/dev/null || echo 1)cpu-$(ISA)$(NUMERICS)
BENCH_DIR  := benchmarks/baselines/$(MACHINE)
BENCH_FAIL ?= median:25%
BENCH_ARGS := -q -p no:cacheprovider --benchmark-only --benchmark-storage=file://$(BENCH_DIR) \
              --benchmark-columns=median,iqr,ops,rounds --benchmark-sort=name
bench: install-test
	@if ls $(BENCH_DIR)/*/0001_*.json >/dev/null 2>&1; then \
	  $(PY) -m pytest benchmarks $(BENCH_ARGS) --benchmark-compare=0001 --benchmark-compare-fail=$(BENCH_FAIL); \
	else \
	  echo "no stored baseline for $(MACHINE): measuring only (make bench-save stores one)"; \
	  $(PY) -m pytest benchmarks $(BENCH_ARGS); \
	fi

bench-save: install-test
	rm -rf $(BENCH_DIR)
	$(PY) -m pytest benchmarks $(BENCH_ARGS) --benchmark-save=baseline

## Optional MyoSuite extra (39-muscle tasks of lattice_exploration's paper profile). MyoSuite needs
## gymnasium<1.3, so it gets its own venv and constraints: the core results stay bit-identical.
myosuite: $(VENV)/.core-installed
	$(PYTHON) -m venv .venv-myosuite
	.venv-myosuite/bin/python -m pip install --quiet "$(TORCH)"
	.venv-myosuite/bin/python -m pip install --quiet -c constraints-myosuite.txt -e . -r requirements-myosuite.txt
	@echo "use .venv-myosuite/bin/suite for myo* envs"

## Rewrite committed smoke records on purpose (after an intended change of results).
update-smoke: install
	$(SUITE) check --profile smoke --update --workers $(WORKERS)

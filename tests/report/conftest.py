"""Fixture records as the pipelines write them (``beft.records``), in the run folders of the paper's grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from beft import records
from beft.report import paper
from tests.conftest import REPO

PAPER = REPO / "results" / "paper"
# CoLA low MCC (0-1 scale) per bias and seed; b_v > b_q > b_k by construction
COLA = {"v": [0.40, 0.44, 0.38], "q": [0.30, 0.25, 0.29], "k": [0.05, 0.02, 0.06]}
# decoder tables: OPT-1.3B records as the decoder pipeline writes them (scores 0-1; SQuAD/DROP token F1 with exact
# match beside it; params.permille = trainable / pre-trained total x 1000)
OPT_CB = {"v": [0.75, 0.80, 0.77], "q": [0.70, 0.68, 0.73], "k": [0.375, 0.375, 0.375]}  # accuracy
OPT_SQUAD = {"v": [0.79, 0.78, 0.775], "q": [0.69, 0.68, 0.685], "k": [0.24, 0.25, 0.245]}  # f1
PERMILLE = {"beft-v": 0.0374, "beft-q": 0.0374, "beft-k": 0.0374, "lora": 1.1954, "vera": 0.0750, "icl": 0.0}


def run_id(model: str, task: str, regime: str, method: str, bias: str | None, seed: int, variant=None):
    label = f"{method}-{bias}" if bias else method  # conf/method's label
    return records.RunId(model=model, task=task, regime=regime, method=method, bias=bias, label=label, seed=seed,
                         variant=variant, name=f"{model}/{task}/{regime}/{label}/seed={seed}")  # fmt: skip


def write(root: Path, run: records.RunId, **fields: Any) -> Path:
    """A run record in its folder (``<model>/<task>/<regime>/<label>/seed=<n>[__<variant>]``)."""
    folder = records.run_folder(root, run.name, run.variant)
    records.write(folder, records.RunRecord(run=run, **fields))
    return folder


def write_run(root, model, task, regime, method, bias, seed, metric, value, status="completed", variant=None,
              split="validation", **fields):  # fmt: skip
    final = {split: {metric: value}} if status == "completed" else {}
    run = run_id(model, task, regime, method, bias, seed, variant)
    return write(root, run, status=status, final=final, **fields)


def write_decoder_run(root, task, method, bias, seed, final, metric, status="completed", model="opt_1_3b"):
    run = run_id(model, task, "low", method, bias, seed)
    permille = PERMILLE.get(run.label)
    write(root, run, status=status, final={"validation": final} if status == "completed" else {},
          score=records.Score(metric=metric, split="validation"),
          params={"permille": permille, "percent": None if permille is None else permille / 10})  # fmt: skip


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "runs"
    for bias, values in COLA.items():
        for seed, value in enumerate(values):
            write_run(root, "bert_base", "cola", "low", "beft", bias, seed, "mcc", value)
    write_run(root, "bert_base", "stsb", "low", "beft", "v", 0, "spearman", 0.7)
    write_run(root, "bert_base", "stsb", "low", "beft", "v", 1, "spearman", 0.0, status="failed")
    # a debug variant must never be averaged in
    write_run(root, "bert_base", "cola", "low", "beft", "v", 0, "mcc", 0.99, variant="data.num_train=8")
    write_mnli(root)
    return root


def write_mnli(root: Path) -> None:
    """MNLI: matched and mismatched from one run."""
    write(root, run_id("bert_base", "mnli", "low", "beft", "v", 0), status="completed",
          final={"matched": {"accuracy": 0.61}, "mismatched": {"accuracy": 0.63}})  # fmt: skip


@pytest.fixture
def decoder_results(tmp_path):
    root = tmp_path / "runs"
    for bias in "vqk":
        for seed in range(3):
            write_decoder_run(root, "cb", "beft", bias, seed, {"accuracy": OPT_CB[bias][seed]}, "accuracy")
            f1 = OPT_SQUAD[bias][seed]
            write_decoder_run(root, "squad", "beft", bias, seed, {"f1": f1, "exact_match": f1 - 0.2}, "f1")
    write_decoder_run(root, "drop", "beft", "v", 0, {"f1": 0.29, "exact_match": 0.25}, "f1")
    write_decoder_run(root, "drop", "beft", "v", 1, {}, "f1", status="failed")
    for method, acc in (("lora", 0.936), ("vera", 0.922), ("icl", 0.803)):
        write_decoder_run(root, "sst2", method, None, 0, {"accuracy": acc}, "accuracy")
    return root


def paper_table(name: str) -> pd.DataFrame:
    table = paper.read_paper(next(PAPER.glob(f"{name}_*.csv")))
    table["value"] = pd.to_numeric(table["value"], errors="coerce")
    return table

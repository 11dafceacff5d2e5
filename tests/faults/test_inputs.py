"""The fault matrix, inputs (docs/faults.md): bad settings, data files, model files and command lines end in one line
naming the file or setting and the fix, with exit code 2, before any data or weights load; no completed record or
user file changes. Hydra's own errors and a sweep's exit code need the real command line (a subprocess); the rest runs
in-process. Older value checks and bad group choices: tests/test_errors.py.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from beft.models import loading
from beft.spec import RunSpec
from beft.sweeps.guard import guarded
from tests.conftest import CONF_DIR, REPO
from tests.faults.conftest import files, must_not_load, one_error_line, train_fault

# ---------------------------------------------------------------------------------------------------------------
# Config: rejected before any data or weights load, naming the setting (and a close match or the valid choices)
# ---------------------------------------------------------------------------------------------------------------

CONFIG_FAULTS = {
    "+data.num_trian=16": ["data.num_trian", "'num_train'"],
    "+data.num_eval_=5": ["data.num_eval_", "'num_eval'"],
    "+trainer.args.learning_rat=0.1": ["trainer.args.learning_rat", "'learning_rate'"],
    "+trainer.args.warmup_ratio=0.1": ["trainer.args.warmup_ratio", "TrainingArguments"],
    "+trainer.args.seed=3": ["trainer.args.seed", "trainer.seed"],
    "+trainer.args.report_to=wandb": ["trainer.args.report_to", "logger=wandb"],
    "+trainer.sed=3": ["trainer.sed", "'seed'"],
    "+sed=3": ["sed", "'seed'"],
    "trainer.args.lr_scheduler_type=cosin": ["trainer.args", "cosin", "cosine"],
    "trainer.args.optim=adamw_torchh": ["trainer.args", "adamw_torchh", "adamw_torch"],
    "trainer.args.eval_strategy=sometimes": ["trainer.args", "sometimes", "epoch"],
    "+trainer.args.gradient_accumulation_steps=0": ["trainer.args.gradient_accumulation_steps=0", "positive"],
    "trainer.args.weight_decay=-0.1": ["trainer.args.weight_decay=-0.1", ">= 0"],
    "trainer.args.max_grad_norm=-1": ["trainer.args.max_grad_norm=-1", ">= 0"],
    "trainer.args.warmup_steps=-3": ["trainer.args.warmup_steps=-3", ">= 0"],
    "trainer.args.adam_beta1=1.5": ["trainer.args.adam_beta1=1.5", "[0, 1)"],
    "data.num_eval=0": ["data.num_eval=0", "positive integer"],
    "data.num_eval=-5": ["data.num_eval=-5", "positive integer"],
    "data.max_length=1000": ["data.max_length=1000", "minilm", "1..512"],
    "data.max_length=0": ["data.max_length=0", "positive integer"],
    "bias=all method=bias_lora": ["bias=all", "method=bias_lora", "bias=v"],
    "data.padding=left": ["data.padding='left'", "dynamic"],
}


@pytest.mark.parametrize("overrides", list(CONFIG_FAULTS), ids=list(CONFIG_FAULTS))
def test_config_fault_is_one_line_before_anything_loads(overrides, compose_cfg, results, data_dir, caplog, monkeypatch):
    monkeypatch.setattr(loading, "load_encoder", must_not_load)
    before = files(results)
    line = train_fault(compose_cfg(f"data.dir={data_dir}", *overrides.split()), caplog)
    for part in CONFIG_FAULTS[overrides]:
        assert part in line, line
    assert "['a', 'l', 'l']" not in line
    assert files(results) == before


def test_results_dir_that_is_a_file(compose_cfg, tmp_path, data_dir, caplog):
    (tmp_path / "a-file").write_text("mine")
    line = train_fault(compose_cfg(f"data.dir={data_dir}", f"results_dir={tmp_path / 'a-file' / 'runs'}"), caplog)
    assert f"{tmp_path / 'a-file'} is a file" in line and "results_dir" in line
    assert (tmp_path / "a-file").read_text() == "mine"


def test_legitimate_additions_still_work(compose_cfg, data_dir):
    """``+`` on a real TrainingArguments field, and data.num_eval on an encoder, are accepted (and make a variant)."""
    spec = RunSpec.from_config(
        compose_cfg(f"data.dir={data_dir}", "+trainer.args.label_smoothing_factor=0.1", "data.num_eval=10"),
        hydra_job=False,
    )
    assert spec.trainer_args["label_smoothing_factor"] == 0.1 and spec.data.num_eval == 10


# ---------------------------------------------------------------------------------------------------------------
# Data files: bytes that are not UTF-8, named by file and line before the model loads
# ---------------------------------------------------------------------------------------------------------------


def _copy_task(data_dir: Path, tmp_path: Path, folder: str) -> Path:
    out = tmp_path / "data"
    shutil.copytree(data_dir / folder, out / folder, copy_function=shutil.copyfile)
    return out


def _break_line(path: Path, line: int, bad: bytes = b"caf\xe9") -> None:
    lines = path.read_bytes().split(b"\n")
    lines[line - 1] = lines[line - 1].replace(b" ", b" " + bad + b" ", 1)
    path.write_bytes(b"\n".join(lines))


@pytest.mark.parametrize(
    ("task", "folder", "file", "line"),
    [
        ("rte", "glue/RTE", "train.tsv", 1000),
        ("rte", "glue/RTE", "dev.tsv", 2),
        ("cb", "super_glue/CB", "train.jsonl", 100),
        ("cb", "super_glue/CB", "val.jsonl", 1),
    ],
)
def test_non_utf8_data_file(task, folder, file, line, compose_cfg, data_dir, tmp_path, results, caplog, monkeypatch):
    monkeypatch.setattr(loading, "load_encoder", must_not_load)
    copy = _copy_task(data_dir, tmp_path, folder)
    _break_line(copy / folder / file, line)
    before = files(results)
    message = train_fault(compose_cfg(f"task={task}", f"data.dir={copy}"), caplog)
    assert f"{copy / folder / file}, line {line}: byte 0xe9 is not UTF-8; save the file as UTF-8" in message
    assert files(results) == before


def test_data_file_ending_inside_a_character(tmp_path):
    from beft.data import formats

    (tmp_path / "cut.jsonl").write_bytes(b'{"a": "x"}\n{"a": "\xc3')
    with pytest.raises(Exception, match=r"cut.jsonl, line 2: the file ends inside a UTF-8 character"):
        list(formats.read_jsonl(tmp_path / "cut.jsonl"))


# ---------------------------------------------------------------------------------------------------------------
# Model files
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm_folder(tmp_path_factory) -> Path:
    """A copy of the packaged MiniLM folder (to damage its weights)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        source = Path(loading.resolve_source(compose("train").model))
    out = tmp_path_factory.mktemp("minilm")
    for file in source.iterdir():
        if file.is_file():
            shutil.copyfile(file, out / file.name)
    return out


@pytest.mark.parametrize("damage", ["truncated", "bad header"])
def test_damaged_safetensors(damage, minilm_folder, compose_cfg, data_dir, tmp_path, results, caplog, monkeypatch):
    monkeypatch.setattr(loading, "load_encoder", must_not_load)
    folder = tmp_path / "model"
    shutil.copytree(minilm_folder, folder, copy_function=shutil.copyfile)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\xff" * 8 + data[8:100])
    before = files(results)
    message = train_fault(compose_cfg(f"data.dir={data_dir}", f"model.path={folder}"), caplog)
    assert f"{weights} is truncated or corrupt" in message and "download or copy the model again" in message
    assert files(results) == before


# ---------------------------------------------------------------------------------------------------------------
# The command line: Hydra's own errors, rank's settings and a local sweep's failed jobs
# ---------------------------------------------------------------------------------------------------------------


def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "BEFT_RESULTS_DIR": str(tmp_path / "runs"), "BEFT_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, env=env)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["beft.train", "seed=[1"], "no viable alternative at input '[1'"),
        (["beft.train", "model=bert_huge"], "Could not find 'model/bert_huge'; Available options in 'model': "),
        (["beft.train", "data.num_trian=3"], "Could not override 'data.num_trian'"),
    ],
    ids=["syntax", "group choice", "unknown key"],
)
def test_hydra_errors_are_one_line_with_exit_code_2(args, message, tmp_path):
    proc = _cli(*args, tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and message in proc.stderr and proc.stderr.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_results_dir_under_a_file_on_the_command_line(tmp_path):
    (tmp_path / "a-file").write_text("mine")
    proc = _cli("beft.train", f"results_dir={tmp_path / 'a-file' / 'runs'}", tmp_path=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"cannot create {tmp_path / 'a-file' / 'runs'}" in proc.stderr and "results_dir" in proc.stderr
    assert (tmp_path / "a-file").read_text() == "mine"


@pytest.mark.slow  # a subprocess that imports torch: ~20 s on 2 busy cores
def test_a_typo_added_with_plus_is_refused_and_leaves_no_folder(tmp_path, data_dir):
    proc = _cli("beft.train", "+data.num_trian=16", f"data.dir={data_dir}", tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "data.num_trian is not a data setting; did you mean 'num_train'?" in lines[0]
    assert not [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]  # Hydra's new run folder is removed


def test_unknown_rank_setting_is_named(tmp_path, caplog):
    from hydra import compose, initialize_config_dir

    from beft import rank

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("rank", overrides=[f"results_dir={tmp_path}", "+rank.fisher_batch_siz=4"])
    with pytest.raises(SystemExit) as exit_, caplog.at_level(logging.ERROR):
        guarded(rank.rank_from_config, cfg, logging.getLogger("beft.rank"))
    assert (
        exit_.value.code == 2
        and "rank.fisher_batch_siz is not a rank setting; did you mean 'fisher_batch_size'?" in (one_error_line(caplog))
    )


# ---------------------------------------------------------------------------------------------------------------
# data.num_eval: encoders draw the evaluation subset exactly as decoders do
# ---------------------------------------------------------------------------------------------------------------


def test_encoders_evaluate_num_eval_examples_drawn_with_the_seed(compose_cfg, data_dir):
    import numpy as np
    from transformers import AutoTokenizer

    from beft.data import regimes, sources
    from beft.pipelines import pipeline_for

    spec = RunSpec.from_config(compose_cfg(f"data.dir={data_dir}", "task=cb", "data.num_eval=10", "seed=3"), False)
    splits = sources.load_splits(spec.task, spec.data.dir)
    tokenizer = AutoTokenizer.from_pretrained(loading.resolve_source(spec.model))
    data = pipeline_for(spec.model).prepare_data(spec, splits, [0, 1], tokenizer)
    validation = splits["validation"]
    drawn = np.random.RandomState(3).permutation(len(validation))[:10].tolist()
    assert len(data.eval["validation"]) == 10
    assert data.eval["validation"]["label"] == [validation[i]["label"] for i in drawn]
    assert validation.select(regimes.eval_indices(len(validation), 10, 3))["label"] == data.eval["validation"]["label"]


@pytest.mark.slow  # trains MiniLM for one epoch on 16 examples
def test_an_encoder_run_records_its_evaluation_subset(compose_cfg, data_dir):
    from tests.conftest import run_config

    cfg = compose_cfg(f"data.dir={data_dir}", "task=cb", "data.num_train=16", "data.num_eval=10",
                      "trainer.args.num_train_epochs=1")  # fmt: skip
    record = run_config(cfg)
    assert record["status"] == "completed" and record["data"]["eval_rows"] == {"validation": 10}
    assert record["seeds"]["eval_subset"] == "numpy.random.RandomState(0).permutation(eval_rows)[:num_eval]"

"""The fault matrix (docs/faults.md): every fault a new user meets ends in one line naming the file or setting and
the fix, with a known exit code, before any expensive work where it can be known up front; and no completed record
or user file changes on the way.

Cases run in-process where they can (the entry points' guard, the tools' ``main``); Hydra's own errors and a sweep's
exit code need the real command line and run in a subprocess. Signals, concurrent writers and NaN losses on real
runs are in tests/test_faults.py; bad group choices and the older value checks in tests/test_errors.py.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from omegaconf import OmegaConf

from beft import adapters, export, predict, records
from beft.data import features
from beft.models import loading
from beft.report import lookup
from beft.spec import RunSpec
from beft.sweeps import callbacks, faults
from beft.sweeps.guard import guarded
from beft.train import run_from_config
from tests.conftest import CONF_DIR, REPO, write_record
from tests.sweeps.conftest import sweep_config

LOG = logging.getLogger("beft.train")
DONE = Path("minilm/rte/low/beft-v/seed=0")  # the completed run every case must leave alone


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` but the run lock (a run takes it), by path: what "nothing changed" compares."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"
    }


@pytest.fixture
def results(tmp_path) -> Path:
    """A results tree holding one completed run with its adapter, as a user's tree does."""
    folder = tmp_path / "runs" / DONE
    write_record(folder, {"status": "completed", "score": {"final": 0.7}, "adapter": {"path": str(folder / "adapter")}})
    (folder / "adapter").mkdir()
    (folder / "adapter" / "adapter_config.json").write_text('{"peft_type": "BEFT"}')
    return tmp_path / "runs"


def _one_error_line(caplog) -> str:
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    return lines[0]


def _train_fault(cfg, caplog, code: int = 2) -> str:
    """Run a composed config as ``python -m beft.train`` runs it; its exit code and its one error line."""
    caplog.clear()
    with pytest.raises(SystemExit) as exit_, caplog.at_level(logging.INFO):
        guarded(run_from_config, cfg, LOG)
    assert exit_.value.code == code
    return _one_error_line(caplog)


def _must_not_load(*args, **kwargs):
    raise AssertionError("the model was loaded although the fault is known up front")


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
    monkeypatch.setattr(loading, "load_encoder", _must_not_load)
    before = _files(results)
    line = _train_fault(compose_cfg(f"data.dir={data_dir}", *overrides.split()), caplog)
    for part in CONFIG_FAULTS[overrides]:
        assert part in line, line
    assert "['a', 'l', 'l']" not in line
    assert _files(results) == before


def test_results_dir_that_is_a_file(compose_cfg, tmp_path, data_dir, caplog):
    (tmp_path / "a-file").write_text("mine")
    line = _train_fault(compose_cfg(f"data.dir={data_dir}", f"results_dir={tmp_path / 'a-file' / 'runs'}"), caplog)
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
    monkeypatch.setattr(loading, "load_encoder", _must_not_load)
    copy = _copy_task(data_dir, tmp_path, folder)
    _break_line(copy / folder / file, line)
    before = _files(results)
    message = _train_fault(compose_cfg(f"task={task}", f"data.dir={copy}"), caplog)
    assert f"{copy / folder / file}, line {line}: byte 0xe9 is not UTF-8; save the file as UTF-8" in message
    assert _files(results) == before


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
    monkeypatch.setattr(loading, "load_encoder", _must_not_load)
    folder = tmp_path / "model"
    shutil.copytree(minilm_folder, folder, copy_function=shutil.copyfile)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\xff" * 8 + data[8:100])
    before = _files(results)
    message = _train_fault(compose_cfg(f"data.dir={data_dir}", f"model.path={folder}"), caplog)
    assert f"{weights} is truncated or corrupt" in message and "download or copy the model again" in message
    assert _files(results) == before


# ---------------------------------------------------------------------------------------------------------------
# Signals and interruptions: Ctrl-C ends like SIGTERM (no record, one line, exit 130); a rerun redoes the run
# ---------------------------------------------------------------------------------------------------------------


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def test_ctrl_c_writes_no_record_and_says_so_in_one_line(compose_cfg, data_dir, results, caplog, monkeypatch):
    monkeypatch.setattr(loading, "load_encoder", _interrupt)
    cfg = compose_cfg(f"data.dir={data_dir}", "task=cb")
    line = _train_fault(cfg, caplog, code=faults.INTERRUPT_EXIT_CODE)
    assert line.startswith("interrupted by Ctrl-C: stopped without writing a record; rerun the same command")
    assert "interrupted (Ctrl-C): no record written" in caplog.text and "interrupted ()" not in caplog.text
    assert not (RunSpec.from_config(cfg, hydra_job=False).folder / records.RECORD_FILE).exists()


def test_ctrl_c_during_a_forced_rerun_keeps_the_completed_record(compose_cfg, data_dir, results, caplog, monkeypatch):
    monkeypatch.setattr(loading, "load_encoder", _interrupt)
    before = _files(results)
    _train_fault(compose_cfg(f"data.dir={data_dir}", "force=true"), caplog, code=130)
    assert _files(results) == before


def test_sigterm_and_ctrl_c_codes():
    assert (faults.EXIT_CODE, faults.INTERRUPT_EXIT_CODE) == (143, 130)


# ---------------------------------------------------------------------------------------------------------------
# Concurrency: a skipped duplicate leaves the running job's files alone
# ---------------------------------------------------------------------------------------------------------------


def test_skipped_duplicate_keeps_the_running_jobs_hydra_files(tmp_path):
    cfg = sweep_config(tmp_path, "task=cb")
    folder = tmp_path / "minilm" / "cb" / "low" / "beft-v" / "seed=0"
    callbacks.KeepFinishedRunFiles().on_run_start(cfg)
    assert cfg.hydra.output_subdir == ".hydra"  # nothing holds it: Hydra writes its files as usual
    with records.run_lock(folder):
        held = sweep_config(tmp_path, "task=cb")
        callbacks.KeepFinishedRunFiles().on_run_start(held)
        assert held.hydra.output_subdir is None
    assert records.lock_holder(folder) is None


# ---------------------------------------------------------------------------------------------------------------
# Records: a failed forced rerun, a truncated record
# ---------------------------------------------------------------------------------------------------------------


def _fails(*args, **kwargs):
    raise RuntimeError("bad row at line 1000")


def test_failed_forced_rerun_keeps_the_completed_record_and_adapter(compose_cfg, data_dir, results, monkeypatch):
    monkeypatch.setattr(loading, "load_encoder", _fails)
    before = _files(results)
    cfg = compose_cfg(f"data.dir={data_dir}", "force=true")
    with pytest.raises(RuntimeError):
        guarded(run_from_config, cfg, LOG)
    attempt = json.loads((results / DONE / records.ATTEMPT_FILE).read_text())
    assert attempt["status"] == "failed" and attempt["error"] == "RuntimeError: bad row at line 1000"
    assert {k: v for k, v in _files(results).items() if not k.endswith(records.ATTEMPT_FILE)} == before
    assert records.completed_record(results / DONE).final_score == 0.7


def test_truncated_record_is_named_when_rerun(compose_cfg, data_dir, tmp_path, caplog, monkeypatch):
    cfg = compose_cfg(f"data.dir={data_dir}", "task=cb")
    folder = RunSpec.from_config(cfg, hydra_job=False).folder
    write_record(folder, {"status": "completed", "score": {"final": 0.5}})
    (folder / records.RECORD_FILE).write_text((folder / records.RECORD_FILE).read_text()[:20])
    monkeypatch.setattr(loading, "load_encoder", _fails)
    with pytest.raises(RuntimeError), caplog.at_level(logging.WARNING):
        guarded(run_from_config, cfg, LOG)
    assert f"{folder / records.RECORD_FILE} cannot be read (truncated or not JSON): the run is redone" in caplog.text


def test_tables_call_a_truncated_record_unreadable(tmp_path):
    folder = tmp_path / DONE
    write_record(folder, {"status": "completed"})
    (folder / records.RECORD_FILE).write_text('{"status": "comp')
    runs = lookup.run_table(tmp_path)
    value, why = lookup.RunLookup(runs, "minilm", "low", None).value("rte", None, ["beft-v"], "accuracy", "beft", 0)
    assert value is None and f"(unreadable record {folder / records.RECORD_FILE})" in why
    _, why = lookup.RunLookup(runs, "minilm", "low", None).value("rte", None, ["beft-q"], "accuracy", "beft", 0)
    assert why.endswith("(missing)")


# ---------------------------------------------------------------------------------------------------------------
# Caches: a damaged feature cache entry is rebuilt
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated arrow", "bad state", "bad info"])
def test_damaged_feature_cache_is_rebuilt(damage, tmp_path, caplog):
    built = []

    def build():
        built.append(1)
        return datasets.Dataset.from_dict({"input_ids": [[i, i + 1] for i in range(500)]})

    first = list(features.cached(["key"], build, tmp_path)["input_ids"])  # read now: the entry is damaged below
    (entry,) = (tmp_path / "features").iterdir()
    if damage == "truncated arrow":
        arrow = next(entry.glob("*.arrow"))
        arrow.write_bytes(arrow.read_bytes()[:300])
    else:
        (entry / ("state.json" if damage == "bad state" else "dataset_info.json")).write_text("{not json")
    with caplog.at_level(logging.WARNING):
        again = features.cached(["key"], build, tmp_path)
    assert len(built) == 2 and list(again["input_ids"]) == first
    assert f"the feature cache entry {entry} is unreadable" in caplog.text and "rebuilding it" in caplog.text
    assert list(features.cached(["key"], build, tmp_path)["input_ids"]) == first and len(built) == 2


# ---------------------------------------------------------------------------------------------------------------
# Tools: export and predict
# ---------------------------------------------------------------------------------------------------------------


def _rte_task() -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / "task" / "rte.yaml"))


def _adapter(folder: Path, marker: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "BEFT", "marker": marker}))
    (folder / adapters.META_FILE).write_text(json.dumps({"model": {"kind": "encoder"}, "task": _rte_task()}))
    return folder


@pytest.fixture
def moved_run(tmp_path) -> Path:
    """A completed run folder copied elsewhere: its record still names the adapter at the old place, which now holds
    another adapter."""
    old = _adapter(tmp_path / "old" / "adapter", "someone else's")
    run = tmp_path / "moved"
    write_record(run, {"status": "completed", "adapter": {"path": str(old), "bytes": 1}})
    _adapter(run / "adapter", "this run's")
    return run


def test_the_given_folder_s_adapter_is_used(moved_run):
    assert adapters.find_adapter(moved_run) == moved_run / "adapter"


def test_a_run_folder_without_its_adapter_is_refused(moved_run, capsys):
    shutil.rmtree(moved_run / "adapter")
    assert export.main([str(moved_run), "--adapter", str(moved_run.parent / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"no adapter folder found (expected {moved_run / 'adapter'}" in err
    assert not (moved_run.parent / "out").exists()


def test_export_uses_the_given_folder_s_adapter(moved_run, tmp_path):
    assert export.main([str(moved_run), "--adapter", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "adapter_config.json").read_text())["marker"] == "this run's"


@pytest.mark.parametrize("flag", ["--adapter", "--merged"])
def test_export_refuses_a_folder_holding_files(flag, moved_run, tmp_path, capsys):
    mine = tmp_path / "users-model"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": true}')
    assert export.main([str(moved_run), flag, str(mine)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{mine} already exists and is not an empty folder" in err and "--overwrite" in err
    assert _files(mine) == {"config.json": b'{"mine": true}'}


def test_export_overwrite_replaces_the_folder_as_a_whole(moved_run, tmp_path):
    mine = tmp_path / "users-model"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": true}')
    assert export.main([str(moved_run), "--adapter", str(mine), "--overwrite"]) == 0
    assert sorted(_files(mine)) == ["adapter_config.json", adapters.META_FILE]


def test_export_refuses_a_file_even_with_overwrite(moved_run, tmp_path, capsys):
    (tmp_path / "a-file").write_text("mine")
    assert export.main([str(moved_run), "--adapter", str(tmp_path / "a-file"), "--overwrite"]) == 2
    assert f"{tmp_path / 'a-file'} is a file" in capsys.readouterr().err
    assert (tmp_path / "a-file").read_text() == "mine"


@pytest.mark.parametrize("file", ["rows.tsv", "rows.jsonl"])
def test_predict_file_with_non_utf8_bytes(file, moved_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(adapters, "load_base", _must_not_load)
    rows = (
        "sentence1\tsentence2\nA man.\tNobody.\n" if file.endswith("tsv") else '{"sentence1": "a", "sentence2": "b"}\n'
    )
    (tmp_path / file).write_bytes(rows.encode() + b"caf\xe9\n")
    assert predict.main([str(moved_run), "--file", str(tmp_path / file)]) == 2
    err = capsys.readouterr().err
    line = 3 if file.endswith("tsv") else 2
    assert err.count("\n") == 1 and f"{tmp_path / file}, line {line}: byte 0xe9 is not UTF-8" in err


def _fake_model(monkeypatch):
    monkeypatch.setattr(adapters, "load_base", lambda *a: (object(), None, None))
    monkeypatch.setattr(adapters, "load_adapter", lambda *a: None)
    monkeypatch.setattr(predict, "predict", lambda model, tok, rows, *a, **k: [{**r, "label": "x"} for r in rows])


def test_predict_out_into_a_missing_folder_creates_it(moved_run, tmp_path, monkeypatch):
    _fake_model(monkeypatch)
    out = tmp_path / "new" / "deeper" / "preds.jsonl"
    assert predict.main([str(moved_run), "--text", "a", "b", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["label"] == "x"


@pytest.mark.parametrize("where", ["a folder", "under a file"])
def test_predict_out_that_cannot_be_written(where, moved_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(adapters, "load_base", _must_not_load)
    (tmp_path / "a-file").write_text("mine")
    out = tmp_path if where == "a folder" else tmp_path / "a-file" / "preds.jsonl"
    assert predict.main([str(moved_run), "--text", "a", "b", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out {out}" in err
    assert (tmp_path / "a-file").read_text() == "mine"


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


def test_unknown_rank_setting_is_named(tmp_path, caplog):
    from hydra import compose, initialize_config_dir

    from beft import rank

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("rank", overrides=[f"results_dir={tmp_path}", "+rank.fisher_batch_siz=4"])
    with pytest.raises(SystemExit) as exit_, caplog.at_level(logging.ERROR):
        guarded(rank.rank_from_config, cfg, logging.getLogger("beft.rank"))
    assert (
        exit_.value.code == 2
        and "rank.fisher_batch_siz is not a rank setting; did you mean 'fisher_batch_size'?"
        in (_one_error_line(caplog))
    )


@pytest.mark.slow  # a subprocess that imports torch: ~25 s on 2 busy cores
def test_local_sweep_with_failed_jobs_exits_1_with_their_list(tmp_path, data_dir):
    proc = _cli("beft.train", "-m", "task=cb", f"data.dir={data_dir}", "trainer.args.learning_rate=-1,-2",
                tmp_path=tmp_path)  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 2 of 2 jobs failed; rerunning the sweep redoes only them: ")
    assert "trainer.args.learning_rate=-1 must be a positive number" in last and "Traceback" not in proc.stderr
    assert not list((tmp_path / "runs").rglob(records.RECORD_FILE))


# ---------------------------------------------------------------------------------------------------------------
# data.num_eval: encoders draw the evaluation subset exactly as decoders do
# ---------------------------------------------------------------------------------------------------------------


def test_encoders_evaluate_num_eval_examples_drawn_with_the_seed(compose_cfg, data_dir):
    import numpy as np
    from transformers import AutoTokenizer

    from beft.data import sources
    from beft.pipelines import decoder, pipeline_for

    spec = RunSpec.from_config(compose_cfg(f"data.dir={data_dir}", "task=cb", "data.num_eval=10", "seed=3"), False)
    splits = sources.load_splits(spec.task, spec.data.dir)
    tokenizer = AutoTokenizer.from_pretrained(loading.resolve_source(spec.model))
    data = pipeline_for(spec.model).prepare_data(spec, splits, [0, 1], tokenizer)
    validation = splits["validation"]
    drawn = np.random.RandomState(3).permutation(len(validation))[:10].tolist()
    assert len(data.eval["validation"]) == 10
    assert data.eval["validation"]["label"] == [validation[i]["label"] for i in drawn]
    assert decoder._eval_subset(validation, 10, 3)["label"] == data.eval["validation"]["label"]

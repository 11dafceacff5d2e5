"""The fault matrix, outcomes (docs/faults.md): interruptions, concurrent duplicates, failed reruns, damaged records
and caches, and the tools (predict, export, tables) never lose a completed record or a user's file, and say what
happened in one line. Signals, concurrent writers and NaN losses on real runs: tests/test_faults.py.
"""

from __future__ import annotations

import json
import logging
import shutil
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
from tests.conftest import CONF_DIR, write_record
from tests.faults.conftest import DONE, LOG, files, must_not_load, train_fault
from tests.sweeps.conftest import sweep_config

# ---------------------------------------------------------------------------------------------------------------
# Signals and interruptions: Ctrl-C ends like SIGTERM (no record, one line, exit 130); a rerun redoes the run
# ---------------------------------------------------------------------------------------------------------------


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def test_ctrl_c_writes_no_record_and_says_so_in_one_line(compose_cfg, data_dir, results, caplog, monkeypatch):
    monkeypatch.setattr(loading, "load_encoder", _interrupt)
    cfg = compose_cfg(f"data.dir={data_dir}", "task=cb")
    line = train_fault(cfg, caplog, code=faults.INTERRUPT_EXIT_CODE)
    assert line.startswith("interrupted by Ctrl-C: stopped without writing a record; rerun the same command")
    assert "interrupted (Ctrl-C): no record written" in caplog.text and "interrupted ()" not in caplog.text
    assert not (RunSpec.from_config(cfg, hydra_job=False).folder / records.RECORD_FILE).exists()


def test_ctrl_c_during_a_forced_rerun_keeps_the_completed_record(compose_cfg, data_dir, results, caplog, monkeypatch):
    monkeypatch.setattr(loading, "load_encoder", _interrupt)
    before = files(results)
    train_fault(compose_cfg(f"data.dir={data_dir}", "force=true"), caplog, code=130)
    assert files(results) == before


def test_sigterm_and_ctrl_c_codes():
    assert (faults.EXIT_CODE, faults.INTERRUPT_EXIT_CODE) == (143, 130)


# ---------------------------------------------------------------------------------------------------------------
# Concurrency: a skipped duplicate leaves the running job's files alone
# ---------------------------------------------------------------------------------------------------------------


def test_skipped_duplicate_keeps_the_running_jobs_hydrafiles(tmp_path):
    cfg = sweep_config(tmp_path, "task=cb")
    folder = tmp_path / "minilm" / "cb" / "low" / "beft-v" / "seed=0"
    callbacks.KeepFinishedRunFiles().on_run_start(cfg)
    assert cfg.hydra.output_subdir == ".hydra"  # nothing holds it: Hydra writes its files as usual
    with records.run_lock(folder):
        held = sweep_config(tmp_path, "task=cb")
        callbacks.KeepFinishedRunFiles().on_run_start(held)
        assert held.hydra.output_subdir is None
    assert records.lock_holder(folder) is None


def test_a_local_sweep_leaves_a_held_job_s_hydra_files_alone(hydra_app, tmp_path):
    from hydra_plugins.beft_launchers.launchers import BasicLauncher

    master, context = hydra_app("task=cb")
    held = tmp_path / "minilm" / "cb" / "low" / "beft-q" / "seed=0"
    (held / ".hydra").mkdir(parents=True)
    (held / ".hydra" / "overrides.yaml").write_text("- the running job's overrides\n")
    launcher = BasicLauncher()
    launcher.setup(hydra_context=context, task_function=lambda cfg: cfg.bias.name, config=master)
    with records.run_lock(held):  # another live job runs b_q
        launcher.launch([["task=cb", f"bias={b}", f"results_dir={tmp_path}"] for b in ("q", "k")], initial_job_idx=0)
    assert (held / ".hydra" / "overrides.yaml").read_text() == "- the running job's overrides\n"
    assert (
        "bias=k" in (tmp_path / "minilm" / "cb" / "low" / "beft-k" / "seed=0" / ".hydra" / "overrides.yaml").read_text()
    )


# ---------------------------------------------------------------------------------------------------------------
# Records: a failed forced rerun, a truncated record
# ---------------------------------------------------------------------------------------------------------------


def _fails(*args, **kwargs):
    raise RuntimeError("bad row at line 1000")


def test_failed_forced_rerun_keeps_the_completed_record_and_adapter(compose_cfg, data_dir, results, monkeypatch):
    monkeypatch.setattr(loading, "load_encoder", _fails)
    before = files(results)
    cfg = compose_cfg(f"data.dir={data_dir}", "force=true")
    with pytest.raises(RuntimeError):
        guarded(run_from_config, cfg, LOG)
    attempt = json.loads((results / DONE / records.ATTEMPT_FILE).read_text())
    assert attempt["status"] == "failed" and attempt["error"] == "RuntimeError: bad row at line 1000"
    assert {k: v for k, v in files(results).items() if not k.endswith(records.ATTEMPT_FILE)} == before
    assert records.completed_record(results / DONE).final_score == 0.7


def test_forced_rerun_against_a_bad_row_keeps_the_completed_record(
    compose_cfg, data_dir, results, tmp_path, caplog, monkeypatch
):
    """The reported case: a completed run, then ``force=true`` against a train.tsv with a bad row at line 1000."""
    monkeypatch.setattr(loading, "load_encoder", must_not_load)
    copy = tmp_path / "data"
    shutil.copytree(data_dir / "glue" / "RTE", copy / "glue" / "RTE", copy_function=shutil.copyfile)
    lines = (copy / "glue" / "RTE" / "train.tsv").read_text().split("\n")
    lines[999] = lines[999].replace("\t", " ", 1)
    (copy / "glue" / "RTE" / "train.tsv").write_text("\n".join(lines))
    before = files(results)
    line = train_fault(compose_cfg(f"data.dir={copy}", "force=true"), caplog)
    assert "train.tsv, line 1000: expected 4 tab-separated columns" in line
    attempt = json.loads((results / DONE / records.ATTEMPT_FILE).read_text())
    assert attempt["status"] == "failed" and "line 1000" in attempt["error"]
    assert {k: v for k, v in files(results).items() if not k.endswith(records.ATTEMPT_FILE)} == before


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
def test_export_refuses_a_folder_holdingfiles(flag, moved_run, tmp_path, capsys):
    mine = tmp_path / "users-model"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": true}')
    assert export.main([str(moved_run), flag, str(mine)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{mine} already exists and is not an empty folder" in err and "--overwrite" in err
    assert files(mine) == {"config.json": b'{"mine": true}'}


def test_export_overwrite_replaces_the_folder_as_a_whole(moved_run, tmp_path):
    mine = tmp_path / "users-model"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": true}')
    assert export.main([str(moved_run), "--adapter", str(mine), "--overwrite"]) == 0
    assert sorted(files(mine)) == ["adapter_config.json", adapters.META_FILE]


def test_export_refuses_a_file_even_with_overwrite(moved_run, tmp_path, capsys):
    (tmp_path / "a-file").write_text("mine")
    assert export.main([str(moved_run), "--adapter", str(tmp_path / "a-file"), "--overwrite"]) == 2
    assert f"{tmp_path / 'a-file'} is a file" in capsys.readouterr().err
    assert (tmp_path / "a-file").read_text() == "mine"


@pytest.mark.parametrize("file", ["rows.tsv", "rows.jsonl"])
def test_predict_file_with_non_utf8_bytes(file, moved_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(adapters, "load_base", must_not_load)
    rows = (
        "sentence1\tsentence2\nA man.\tNobody.\n" if file.endswith("tsv") else '{"sentence1": "a", "sentence2": "b"}\n'
    )
    (tmp_path / file).write_bytes(rows.encode() + b"caf\xe9\n")
    assert predict.main([str(moved_run), "--file", str(tmp_path / file)]) == 2
    err = capsys.readouterr().err
    line = 3 if file.endswith("tsv") else 2
    assert err.count("\n") == 1 and f"{tmp_path / file}, line {line}: byte 0xe9 is not UTF-8" in err


@pytest.mark.parametrize("damage", ["truncated weights", "bad beft.json"])
def test_a_damaged_adapter_is_named_before_the_model_loads(damage, moved_run, capsys, monkeypatch):
    import torch
    from safetensors.torch import save_file

    monkeypatch.setattr(adapters, "load_base", must_not_load)
    adapter = moved_run / "adapter"
    if damage == "truncated weights":
        save_file({"w": torch.zeros(64)}, str(adapter / "adapter_model.safetensors"))
        data = (adapter / "adapter_model.safetensors").read_bytes()
        (adapter / "adapter_model.safetensors").write_bytes(data[:-100])
        expected = f"{adapter / 'adapter_model.safetensors'} is truncated or corrupt"
    else:
        (adapter / adapters.META_FILE).write_text('{"model": ')
        expected = f"{adapter / adapters.META_FILE} is not valid JSON"
    assert predict.main([str(moved_run), "--text", "a", "b"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err


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
    monkeypatch.setattr(adapters, "load_base", must_not_load)
    (tmp_path / "a-file").write_text("mine")
    out = tmp_path if where == "a folder" else tmp_path / "a-file" / "preds.jsonl"
    assert predict.main([str(moved_run), "--text", "a", "b", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out {out}" in err
    assert (tmp_path / "a-file").read_text() == "mine"

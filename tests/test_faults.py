"""Faults never leave a wrong number or a lost record: kills, SIGTERM, concurrent writers, NaN losses.

* a run killed at any moment (SIGKILL, SIGTERM, Ctrl-C) leaves a complete record or none, and rerunning the command
  completes it (SIGTERM: exit 143, Ctrl-C: exit 130, no record, scratch folder removed; the lock dies with a SIGKILLed
  job);
* two processes writing records into one tree, or tokenising into one cache, never produce a partial file;
* a second job for a run that a live job holds is skipped, and the lock dies with its holder (SIGKILL included);
* a NaN/inf loss stops the run at that step with ``status: failed`` and the reason; ``beft.rank`` reports it.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest
from hydra import compose, initialize_config_dir
from transformers import AutoTokenizer, TrainerControl, TrainerState, TrainingArguments

from beft import rank, records
from beft.data import features
from beft.models import loading
from beft.spec import RunSpec
from beft.sweeps import faults
from beft.sweeps.guard import guarded
from beft.train import run_from_config
from beft.training.trainer import EpochHistory, FiniteLossTrainer, NonFiniteLossError
from tests.conftest import CONF_DIR, REPO, run_config, write_record

FORK = multiprocessing.get_context("fork")  # children inherit the imported modules: no second start-up

# ---------------------------------------------------------------------------------------------------------------
# Kill and SIGTERM a real run
# ---------------------------------------------------------------------------------------------------------------


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _wait_for_training(proc: subprocess.Popen, log: Path, steps: int, timeout: float = 300) -> None:
    """Until the Trainer's progress bar shows at least one finished step of ``steps`` (the run is mid-training)."""
    pattern = re.compile(rf"\b([1-9]\d*)/{steps} \[")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pattern.search(log.read_text(errors="replace")):
            return
        assert proc.poll() is None, f"the run ended before training was seen:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"training did not start within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_killed_run_leaves_no_record_and_a_rerun_completes(tmp_path, data_dir):
    """SIGKILL mid-training (nothing can run on SIGKILL): no record; the same command then completes the run."""
    cmd = [sys.executable, "-m", "beft.train", "task=cb", "data.num_train=32", "trainer.args.num_train_epochs=1",
           f"data.dir={data_dir}", f"results_dir={tmp_path}/runs", f"data.cache_dir={tmp_path}/cache"]  # fmt: skip
    proc = _start(cmd, tmp_path / "kill.log")
    _wait_for_training(proc, tmp_path / "kill.log", steps=32 // 16)
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    (folder,) = {p.parent for p in (tmp_path / "runs").rglob(".hydra")}  # the run folder (Hydra wrote it first)
    assert not list((tmp_path / "runs").rglob("record.json"))
    visible = {p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert visible <= {"train.log"}  # besides Hydra's log: the hidden lock (and, at most, a temporary)
    assert (folder / "trainer").exists()  # it was mid-training

    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    record = records.to_dict(records.read_run(folder))  # the lock died with the killed job: the rerun was not refused
    assert record["status"] == "completed" and [e["epoch"] for e in record["epochs"]] == [1]
    assert record["data"]["num_train"] == 32 and math.isfinite(record["score"]["final"])
    assert not (folder / "trainer").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code", "message"),
    [
        (signal.SIGTERM, faults.EXIT_CODE, "terminated by SIGTERM: stopped without writing a record"),
        (signal.SIGINT, faults.INTERRUPT_EXIT_CODE, "interrupted by Ctrl-C: stopped without writing a record"),
    ],
    ids=["SIGTERM", "Ctrl-C"],
)
def test_signal_mid_training_ends_the_run_without_a_record(
    signum, code, message, compose_cfg, data_dir, monkeypatch, caplog
):
    """SIGTERM (scancel, preemption; exit 143) or Ctrl-C (SIGINT; exit 130) at training step 2: no record, no scratch
    folder, one line; a rerun redoes it."""
    cfg = compose_cfg("task=cb", "data.num_train=32", "trainer.args.num_train_epochs=1", f"data.dir={data_dir}")
    steps = []
    original = FiniteLossTrainer.training_step

    def step_then_signal(self, *args, **kwargs):
        steps.append(self.state.global_step)
        if len(steps) == 2:
            os.kill(os.getpid(), signum)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FiniteLossTrainer, "training_step", step_then_signal)
    with pytest.raises(SystemExit) as exit_, caplog.at_level(logging.ERROR):
        guarded(run_from_config, cfg, logging.getLogger("beft.train"))
    assert exit_.value.code == code and steps == [0, 1]
    assert message in caplog.text and "interrupted ()" not in caplog.text
    assert (
        not (RunSpec.from_config(cfg).folder / records.RECORD_FILE).exists()
        and not (RunSpec.from_config(cfg).folder / "trainer").exists()
    )
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_sigterm_becomes_an_exception_unless_someone_else_handles_it():
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    with pytest.raises(faults.Terminated, match="terminated by SIGTERM"), faults.terminate_as_exception() as installed:
        assert installed
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises as soon as the signal is delivered
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL

    seen: list[int] = []  # submitit installs its own SIGTERM handler (it ignores SIGTERM): it must stay in charge
    signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with faults.terminate_as_exception() as installed:
            assert not installed
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_requeue_exit_writes_no_record(compose_cfg, data_dir, monkeypatch):
    """submitit requeues a preempted job by raising SystemExit from its signal handler: no record, so the requeued
    job runs it again (a record saying ``running`` would be a partial one)."""
    cfg = compose_cfg("task=cb", f"data.dir={data_dir}")

    def preempted(*args, **kwargs):
        sys.exit(-1)

    monkeypatch.setattr(loading, "load_encoder", preempted)
    with pytest.raises(SystemExit):
        run_config(cfg)
    assert not (RunSpec.from_config(cfg).folder / records.RECORD_FILE).exists()


def test_entry_points_turn_faults_into_exit_codes(caplog):
    log = logging.getLogger("test")

    def fails_with(err: BaseException):
        def fn(cfg):
            raise err

        return fn

    with pytest.raises(SystemExit) as exit_:
        guarded(fails_with(faults.Terminated(signal.SIGTERM)), None, log)
    assert exit_.value.code == 143
    with pytest.raises(SystemExit) as exit_, caplog.at_level(logging.ERROR):
        guarded(fails_with(NonFiniteLossError("training loss became nan at step 3")), None, log)
    assert exit_.value.code == 1 and "training loss became nan at step 3 (the run's record says status failed)" in (
        caplog.text
    )
    assert guarded(fails_with(records.RunLockedError("held")), None, log) is None  # skipped, the sweep goes on


# ---------------------------------------------------------------------------------------------------------------
# Concurrent writers
# ---------------------------------------------------------------------------------------------------------------


def _write_many(root: str, worker: int, count: int, start) -> None:
    start.wait()
    payload = "x" * 65536  # large enough that a non-atomic write would be seen half-done
    for i in range(count):
        write_record(Path(root) / "shared", {"status": "completed", "worker": worker, "i": i, "p": payload})
        write_record(Path(root) / f"own-{worker}", {"status": "completed", "i": i, "p": payload})


def _read_many(root: str, stop, errors) -> None:
    path = Path(root) / "shared" / records.RECORD_FILE
    while not stop.is_set():
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        try:
            record = json.loads(text)
            assert record["status"] == "completed" and len(record["p"]) == 65536
        except (json.JSONDecodeError, AssertionError, KeyError):
            errors.put(text[:200])


def test_two_processes_writing_records_never_leave_a_partial_one(tmp_path):
    start, stop, errors = FORK.Barrier(3), FORK.Event(), FORK.Queue()
    writers = [FORK.Process(target=_write_many, args=(str(tmp_path), w, 150, start)) for w in (0, 1)]
    reader = FORK.Process(target=_read_many, args=(str(tmp_path), stop, errors))
    for p in [reader, *writers]:
        p.start()
    start.wait()
    for p in writers:
        p.join(timeout=120)
        assert p.exitcode == 0
    stop.set()
    reader.join(timeout=30)
    assert errors.empty(), errors.get()
    for name in ("shared", "own-0", "own-1"):
        assert [p.name for p in (tmp_path / name).iterdir()] == ["record.json"]  # no temporaries left
        assert records.read_run(tmp_path / name).extra["i"] == 149


def _hold_lock(folder: str, held, release) -> None:
    with records.run_lock(folder):
        held.set()
        release.wait(60)


def test_a_run_held_by_a_live_job_is_not_run_twice(compose_cfg, data_dir):
    cfg = compose_cfg("task=cb", f"data.dir={data_dir}")
    folder = RunSpec.from_config(cfg).folder
    held, release = FORK.Event(), FORK.Event()
    holder = FORK.Process(target=_hold_lock, args=(str(folder), held, release))
    holder.start()
    try:
        assert held.wait(30)
        with pytest.raises(records.RunLockedError, match=rf"is being run by another job \(pid {holder.pid} on "):
            run_config(cfg)
        assert not (folder / records.RECORD_FILE).exists()
    finally:
        holder.kill()  # SIGKILL: the kernel releases the lock with the process
        holder.join()
    with records.run_lock(folder):  # a requeued job takes over at once
        assert f"pid {os.getpid()} " in (folder / records.LOCK_FILE).read_text()


def _tokenise(cache: str, source: str, both_tokenised, out) -> None:
    original = features._tokenize

    def tokenise_then_wait(*args):
        result = original(*args)
        both_tokenised.wait()  # neither has written the cache yet: both race to publish it
        return result

    features._tokenize = tokenise_then_wait
    ds = datasets.Dataset.from_dict({"sentence": [f"sentence number {i}" for i in range(50)], "label": [0, 1] * 25})
    tokenizer = AutoTokenizer.from_pretrained(source)
    feats = features.tokenize(ds, ["sentence"], tokenizer, 32, "dynamic", cache)
    out.put(feats["input_ids"])


def test_two_processes_tokenising_into_one_cache(tmp_path, compose_cfg):
    source = loading.resolve_source(compose_cfg().model)
    both_tokenised, out = FORK.Barrier(2), FORK.Queue()
    procs = [FORK.Process(target=_tokenise, args=(str(tmp_path), source, both_tokenised, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert results[0] == results[1] and len(results[0]) == 50
    entries = list((tmp_path / "features").iterdir())
    assert len(entries) == 1 and not entries[0].name.startswith(".")  # one complete entry, no temporary


# ---------------------------------------------------------------------------------------------------------------
# NaN / inf
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_nan_loss_fails_the_run_with_the_reason_and_rank_reports_it(tmp_path, data_dir, monkeypatch, caplog):
    """lr 1e30 makes the loss NaN at step 2. The Trainer's logging filter would hide that (the logged loss stays
    finite, the record said completed); the run stops there instead, and beft.rank says its BitFit run failed."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("rank", overrides=[
            "task=cb", "data.num_train=32", "trainer.args.num_train_epochs=1", "trainer.args.learning_rate=1e30",
            f"data.dir={data_dir}", f"results_dir={tmp_path / 'runs'}", f"data.cache_dir={tmp_path / 'cache'}",
        ])  # fmt: skip
    monkeypatch.setattr(rank, "fisher", lambda spec: {})  # the test is about the BitFit run
    with pytest.raises(SystemExit) as exit_, caplog.at_level(logging.ERROR):
        guarded(rank.rank_from_config, cfg, logging.getLogger("beft.rank"))
    assert exit_.value.code == 2
    reason = "NonFiniteLossError: training loss became nan at step 2 (epoch 0.50): the run diverged"
    assert f"the BitFit run minilm/cb/low/bitfit/seed=0 failed ({reason}" in caplog.text
    bitfit = records.to_dict(records.read_run(RunSpec.from_config(cfg).folder))
    assert bitfit["status"] == "failed" and bitfit["error"].startswith(reason) and "epochs" not in bitfit
    assert not (RunSpec.from_config(cfg).folder / "trainer").exists()
    ranking = records.to_dict(records.read_ranking(RunSpec.from_config(cfg).rank_folder))
    assert ranking["status"] == "failed" and reason in ranking["error"]


def test_non_finite_evaluation_stops_the_run():
    """A diverged model still gets an accuracy; a NaN evaluation loss must not be recorded as a result."""
    history = EpochHistory(["validation"])
    args = TrainingArguments(output_dir="unused", learning_rate=0.5, report_to="none")
    state = TrainerState(epoch=1.0)
    history.on_evaluate(args, state, TrainerControl(), metrics={"eval_validation_loss": 0.7})
    with pytest.raises(NonFiniteLossError, match=r"evaluation on validation after epoch 1.00 gave non-finite"):
        history.on_evaluate(args, state, TrainerControl(), metrics={"eval_validation_loss": float("nan")})


def test_failed_record_is_redone_and_an_unknown_error_is_recorded(compose_cfg, data_dir, monkeypatch):
    """A failed run's record says why; the same command then runs it again (not skipped)."""
    cfg = compose_cfg("task=cb", f"data.dir={data_dir}")

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(loading, "load_encoder", broken)
    with pytest.raises(RuntimeError):
        run_config(cfg)
    assert records.to_dict(records.read_run(RunSpec.from_config(cfg).folder))["error"] == "RuntimeError: disk on fire"
    assert records.completed_record(RunSpec.from_config(cfg).folder) is None
    with pytest.raises(RuntimeError):  # not skipped: it runs (and fails) again
        run_config(cfg)

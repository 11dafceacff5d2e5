"""Sweeps through a real SLURM cluster: `scripts/slurm_local.sh start` brings up a one-node one (``make test`` does).

The sweeps go through conf/hydra/launcher/slurm.yaml unchanged, with a CPU node's settings on the command line:

* a sweep of two tiny MiniLM runs is submitted with sbatch as one job array, and both records are written;
* a rerun submits nothing (no new SLURM job, no new submitit folder) and leaves the records as they were;
* a job cancelled with ``scancel`` mid-training writes no record; the sweep reports it and exits non-zero; a rerun
  submits only that job and completes it;
* a job sent SIGTERM mid-training goes on (submitit ignores SIGTERM); sent USR2 (SLURM's signal before the time
  limit, ``--signal=USR2@signal_delay_s``) it writes no record, is requeued by submitit, runs again and writes one
  completed record.

No cluster: the tests fail and say how to start one; as root with the packages installed, the session starts it
(and stops it afterwards).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from beft import records
from tests.conftest import REPO, SLURM_PACKAGES_BINARIES, slurm_answers

pytestmark = pytest.mark.slurm

SCRIPT = REPO / "scripts" / "slurm_local.sh"
# a CPU node: the GPU setting is 0, one CPU and 2 GB a job; everything else is conf/hydra/launcher/slurm.yaml's
LAUNCHER = ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=10"]  # fmt: skip
TINY = ["model=minilm", "task=cb", "data.num_train=16", "trainer.args.num_train_epochs=1"]
LONGER = ["model=minilm", "task=cb", "data.num_train=32", "trainer.args.num_train_epochs=4"]  # 8 steps, 4 evaluations
SWEEP_TIMEOUT = 300


@pytest.fixture(scope="session")
def slurm_cluster():
    """A SLURM cluster that takes jobs: the one running, else the local one started here (root + packages)."""
    if slurm_answers():
        yield
        return
    can_start = os.geteuid() == 0 and all(shutil.which(b) for b in SLURM_PACKAGES_BINARIES)
    if not can_start:
        pytest.fail(
            "no SLURM cluster takes jobs (scontrol ping / sinfo): run `sudo scripts/slurm_local.sh start` first "
            "(`sudo scripts/slurm_local.sh install` installs slurm-wlm and munge); `make test` does both"
        )
    started = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=120)
    assert started.returncode == 0 and slurm_answers(), started.stdout + started.stderr
    yield
    subprocess.run([str(SCRIPT), "stop"], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def sweep_cmd(runs: Path, cache: Path, data_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "beft.train", "-m", *LAUNCHER, *overrides, f"data.dir={data_dir}",
            f"results_dir={runs}", f"data.cache_dir={cache}"]  # fmt: skip


def run_sweep(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=SWEEP_TIMEOUT)


def slurm_jobs() -> dict[str, str]:
    """Every job slurmctld knows (finished ones too): array element id -> state."""
    out = subprocess.run(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T"],
                         capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    return dict(line.split("|") for line in out.stdout.split())


def submitit_jobs(runs: Path) -> list[str]:
    """The SLURM jobs a sweep submitted, from submitit's folders: ``<id>_<index>`` for an array, ``<id>`` alone."""
    folder = runs / ".submitit"
    jobs = [p.name for p in folder.glob("*") if (p / f"{p.name}_submitted.pkl").is_file()] if folder.is_dir() else []
    return sorted(jobs, key=lambda job: tuple(int(n) for n in job.split("_")))


def job_record(runs: Path, bias: str) -> Path:
    (folder,) = (runs / "minilm" / "cb" / "low").glob(f"beft-{bias}/seed=0__*")
    return folder / records.RECORD_FILE


def wait_for(condition, what: str, timeout: float = 180, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the sweep ended before {what}:\n{log.read_text()[-3000:] if log else ''}")
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:] if log else ''}")


def training_started(runs: Path, job_id: str, steps: int) -> bool:
    """The job's Trainer has finished at least one of its ``steps`` steps (its progress bar, in submitit's log)."""
    log = runs / ".submitit" / job_id / f"{job_id}_0_log.err"
    return log.is_file() and re.search(rf"\b[1-9]\d*/{steps} \[", log.read_text(errors="replace")) is not None


# ---------------------------------------------------------------------------------------------------------------
# A sweep through sbatch, and its rerun
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_sweep(slurm_cluster, tmp_path_factory, cache_dir, data_dir):
    runs = tmp_path_factory.mktemp("sweep") / "runs"
    cmd = sweep_cmd(runs, cache_dir, data_dir, *TINY, "bias=v,q")
    before = set(slurm_jobs())
    proc = run_sweep(cmd)
    return runs, cmd, proc, before


def test_sweep_is_submitted_through_sbatch_and_writes_every_record(finished_sweep):
    runs, _, proc, before = finished_sweep
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    jobs = submitit_jobs(runs)
    assert len(jobs) == 2 and len({j.split("_")[0] for j in jobs}) == 1  # one job array of two
    assert not set(jobs) & before  # new SLURM jobs; they end (COMPLETED) right after writing their results
    wait_for(lambda: all(slurm_jobs()[j] == "COMPLETED" for j in jobs), "the jobs to be COMPLETED", timeout=60)
    for bias in ("v", "q"):
        record = json.loads(job_record(runs, bias).read_text())
        assert record["status"] == "completed" and record["run"]["bias"] == bias
        assert [e["epoch"] for e in record["epochs"]] == [1]


def test_rerun_submits_nothing_for_finished_jobs(finished_sweep):
    runs, cmd, first, _ = finished_sweep
    assert first.returncode == 0, first.stderr[-3000:]
    known, folders = set(slurm_jobs()), submitit_jobs(runs)
    paths = [job_record(runs, bias) for bias in ("v", "q")]
    before = [(p.read_bytes(), p.stat().st_mtime_ns, (p.parent / ".hydra" / "config.yaml").stat().st_mtime_ns)
              for p in paths]  # fmt: skip
    second = run_sweep(cmd)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "skipping 2 finished jobs of 2" in second.stdout + second.stderr
    assert set(slurm_jobs()) == known  # no new SLURM job
    assert submitit_jobs(runs) == folders
    after = [(p.read_bytes(), p.stat().st_mtime_ns, (p.parent / ".hydra" / "config.yaml").stat().st_mtime_ns)
             for p in paths]  # fmt: skip
    assert after == before  # the run folders were not touched


# ---------------------------------------------------------------------------------------------------------------
# Faults: scancel, SIGTERM and the time-limit signal (USR2), in one sweep of two jobs running side by side
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def interrupted_sweep(slurm_cluster, tmp_path_factory, cache_dir, data_dir):
    """Job 0 (b_k) is cancelled with scancel mid-training; job 1 (b_o) gets SIGTERM, then USR2, mid-training."""
    runs = tmp_path_factory.mktemp("faults") / "runs"
    cmd = sweep_cmd(runs, cache_dir, data_dir, *LONGER, "bias=k,o")
    log = runs.parent / "sweep.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    seen: dict[str, object] = {}
    try:
        wait_for(lambda: len(submitit_jobs(runs)) == 2, "the job array", proc=proc, log=log)
        cancelled, signalled = submitit_jobs(runs)

        def signal_each_once_training() -> bool:
            if "cancelled" not in seen and training_started(runs, cancelled, 8):
                subprocess.run(["scancel", cancelled], check=True, timeout=30)
                seen["cancelled"] = True
            if "usr2_at" not in seen and training_started(runs, signalled, 8):
                subprocess.run(["scancel", "--signal=TERM", signalled], check=True, timeout=30)
                time.sleep(2)
                seen["state_after_term"] = slurm_jobs()[signalled]
                seen["usr2_at"] = datetime.now(timezone.utc)
                subprocess.run(["scancel", "--signal=USR2", signalled], check=True, timeout=30)
            return len(seen) == 3

        wait_for(signal_each_once_training, "both jobs to train", proc=proc, log=log)
        rc = proc.wait(timeout=SWEEP_TIMEOUT)
    except BaseException:  # leave no job behind
        proc.kill()
        subprocess.run(["scancel", *submitit_jobs(runs)], timeout=30)
        raise
    return runs, cmd, rc, log.read_text(), cancelled, signalled, seen


def test_cancelled_job_leaves_no_record_and_a_rerun_completes_it(interrupted_sweep):
    runs, cmd, rc, output, cancelled, _, _ = interrupted_sweep
    assert rc != 0, output[-3000:]  # a job of the sweep did not finish: the sweep says so and exits non-zero
    assert f"SLURM job {cancelled} ended CANCELLED without a result" in output
    assert "1 of 2 jobs failed or did not finish" in output
    (folder,) = (runs / "minilm" / "cb" / "low" / "beft-k").iterdir()
    assert not (folder / records.RECORD_FILE).exists() and not list(folder.glob(".record-*"))

    known = set(slurm_jobs())
    rerun = run_sweep(cmd)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "skipping 1 finished jobs of 2" in rerun.stdout + rerun.stderr  # the requeued b_o run is done
    new = sorted(set(slurm_jobs()) - known)
    assert len(new) == 1 and new[0] in submitit_jobs(runs)  # only the cancelled run was submitted again
    record = records.to_dict(records.read_run(folder))
    assert record["status"] == "completed" and [e["epoch"] for e in record["epochs"]] == [1, 2, 3, 4]
    assert not (folder / "trainer").exists()  # the killed job's scratch folder is gone too


def test_sigterm_is_ignored_and_usr2_requeues_the_job_which_completes_once(interrupted_sweep):
    runs, _, _, output, _, signalled, seen = interrupted_sweep
    assert seen["state_after_term"] == "RUNNING"  # SIGTERM alone (submitit ignores it) does not stop the job
    job_log = (runs / ".submitit" / signalled / f"{signalled}_0_log.out").read_text()
    assert "Bypassing signal SIGTERM" in job_log and "Caught signal SIGUSR2" in job_log
    assert f"Requeued job {signalled}" in job_log
    assert "interrupted (-1): no record written" in job_log  # the first attempt stopped without a record
    own = [line for line in job_log.splitlines() if line.startswith("submitit ")]  # submitit's lines (once each)
    assert sum("Starting with JobEnvironment" in line for line in own) == 2  # two attempts,
    assert sum("Job completed successfully" in line for line in own) == 1  # one of which (the 2nd) completed
    wait_for(lambda: slurm_jobs()[signalled] == "COMPLETED", "the job to be COMPLETED", timeout=60)
    show = subprocess.run(["scontrol", "show", "job", signalled], capture_output=True, text=True, timeout=30).stdout
    assert "Restarts=1" in show  # requeued once
    found = list((runs / "minilm" / "cb" / "low" / "beft-o").rglob(records.RECORD_FILE))
    assert len(found) == 1  # one run folder, one record
    record = json.loads(found[0].read_text())
    assert record["status"] == "completed" and [e["epoch"] for e in record["epochs"]] == [1, 2, 3, 4]
    assert datetime.fromisoformat(record["time"]["started"]) >= seen["usr2_at"].replace(microsecond=0)  # 2nd try

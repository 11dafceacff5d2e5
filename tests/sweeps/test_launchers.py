"""The launchers Hydra instantiates (hydra_plugins/beft_launchers/launchers.py) launch nothing for finished runs;
the filter itself: tests/sweeps/test_skip.py; SLURM: tests/sweeps/test_slurm.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from beft import records
from hydra_plugins.beft_launchers.launchers import BasicLauncher
from tests.conftest import REPO, write_record
from tests.sweeps.conftest import sweep_config


@pytest.mark.parametrize("launcher", ["local", "submitit_local", "slurm"])
def test_every_launcher_is_beft_s(launcher, tmp_path):
    target = sweep_config(tmp_path, f"hydra/launcher={launcher}").hydra.launcher._target_
    assert target.startswith("hydra_plugins.beft_launchers.launchers.")


def test_default_launcher_skips_finished_jobs(tmp_path):
    assert sweep_config(tmp_path).hydra.launcher._target_.endswith(".BasicLauncher")
    assert sweep_config(tmp_path, entry="rank").hydra.launcher._target_.endswith(".BasicLauncher")


def test_local_sweep_launches_only_the_unfinished_jobs(tmp_path):
    """b_v completed, b_q failed, b_k missing: only b_q and b_k run (they stop at once: the data folder is missing);
    the sweep goes on past the first, then lists both and exits with 1 (docs/faults.md)."""
    runs = tmp_path / "runs"
    done = runs / "minilm" / "cb" / "low" / "beft-v" / "seed=0"
    write_record(done, {"status": "completed", "score": {"final": 0.5}})
    write_record(runs / "minilm" / "cb" / "low" / "beft-q" / "seed=0", {"status": "failed", "error": "x"})
    before = (done / records.RECORD_FILE).read_bytes()
    cmd = [sys.executable, "-m", "beft.train", "-m", "task=cb", "bias=v,q,k", f"results_dir={runs}",
           f"data.dir={tmp_path / 'no-data'}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]  # in a sweep, a failing job is logged and the sweep goes on
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 2 of 2 jobs failed; rerunning the sweep redoes only them: task=cb bias=q ")
    assert "is not a folder" in last and "Traceback" not in out
    assert "skipping 1 finished jobs of 3 (completed records; force=true reruns them); launching 2" in out
    assert "#1 : task=cb bias=q" in out and "#2 : task=cb bias=k" in out and "bias=v" not in out.split("launching")[1]
    assert out.count("no-data") >= 2  # both launched jobs ran and stopped at the missing data folder
    assert (done / records.RECORD_FILE).read_bytes() == before and not (done / ".hydra").exists()


class CountingLoader:
    """Hydra's config loader, counting the job configs it composes."""

    def __init__(self, loader):
        self.loader, self.composed = loader, []

    def load_sweep_config(self, master_config, overrides):
        self.composed.append(list(overrides))
        return self.loader.load_sweep_config(master_config, overrides)


def test_local_launcher_composes_each_job_once_and_runs_that_config(hydra_app, tmp_path):
    master, context = hydra_app("task=cb")
    loader = CountingLoader(context.config_loader)
    context.config_loader = loader
    write_record(tmp_path / "minilm" / "cb" / "low" / "beft-v" / "seed=0", {"status": "completed"})
    ran = []
    launcher = BasicLauncher()
    launcher.setup(hydra_context=context, task_function=lambda cfg: ran.append(cfg) or cfg.bias.name, config=master)
    jobs = [["task=cb", f"bias={b}", f"results_dir={tmp_path}"] for b in ("v", "q", "k")]
    jobs.append(["task=cb", "bias=q", "data.num_train=16", f"results_dir={tmp_path}"])
    returns = launcher.launch(jobs, initial_job_idx=0)
    assert loader.composed == jobs  # once each: the skip filter's configs are the ones run
    assert [r.return_value for r in returns] == [None, "q", "k", "q"]  # b_v is finished: not run
    assert [cfg.data.num_train for cfg in ran] == [250, 250, 16]
    for number, folder in [(1, "beft-q/seed=0"), (2, "beft-k/seed=0"), (3, "beft-q/seed=0__data.num_train=16")]:
        hydra_yaml = (tmp_path / "minilm" / "cb" / "low" / folder / ".hydra" / "hydra.yaml").read_text()
        assert f"num: {number}" in hydra_yaml


def test_local_launcher_reports_a_job_that_does_not_compose_at_its_turn(hydra_app, tmp_path):
    master, context = hydra_app("task=cb")
    ran = []
    launcher = BasicLauncher()
    launcher.setup(hydra_context=context, task_function=lambda cfg: ran.append(cfg.bias.name), config=master)
    with pytest.raises(Exception, match="nope"):
        launcher.launch([[f"bias={b}", f"results_dir={tmp_path}"] for b in ("q", "nope", "k")], initial_job_idx=0)
    assert ran == ["q"]  # as Hydra's basic launcher: the jobs before it ran, the sweep stops there

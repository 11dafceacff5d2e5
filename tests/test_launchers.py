"""The sweep launchers launch nothing for finished runs (beft/launchers.py); SLURM itself: tests/test_slurm.py."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from beft import launchers, records, variants
from tests.conftest import CONF_DIR, REPO

variants.register_resolver()


def sweep_config(tmp_path, *overrides: str, entry: str = "train"):
    launchers.quiet_schema_matching()  # as the entry points do (submitit_local.yaml)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(entry, overrides=[f"results_dir={tmp_path}", *overrides], return_hydra_config=True)


@pytest.mark.parametrize("launcher", ["local", "submitit_local", "slurm"])
def test_every_launcher_is_beft_s(launcher, tmp_path):
    target = sweep_config(tmp_path, f"hydra/launcher={launcher}").hydra.launcher._target_
    assert target.startswith("hydra_plugins.beft_launchers.launchers.")


def test_default_launcher_skips_finished_jobs(tmp_path):
    assert sweep_config(tmp_path).hydra.launcher._target_.endswith(".BasicLauncher")
    assert sweep_config(tmp_path, entry="rank").hydra.launcher._target_.endswith(".BasicLauncher")


def test_a_job_is_finished_when_its_run_folder_holds_a_completed_record(tmp_path):
    cfg = sweep_config(tmp_path, "task=cb", "bias=q")
    folder = tmp_path / "minilm" / "cb" / "low" / "beft-q" / "seed=0"
    assert launchers.job_folder(cfg) == folder and launchers.finished_record(cfg) is None
    records.write_record(folder, {"status": "failed", "error": "x"})
    assert launchers.finished_record(cfg) is None  # failed: launched again
    records.write_record(folder, {"status": "completed", "score": {"final": 0.5}})
    assert launchers.finished_record(cfg)["score"]["final"] == 0.5
    assert launchers.finished_record(sweep_config(tmp_path, "task=cb", "bias=q", "force=true")) is None
    assert launchers.skipped_return(cfg, launchers.finished_record(cfg)).return_value == 0.5


def test_a_variant_is_looked_up_in_its_own_folder(tmp_path):
    cfg = sweep_config(tmp_path, "task=cb", "data.num_train=16")
    assert launchers.job_folder(cfg).name == "seed=0__data.num_train=16"
    records.write_record(tmp_path / "minilm" / "cb" / "low" / "beft-v" / "seed=0", {"status": "completed"})
    assert launchers.finished_record(cfg) is None  # the paper's run is done, the variant is not


def test_a_ranking_job_is_finished_by_its_ranking_record(tmp_path):
    cfg = sweep_config(tmp_path, "task=cb", entry="rank")
    folder = tmp_path / "minilm" / "cb" / "low" / "ranking" / "seed=0"
    assert launchers.job_folder(cfg) == folder
    records.write_record(folder, {"status": "completed"}, name=records.RANKING_FILE)
    assert launchers.finished_record(cfg) is not None


def test_local_sweep_launches_only_the_unfinished_jobs(tmp_path):
    """b_v completed, b_q failed, b_k missing: only b_q and b_k run (they stop at once: the data folder is missing)."""
    runs = tmp_path / "runs"
    done = runs / "minilm" / "cb" / "low" / "beft-v" / "seed=0"
    records.write_record(done, {"status": "completed", "score": {"final": 0.5}})
    records.write_record(runs / "minilm" / "cb" / "low" / "beft-q" / "seed=0", {"status": "failed", "error": "x"})
    before = (done / records.RECORD_FILE).read_bytes()
    cmd = [sys.executable, "-m", "beft.train", "-m", "task=cb", "bias=v,q,k", f"results_dir={runs}",
           f"data.dir={tmp_path / 'no-data'}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]  # in a sweep, a failing job is logged and the sweep goes on
    assert "skipping 1 finished jobs of 3 (completed records; force=true reruns them); launching 2" in out
    assert "#1 : task=cb bias=q" in out and "#2 : task=cb bias=k" in out and "bias=v" not in out.split("launching")[1]
    assert out.count("no-data") >= 2  # both launched jobs ran and stopped at the missing data folder
    assert (done / records.RECORD_FILE).read_bytes() == before and not (done / ".hydra").exists()

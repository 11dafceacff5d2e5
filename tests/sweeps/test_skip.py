"""A sweep's job is finished when its run folder holds a completed record (beft/sweeps/skip.py)."""

from __future__ import annotations

from beft import records
from beft.sweeps import skip
from tests.conftest import write_record
from tests.sweeps.conftest import sweep_config


def test_a_job_is_finished_when_its_run_folder_holds_a_completed_record(tmp_path):
    cfg = sweep_config(tmp_path, "task=cb", "bias=q")
    folder = tmp_path / "minilm" / "cb" / "low" / "beft-q" / "seed=0"
    assert skip.job_folder(cfg) == folder and skip.finished_record(cfg) is None
    write_record(folder, {"status": "failed", "error": "x"})
    assert skip.finished_record(cfg) is None  # failed: launched again
    write_record(folder, {"status": "completed", "score": {"final": 0.5}})
    assert skip.finished_record(cfg).final_score == 0.5
    assert skip.finished_record(sweep_config(tmp_path, "task=cb", "bias=q", "force=true")) is None
    assert skip.skipped_return(cfg, skip.finished_record(cfg)).return_value == 0.5


def test_a_variant_is_looked_up_in_its_own_folder(tmp_path):
    cfg = sweep_config(tmp_path, "task=cb", "data.num_train=16")
    assert skip.job_folder(cfg).name == "seed=0__data.num_train=16"
    write_record(tmp_path / "minilm" / "cb" / "low" / "beft-v" / "seed=0", {"status": "completed"})
    assert skip.finished_record(cfg) is None  # the paper's run is done, the variant is not


def test_a_ranking_job_is_finished_by_its_ranking_record(tmp_path):
    cfg = sweep_config(tmp_path, "task=cb", entry="rank")
    folder = tmp_path / "minilm" / "cb" / "low" / "ranking" / "seed=0"
    assert skip.job_folder(cfg) == folder
    write_record(folder, {"status": "completed"}, name=records.RANKING_FILE)
    assert skip.finished_record(cfg) is not None


def test_a_job_whose_folder_does_not_resolve_is_launched(tmp_path):
    cfg = sweep_config(tmp_path, "task=cb")
    cfg.results_dir = "${oc.env:BEFT_NO_SUCH_VARIABLE}"
    assert skip.finished_record(cfg) is None  # the job itself reports the error


def test_a_bias_auto_job_is_looked_up_in_the_beft_auto_folder(tmp_path):
    """``-m bias=auto seed=0,1,2`` skips each seed's finished auto run; another approach is a variant of it."""
    for seed in (0, 1):
        cfg = sweep_config(tmp_path, "task=sst2", "bias=auto", f"seed={seed}")
        assert skip.job_folder(cfg) == tmp_path / "minilm" / "sst2" / "low" / "beft-auto" / f"seed={seed}"
    write_record(tmp_path / "minilm" / "sst2" / "low" / "beft-auto" / "seed=0", {"status": "completed"})
    assert skip.finished_record(sweep_config(tmp_path, "task=sst2", "bias=auto", "seed=0")) is not None
    other = sweep_config(tmp_path, "task=sst2", "bias=auto", "bias.approach=fisher")
    assert skip.job_folder(other).name == "seed=0__bias.approach=fisher" and skip.finished_record(other) is None

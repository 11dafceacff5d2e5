"""Targets (from conf/bench.yaml), the Markdown page, and the results files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from beft.bench import report, settings

RESULTS = Path(__file__).resolve().parents[2] / "results" / "bench"


def fake_result(b_v_ratio: float, speedup_times: tuple[float, float]) -> dict:
    steps = [{"name": "b_v", "ratio_to_full": b_v_ratio, "memory_ratio_to_full": 0.45}]
    jobs = [
        {"task": "sst2", "padding": "dynamic", "cache": "warm", "wall_s": speedup_times[0], "cpu_s": 1.0},
        {"task": "sst2", "padding": "max_length", "cache": "warm", "wall_s": speedup_times[1], "cpu_s": 2.0},
    ]
    return {"steps": steps, "end_to_end": jobs, "overhead": {"warm_fraction": 0.2}}


@pytest.mark.parametrize(
    ("b_v_ratio", "times", "expected"),
    [(0.6, (10.0, 30.0), [True, True, True, False]), (0.7, (10.0, 15.0), [False, True, False, False])],
)  # the decoder targets: not measured (no decoder section)
def test_targets_pass_and_fail(b_v_ratio, times, expected):
    targets = report.evaluate_targets(fake_result(b_v_ratio, times))
    assert [t["key"] for t in targets] == [t.key for t in settings.targets()]
    assert [t["pass"] for t in targets] == [*expected, None, None, None, None]
    assert targets[2]["value"] == round(times[1] / times[0], 3)


def test_every_configured_target_is_measured():
    assert [t.key for t in settings.targets()] == list(report.MEASURES)


def test_a_result_without_jobs_leaves_those_targets_unmeasured():
    result = fake_result(0.6, (1.0, 1.0)) | {"end_to_end": [], "overhead": None}
    assert [t["pass"] for t in report.evaluate_targets(result)] == [True, True, None, None, None, None, None, None]
    assert report.padding_speedups([]) == {}


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.stem)
def test_committed_results_render_as_committed(path):
    """Every committed results/bench/<machine>.json still reads, renders to its .md and scores its targets alike."""
    result = json.loads(path.read_text())
    assert report.markdown(result) == path.with_suffix(".md").read_text()
    scored = {t["key"]: t for t in report.evaluate_targets(result)}  # targets added later: not in older results
    assert [scored[t["key"]] for t in result["targets"]] == result["targets"]
    if "end_to_end" in result:
        assert report.padding_speedups(result["end_to_end"]) == {
            k: result[k] for k in ("sst2_dynamic_speedup_wall", "sst2_dynamic_speedup_cpu")
        }


def decoder_row(task: str, train_speedup: float, eval_speedup: float) -> dict:
    return {"task": task, "train_speedup": train_speedup, "eval_speedup": eval_speedup}


def test_decoder_targets_read_the_decoder_section():
    result = {"decoder": {"tasks": [decoder_row("cb", 2.6, 2.4), decoder_row("sst2", 1.7, 1.5)]}}
    scored = {t["key"]: t["pass"] for t in report.evaluate_targets(result)}
    assert scored == {"bv_step_ratio": None, "bv_memory_ratio": None, "sst2_dynamic_speedup": None,
                      "warm_overhead_fraction": None, "decoder_cb_train_speedup": True,
                      "decoder_sst2_train_speedup": True, "decoder_cb_eval_speedup": False,
                      "decoder_sst2_eval_speedup": False}  # fmt: skip


def test_write_results_replaces_both_files(tmp_path):
    result = json.loads((RESULTS / "cpu-2core-amd-epyc.json").read_text())
    for created in ("first", "second"):
        json_path, md_path, summary = report.write_results(tmp_path, result | {"created": created})
    assert json.loads(json_path.read_text())["created"] == "second"
    assert md_path.read_text() == summary and "second;" in summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpu-2core-amd-epyc.json", "cpu-2core-amd-epyc.md"]

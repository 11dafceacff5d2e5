"""make demo's comparison: read from the records it just wrote, never from the committed runs."""

from __future__ import annotations

from omegaconf import OmegaConf

from beft import demo
from tests.conftest import write_record


def test_compare_names_the_bias_that_learned_most(tmp_path, capsys):
    cfg = OmegaConf.create({"model": "minilm", "task": "sst2", "regime": "low", "seed": 0, "biases": ["v", "q", "k"],
                            "results_dir": str(tmp_path)})  # fmt: skip
    for bias, score in {"v": 0.72, "q": 0.51, "k": 0.5}.items():
        run = {"model": "minilm", "task": "sst2", "regime": "low", "bias": bias, "seed": 0, "label": f"beft-{bias}"}
        write_record(tmp_path / f"beft-{bias}", {
            "status": "completed", "run": run, "time": {"wall_s": 60.0},
            "score": {"metric": "accuracy", "split": "validation", "final": score},
            "epochs": [{"epoch": 1, "validation": {"accuracy": score}}],
            "params": {"trainable": 3458, "percent": 0.015},
        })  # fmt: skip
    assert demo.compare(cfg, since=0)
    out = capsys.readouterr().out
    assert "b_v learns most here (0.720; b_q 0.510, b_k 0.500)" in out
    assert f"b_k: {tmp_path / 'beft-k' / 'record.json'}" in out
    assert not demo.compare(OmegaConf.merge(cfg, {"biases": ["v", "o"]}), since=0)  # b_o did not run: not done

"""The bench's configs: targets with a reason in conf/bench.yaml, epochs and hyperparameters from conf/train.yaml."""

from __future__ import annotations

import pytest

from beft.bench import settings
from beft.errors import ConfigError


def test_targets_are_configured_with_a_reason():
    targets = settings.targets()
    assert all(t.what and t.why and t.op in settings.OPS for t in targets)
    assert [(t.op, t.limit) for t in targets] == [("<=", 0.62), ("<=", 0.5), (">=", 2.0), ("<=", 0.1),
                                                  (">=", 2.5), (">=", 1.6), (">=", 2.5), (">=", 1.6)]  # fmt: skip
    assert targets[0].passes(0.62) and not targets[0].passes(0.63) and targets[2].passes(2.5)


def test_a_bad_comparison_is_a_config_error(tmp_path, monkeypatch):
    conf = tmp_path / "bench.yaml"
    conf.write_text("targets:\n  x: {what: x, limit: 1, op: '<', why: y}\n")
    monkeypatch.setattr(settings, "BENCH_CONF", conf)
    settings.load.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"targets.x.op='<'; valid: \['<=', '>='\]"):
            settings.targets()
    finally:
        settings.load.cache_clear()


def test_methods_name_the_step_rows():
    assert list(settings.methods()) == ["full", "all_biases", "b_v", "b_q", "b_k"]
    assert settings.methods()["b_v"] == ("b_v", ["method=beft", "bias=v"])


def test_full_schedule_epochs_come_from_the_schedule_configs():
    """conf/schedule/encoder/<task>/low.yaml: RTE 30 epochs, SST-2 16; an override is honoured as a run would."""
    assert settings.full_schedule_epochs("rte") == 30
    assert settings.full_schedule_epochs("sst2") == 16
    assert settings.full_schedule_epochs("rte", ["trainer.args.num_train_epochs=3"]) == 3

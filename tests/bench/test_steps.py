"""Step timing: rows read from conf/, every row timed per phase, the model left frozen."""

from __future__ import annotations

import torch

from beft.bench import steps
from tests.models.tiny import tiny_bert


def test_method_setups_read_the_configs():
    """Learning rates and trainable sets come from conf/ (full: 1e-5; BEFT on RTE low: 1e-3), not from the bench."""
    model = tiny_bert()
    setups = {s.name: s for s in steps.method_setups(model, ["task=rte", "regime=low"])}
    assert list(setups) == ["full", "all_biases", "b_v", "b_q", "b_k"]
    assert setups["full"].lr == 1e-5 and setups["b_v"].lr == 1e-3 and setups["b_v"].eps == 1e-6
    assert len(setups["full"].params) == len(list(model.parameters()))
    # 2 layers x b_v + pooler bias + head weight and bias
    assert [p.numel() for p in setups["b_v"].params] == [32, 32, 32, 64, 2]


def test_step_timing_on_a_tiny_model(tiny_rows, tiny_batch):
    model, setups = tiny_rows
    before = {k: v.clone() for k, v in model.state_dict().items()}
    times = steps.time_steps(model, tiny_batch, setups, steps=3, warmup=1)
    assert set(times) == {"full", "b_v", "eval"}
    assert set(times["full"]) == {"total", "forward", "backward", "optimizer"}
    assert set(times["eval"]) == {"total", "forward"}
    assert all(len(v) == 3 and min(v) > 0 for row in times.values() for v in row.values())
    embeddings = "bert.embeddings.word_embeddings.weight"
    assert not torch.equal(model.state_dict()[embeddings], before[embeddings])  # the full row trained everything
    assert not any(p.requires_grad for p in model.parameters())  # left frozen

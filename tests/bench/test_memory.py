"""Peak memory: exact tensor accounting on a CPU, and the ordering eval < b_v < full it must show."""

from __future__ import annotations

import torch

from beft.bench import memory, report, steps


def test_tensor_memory_counts_allocations_until_freed():
    with memory.TensorMemory() as tracker:
        a = torch.zeros(1000)  # 4000 bytes
        b = a.view(10, 100)  # a view: no new storage
        c = a + 1  # 4000 more
        del c
        assert tracker.live == 4000
        a.add_(1)  # in place: nothing new
    assert tracker.peak == 8000 and tracker.live == 4000
    del a, b
    assert tracker.live == 0


def test_peak_memory_on_a_tiny_model(tiny_rows, tiny_batch):
    model, setups = tiny_rows
    times = steps.time_steps(model, tiny_batch, setups, steps=1, warmup=0)
    peaks = {s.name: memory.peak_memory(model, tiny_batch, s, steps=2 if s.train else 1) for s in setups}
    # full: gradients + two AdamW moments of every parameter (4 bytes each) at least
    n_params = sum(p.numel() for p in model.parameters())
    assert peaks["full"] >= 3 * 4 * n_params
    assert 0 < peaks["eval"] < peaks["b_v"] < peaks["full"]
    assert not any(p.requires_grad for p in model.parameters())  # left frozen
    rows = {r["name"]: r for r in report.summarise_steps(setups, times, peaks)}
    assert rows["full"]["ratio_to_full"] == 1.0 and rows["full"]["memory_ratio_to_full"] == 1.0
    assert 0 < rows["b_v"]["memory_ratio_to_full"] < 1 and rows["b_v"]["trainable"] == 32 * 3 + 64 + 2

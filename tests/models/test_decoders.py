"""Decoder targets (docs/method.md §1.3, 1.4, 2.2, 6.2): trainable biases of OPT, added biases of LLaMA (with
grouped-query attention) and GPT-J, LoRA on q/v, and the paper's parameter counts on full-size weightless skeletons."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, GPTJConfig, LlamaConfig, OPTConfig

from beft.models import methods, targets
from tests.models.tiny import HIDDEN, LAYERS, tiny_gptj, tiny_llama, tiny_opt

LLAMA_KV = 2 * HIDDEN // 4  # tiny LLaMA: 2 key/value heads of head_dim 32 / 4 = 8
LORA = {"name": "lora", "trainable": "lora", "roles": ["q", "v"], "r": 8, "alpha": 16, "dropout": 0.0, "head": True}
BEFT = {"name": "beft", "trainable": "bias", "head": True, "pooler_bias": True}
BUILDERS = {"opt": tiny_opt, "llama": tiny_llama, "gptj": tiny_gptj}
# width of each role's projection output
WIDTH = {
    "opt": {"q": HIDDEN, "k": HIDDEN, "v": HIDDEN, "o": HIDDEN},
    "llama": {"q": HIDDEN, "k": LLAMA_KV, "v": LLAMA_KV, "o": HIDDEN},
    "gptj": {"q": HIDDEN, "k": HIDDEN, "v": HIDDEN, "o": HIDDEN},
}
PREFIX = {"opt": "model.decoder.layers", "llama": "model.layers", "gptj": "transformer.h"}
MODULE = {
    "opt": {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.out_proj"},
    "llama": {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj"},
    "gptj": {"q": "attn.q_proj", "k": "attn.k_proj", "v": "attn.v_proj", "o": "attn.out_proj"},
}


def ids(batch: int = 2, length: int = 7) -> torch.Tensor:
    return torch.randint(4, 100, (batch, length), generator=torch.Generator().manual_seed(0))


def prepared(arch: str, role: str):
    """A tiny model with its role's bias trainable (added first where it has none), as beft.run.prepare does."""
    torch.manual_seed(0)
    model = BUILDERS[arch]().eval()
    added = targets.add_biases(model, [role])
    trainable = methods.apply_method(model, BEFT, {"roles": [role]})
    return model, added, trainable


@pytest.mark.parametrize("arch", ["opt", "llama", "gptj"])
@pytest.mark.parametrize("role", ["q", "k", "v"])
def test_exactly_the_role_bias_of_every_layer_trains(arch, role):
    model, added, trainable = prepared(arch, role)
    assert added == ([] if arch == "opt" else [role])  # OPT has its own biases
    assert trainable.count() == LAYERS * WIDTH[arch][role]  # OPT: layers x hidden; LLaMA GQA k/v: x kv width
    names = [f"{PREFIX[arch]}.{layer}.{MODULE[arch][role]}.bias" for layer in range(LAYERS)]
    assert targets.parameter_names(model, trainable.params) == names
    assert [n for n, p in model.named_parameters() if p.requires_grad] == names  # no head, no norm, nothing else


def test_opt_bias_and_lora_leave_no_head_on_a_decoder():
    model = tiny_opt()
    assert targets.head_parameters(model) == []  # the LM head is tied to the embeddings and stays frozen
    trainable = methods.apply_method(model, BEFT, {"roles": ["o"]})
    assert trainable.count() == LAYERS * HIDDEN  # b_o (Table 7) is out_proj.bias


@pytest.mark.parametrize("arch", ["llama", "gptj"])
@pytest.mark.parametrize("role", ["q", "k", "v"])
def test_added_bias_is_zero_and_leaves_the_output_unchanged(arch, role):
    torch.manual_seed(0)
    model = BUILDERS[arch]().eval()
    assert all(m.bias is None for m in targets.role_modules(model, role))
    x = ids()
    with torch.no_grad():
        before = model(x).logits
        targets.add_biases(model, [role])
        after = model(x).logits
    biases = targets.role_biases(model, role)
    assert all(b.dtype == torch.float32 and not b.any() and b.shape == (WIDTH[arch][role],) for b in biases)
    assert torch.equal(before, after)


def test_added_bias_follows_the_weight_dtype():
    model = tiny_llama().to(torch.float16)
    targets.add_biases(model, ["v"])
    assert {b.dtype for b in targets.role_biases(model, "v")} == {torch.float16}


@pytest.mark.parametrize("arch", ["llama", "gptj"])
@pytest.mark.parametrize("role", ["q", "k", "v"])
def test_added_bias_is_the_projection_output_shift_before_rope(arch, role):
    """The bias is the projection's own: its output moves by exactly the bias, before the heads are split and before
    rotary embeddings, and the model's output changes. Even a key bias does: rotated with its key's position it no
    longer adds a per-query constant to the attention scores, which it would after the rotation (docs/method.md §1.4,
    4.1)."""
    torch.manual_seed(0)
    model = BUILDERS[arch]().eval()
    targets.add_biases(model, [role])
    module = targets.role_modules(model, role)[1]
    outputs = []
    hook = module.register_forward_hook(lambda mod, args, out: outputs.append(out.detach().clone()))
    x = ids()
    with torch.no_grad():
        zero = model(x).logits
        module.bias.copy_(torch.randn(module.bias.shape, generator=torch.Generator().manual_seed(1)))
        shifted = model(x).logits
    hook.remove()
    assert torch.allclose(outputs[1] - outputs[0], module.bias.expand_as(outputs[0]), atol=1e-6)
    assert not torch.allclose(zero[:, 1:], shifted[:, 1:], atol=1e-4)


def test_opt_key_bias_cannot_change_the_output():
    """Without rotary embeddings b_k adds q . b_k to every score of a query: softmax ignores it (docs/method.md
    §4.1)."""
    torch.manual_seed(0)
    model = tiny_opt().eval()
    x = ids()
    with torch.no_grad():
        before = model(x).logits
        for bias in targets.role_biases(model, "k"):
            bias.add_(torch.randn(bias.shape, generator=torch.Generator().manual_seed(1)))
        assert torch.allclose(before, model(x).logits, atol=1e-5)
        for bias in targets.role_biases(model, "v"):
            bias.add_(torch.randn(bias.shape, generator=torch.Generator().manual_seed(1)))
        assert not torch.allclose(before, model(x).logits, atol=1e-4)


@pytest.mark.parametrize(("arch", "count"), [
    ("opt", 2 * LAYERS * (HIDDEN * 8 + 8 * HIDDEN)),
    ("llama", LAYERS * ((HIDDEN * 8 + 8 * HIDDEN) + (HIDDEN * 8 + 8 * LLAMA_KV))),  # q full width, v the GQA width
    ("gptj", 2 * LAYERS * (HIDDEN * 8 + 8 * HIDDEN)),
])  # fmt: skip
def test_lora_on_q_and_v_counts_and_starts_as_the_identity(arch, count):
    torch.manual_seed(0)
    model = BUILDERS[arch]().eval()
    x = ids()
    with torch.no_grad():
        before = model(x).logits
    trainable = methods.apply_method(model, LORA, {"roles": ["v"]})
    assert trainable.count() == count
    names = targets.parameter_names(model, trainable.params)
    assert len(names) == 4 * LAYERS and all(".lora_A." in n or ".lora_B." in n for n in names)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names} == {"q_proj", "v_proj"}
    assert [n for n, p in model.named_parameters() if p.requires_grad] == names
    with torch.no_grad():
        assert torch.equal(before, model(x).logits)  # B = 0


# --- the paper's parameter counts (docs/method.md §2.2, 6.2), on full-size skeletons without weights ------------------

OPT_1_3B = OPTConfig(hidden_size=2048, num_hidden_layers=24, ffn_dim=8192, num_attention_heads=32, vocab_size=50272,
                     word_embed_proj_dim=2048)  # fmt: skip
OPT_6_7B = OPTConfig(hidden_size=4096, num_hidden_layers=32, ffn_dim=16384, num_attention_heads=32, vocab_size=50272,
                     word_embed_proj_dim=4096)  # fmt: skip
LLAMA2_7B = LlamaConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, intermediate_size=11008,
                        vocab_size=32000)  # fmt: skip
DEEPSEEK_1_3B = LlamaConfig(hidden_size=2048, num_hidden_layers=24, num_attention_heads=16, intermediate_size=5504,
                            vocab_size=32256)  # fmt: skip
GPTJ_6B = GPTJConfig()  # the library's defaults are GPT-J-6B's: 28 layers, d = 4096, vocab 50400


def skeleton(config):
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


@pytest.mark.parametrize(("config", "added", "bias", "total", "permille"), [
    (OPT_1_3B, [], 49_152, 1_315_758_080, 0.0374),
    (OPT_6_7B, [], 131_072, 6_658_473_984, 0.0197),
    (LLAMA2_7B, ["v"], 131_072, 6_738_415_616, 0.0195),
    (DEEPSEEK_1_3B, ["v"], 49_152, 1_346_471_936, 0.0365),
    (GPTJ_6B, ["v"], 114_688, 6_050_882_784, 0.0190),
], ids=["opt-1.3b", "opt-6.7b", "llama-2-7b", "deepseek-coder-1.3b", "gpt-j-6b"])  # fmt: skip
def test_paper_bias_counts_on_full_size_skeletons(config, added, bias, total, permille):
    model = skeleton(config)
    pretrained_total = methods.count_parameters(model)  # the paper's denominator: before any bias is added
    assert pretrained_total == total
    assert targets.add_biases(model, ["v"]) == added
    trainable = methods.apply_method(model, BEFT, {"roles": ["v"]})
    assert trainable.count() == bias
    assert round(1000 * bias / pretrained_total, 4) == permille


@pytest.mark.parametrize(("config", "count", "permille"), [
    (OPT_1_3B, 1_572_864, 1.2),
    (OPT_6_7B, 4_194_304, 0.6),
    (LLAMA2_7B, 4_194_304, 0.6),
], ids=["opt-1.3b", "opt-6.7b", "llama-2-7b"])  # fmt: skip
def test_paper_lora_counts_on_full_size_skeletons(config, count, permille):
    model = skeleton(config)
    total = methods.count_parameters(model)
    assert methods.apply_method(model, LORA, {"roles": ["v"]}).count() == count
    assert round(1000 * count / total, 1) == permille

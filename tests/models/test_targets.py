"""Bias selection through the role map picks exactly the expected parameters on every architecture family."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from beft.models import methods, targets
from tests.models.tiny import (
    HIDDEN,
    LABELS,
    LAYERS,
    tiny_bert,
    tiny_gptj,
    tiny_llama,
    tiny_opt,
    tiny_roberta,
    tiny_xlmr,
    tiny_xlmr_choice,
)

BEFT = {"trainable": "bias", "head": True, "pooler_bias": True}
BERT_MODULE = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "o": "attention.output.dense",
}
OPT_MODULE = {
    "q": "self_attn.q_proj",
    "k": "self_attn.k_proj",
    "v": "self_attn.v_proj",
    "o": "self_attn.out_proj",
}
BERT_HEAD = ["bert.pooler.dense.bias", "classifier.weight", "classifier.bias"]
ROBERTA_HEAD = [
    "classifier.dense.weight",
    "classifier.dense.bias",
    "classifier.out_proj.weight",
    "classifier.out_proj.bias",
]

XLMR_CHOICE_HEAD = ["roberta.pooler.dense.weight", "roberta.pooler.dense.bias", "classifier.weight", "classifier.bias"]


def trainable_names(model) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


@pytest.mark.parametrize("role", ["q", "k", "v", "o"])
@pytest.mark.parametrize(
    ("factory", "prefix", "head", "head_count"),
    [
        (tiny_bert, "bert", BERT_HEAD, HIDDEN + HIDDEN * LABELS + LABELS),
        (tiny_roberta, "roberta", ROBERTA_HEAD, HIDDEN * HIDDEN + HIDDEN + HIDDEN * LABELS + LABELS),
        (tiny_xlmr, "roberta", ROBERTA_HEAD, HIDDEN * HIDDEN + HIDDEN + HIDDEN * LABELS + LABELS),
        (tiny_xlmr_choice, "roberta", XLMR_CHOICE_HEAD, HIDDEN * HIDDEN + HIDDEN + HIDDEN + 1),  # new pooler + 1 logit
    ],
)
def test_encoder_bias_target_selects_exact_names_and_count(factory, prefix, head, head_count, role):
    model = factory()
    selected = methods.apply_method(model, BEFT, {"roles": [role]})
    expected = [f"{prefix}.encoder.layer.{i}.{BERT_MODULE[role]}.bias" for i in range(LAYERS)] + head
    assert sorted(trainable_names(model)) == sorted(expected)
    assert selected.count() == LAYERS * HIDDEN + head_count


@pytest.mark.parametrize("role", ["q", "k", "v", "o"])
def test_opt_bias_target_has_no_head(role):
    model = tiny_opt()
    methods.apply_method(model, BEFT, {"roles": [role]})
    assert trainable_names(model) == [f"model.decoder.layers.{i}.{OPT_MODULE[role]}.bias" for i in range(LAYERS)]


def test_bert_output_dense_is_not_confused_with_attention_output_dense():
    """The substring trap of docs/method.md §1.1: role m3 is output.dense, role o is attention.output.dense."""
    model = tiny_bert()
    o = targets.parameter_names(model, targets.role_biases(model, "o"))
    m3 = targets.parameter_names(model, targets.role_biases(model, "m3"))
    assert o == [f"bert.encoder.layer.{i}.attention.output.dense.bias" for i in range(LAYERS)]
    assert m3 == [f"bert.encoder.layer.{i}.output.dense.bias" for i in range(LAYERS)]


@pytest.mark.parametrize("factory", [tiny_llama, tiny_gptj])
def test_bias_free_attention_raises_clear_error(factory):
    with pytest.raises(targets.MissingBiasError, match="has no v bias in its attention layers; add a zero-initialised "
                       "one with model.add_bias=true"):  # fmt: skip
        methods.apply_method(factory(), BEFT, {"roles": ["v"]})


def test_all_biases_is_every_bias_plus_head():
    model = tiny_bert()
    methods.apply_method(model, {"trainable": "all_biases", "head": True}, {})
    names = trainable_names(model)
    assert set(names) == {n for n, _ in model.named_parameters() if n.endswith(".bias")} | {"classifier.weight"}


def test_full_and_frozen():
    model = tiny_bert()
    assert methods.apply_method(model, {"trainable": "all"}, {}).count() == methods.count_parameters(model)
    methods.apply_method(model, {"trainable": "head", "head": True, "pooler_bias": False}, {})
    assert trainable_names(model) == ["classifier.weight", "classifier.bias"]


def test_unknown_architecture_names_supported_ones():
    model = torch.nn.Linear(2, 2)
    model.config = type("C", (), {"model_type": "mystery"})()
    with pytest.raises(targets.UnsupportedArchitectureError, match="mystery.*bert"):
        targets.architecture_of(model)


def test_rand_uniform_masks_gradients_before_the_step():
    model = tiny_bert()
    cfg = {"trainable": "random", "head": True, "pooler_bias": False, "budget_roles": ["v"], "budget": None}
    selected = methods.apply_method(model, cfg, {}, seed=0)
    budget = LAYERS * HIDDEN
    masked = sum(int(m.sum()) for m in selected.masks.values())
    assert 0 < masked <= budget
    assert selected.count() == masked + HIDDEN * LABELS + LABELS
    out = model(input_ids=torch.randint(0, 100, (2, 5)), labels=torch.tensor([0, 1]))
    out.loss.backward()
    for p in selected.params:
        if id(p) in selected.masks:
            assert torch.all(p.grad[~selected.masks[id(p)]] == 0)
    # the draw is reproducible from the seed and differs across seeds
    again = methods.apply_method(tiny_bert(), cfg, {}, seed=0)
    other = methods.apply_method(tiny_bert(), cfg, {}, seed=1)
    assert [m.sum().item() for m in again.masks.values()] == [m.sum().item() for m in selected.masks.values()]
    assert any(not torch.equal(a, b) for a, b in zip(selected.masks.values(), other.masks.values(), strict=True))


def test_bert_base_counts_match_the_paper():
    """docs/method.md §2.1 / docs/experiments.md §9: bert-base-cased with a 2-label head."""
    model = BertForSequenceClassification(BertConfig(vocab_size=28996, num_labels=2))
    assert methods.count_parameters(model) == 108_311_810
    for role in "vqk":
        assert methods.apply_method(model, BEFT, {"roles": [role]}).count() == 11_522
    assert methods.apply_method(model, {"trainable": "all_biases", "head": True}, {}).count() == 104_450

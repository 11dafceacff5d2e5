"""PEFT on the bias vector (docs/method.md §5): every variant, on encoders and decoders, at init, under gradients, in
counts, in the method configs and end to end on the real MiniLM with real SST-2."""

from __future__ import annotations

import copy

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from beft.models import balora, methods, reparam, targets
from tests.conftest import CONF_DIR, run_config
from tests.models.test_targets import BERT_HEAD, BERT_MODULE, OPT_MODULE
from tests.models.tiny import HIDDEN, LAYERS, tiny_bert, tiny_llama, tiny_opt

VARIANTS = ["lora", "vera", "vera1d", "dora", "pissa", "balora"]
UNCHANGED = ["lora", "dora", "pissa", "balora"]  # the paper's formula leaves b unchanged at init
TINY = {"m": 4, "n": 8, "r": 2}  # HIDDEN = 32 = 4 * 8
FACTORS = {  # trainable factors per layer, and those with a non-zero gradient at init
    "lora": (("A", "B"), ("B",)),  # B = 0 at init, so dL/dA = B^T (...) = 0
    "vera": (("lambda_b", "lambda_d"), ("lambda_b", "lambda_d")),
    "vera1d": (("s",), ("s",)),
    "dora": (("A", "B", "magnitude"), ("B", "magnitude")),
    "pissa": (("A", "B"), ("A", "B")),
    "balora": (("A", "B"), ("A", "B")),
}
MODELS = {  # factory, layer prefix, role -> module path, head names
    "bert": (tiny_bert, "bert.encoder.layer.{}.", BERT_MODULE, BERT_HEAD),
    "opt": (tiny_opt, "model.decoder.layers.{}.", OPT_MODULE, []),
}
BALORA_WEIGHTS = {"consistency": 1e-4, "diversity": 3e-4, "svd": 1e-4, "svd_k": 3}


def method_cfg(variant: str, shape: dict = TINY, **extra) -> dict:
    cfg = {"trainable": "bias_reparam", "variant": variant, "alpha": 1, "reshape": shape, "head": True}
    return {"pooler_bias": True, **cfg, **extra}


def pretrained_like(factory, seed: int = 0) -> nn.Module:
    """A tiny model with non-zero biases, as every pre-trained checkpoint has (random-init biases are zero), and no
    dropout, so that two forward passes agree."""
    torch.manual_seed(seed)
    model = factory()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.5)
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    return model.eval()


def logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


IDS = torch.randint(3, 100, (4, 9), generator=torch.Generator().manual_seed(1))


# --- at initialisation ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["q", "k", "v", "o"])
@pytest.mark.parametrize("arch", list(MODELS))
@pytest.mark.parametrize(
    ("variant", "extra"), [(v, {}) for v in UNCHANGED] + [("vera", {"options": {"init": "standard"}})]
)
def test_init_leaves_outputs_unchanged(variant, extra, arch, role):
    model = pretrained_like(MODELS[arch][0])
    before = logits(model, IDS)
    biases = [b.detach().clone() for b in targets.role_biases(model, role)]
    methods.apply_method(model, method_cfg(variant, **extra), {"roles": [role]})
    assert all(parametrize_ok(m) for m in targets.role_modules(model, role))
    for module, b0 in zip(targets.role_modules(model, role), biases, strict=True):
        assert module.parametrizations.bias[0].unchanged_at_init
        torch.testing.assert_close(module.bias, b0, rtol=0, atol=1e-6)
    torch.testing.assert_close(logits(model, IDS), before, rtol=0, atol=1e-5)


def parametrize_ok(module: nn.Module) -> bool:
    return torch.nn.utils.parametrize.is_parametrized(module, "bias")


def reference_shift(variant: str, layer: reparam.BiasReparam) -> torch.Tensor:
    """The documented initial change of the bias, written as the reference code computes it (docs/method.md
    §5.2/5.3)."""
    scale = 1 / TINY["r"]  # alpha / r
    if variant == "vera1d":
        return torch.full((HIDDEN,), scale)  # s = 1
    left, right = layer.lambda_d[:, None] * layer.A, layer.lambda_b[:, None] * layer.B  # (Λ_d A), (Λ_b B)
    return scale * (left.T @ right.T).flatten()  # flatten_row_major((Λ_d A)^T (Λ_b B)^T)


@pytest.mark.parametrize("role", ["q", "v", "o"])
@pytest.mark.parametrize("arch", list(MODELS))
@pytest.mark.parametrize("variant", ["vera", "vera1d"])
def test_init_shifts_the_bias_by_the_documented_amount(variant, arch, role):
    """The documented exceptions: the reference initialises VeRA's scaling vectors randomly and VeRA-1d's s to 1."""
    model = pretrained_like(MODELS[arch][0])
    plain = copy.deepcopy(model)
    methods.apply_method(model, method_cfg(variant), {"roles": [role]})
    with torch.no_grad():
        for module, target in zip(targets.role_modules(model, role), targets.role_modules(plain, role), strict=True):
            layer = module.parametrizations.bias[0]
            assert not layer.unchanged_at_init
            shift = reference_shift(variant, layer)
            assert shift.abs().max() > 0
            torch.testing.assert_close(module.bias, target.bias + shift, rtol=0, atol=1e-6)
            target.bias.copy_(module.bias)  # the plain model with the documented shifted bias ...
    torch.testing.assert_close(logits(model, IDS), logits(plain, IDS), rtol=0, atol=1e-5)  # ... computes the same


# --- gradients --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", list(MODELS))
@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_only_the_factors_and_the_head(variant, arch):
    factory, prefix, modules, head = MODELS[arch]
    model = pretrained_like(factory)
    extra = {"regularisers": BALORA_WEIGHTS} if variant == "balora" and arch == "bert" else {}
    methods.apply_method(model, method_cfg(variant, **extra), {"roles": ["v"]})
    factors, moving = FACTORS[variant]
    owner = [f"{prefix.format(i)}{modules['v']}.parametrizations.bias" for i in range(LAYERS)]
    expected = {f"{o}.0.{f}" for o in owner for f in factors} | set(head)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == expected

    model.train()
    labels = torch.tensor([0, 1, 1, 0]) if arch == "bert" else IDS
    model(input_ids=IDS, labels=labels).loss.backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == (name in expected), name
    for o in owner:
        assert model.get_parameter(f"{o}.original").grad is None  # the pre-trained bias stays frozen
        for f in moving:
            assert model.get_parameter(f"{o}.0.{f}").grad.abs().sum() > 0, f"{o}.0.{f}"


# --- counts: the paper's Params / Saving ------------------------------------------------------------------------------

BERT_BASE_HEAD = 768 + 768 * 2 + 2  # pooler bias + 2-label classifier
COUNTS = [  # variant, trainable per layer, Params (% of d = 768), the paper's value (Tables 4, 13)
    ("lora", 448, 58.3, 58.3),
    ("vera", 32, 4.2, 4.2),
    ("vera1d", 1, 0.13, 0.13),  # Table 13: 1.3 permille
    ("dora", 449, 58.5, 59.4),  # the paper prints 59.4 % (456 / 768); the formula gives 449 (docs/method.md §5.4)
    ("pissa", 448, 58.3, None),
    ("balora", 448, 58.3, None),
]


@pytest.fixture(scope="module")
def bert_base() -> nn.Module:
    """BERT-base-cased's architecture (108,311,810 parameters with a 2-label head), randomly initialised."""
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=28996, num_labels=2))
    with torch.no_grad():
        for m in targets.role_modules(model, "v"):
            m.bias.normal_(0.0, 0.5)
    return model


@pytest.mark.parametrize(("variant", "per_layer", "params", "paper"), COUNTS)
def test_bert_base_counts_match_the_paper(bert_base, variant, per_layer, params, paper):
    total = methods.count_parameters(bert_base)
    assert total == 108_311_810
    try:
        selected = methods.apply_method(bert_base, method_cfg(variant, {"m": 24, "n": 32, "r": 8}), {"roles": ["v"]})
        info = selected.info["bias_peft"]
        assert selected.count() == 12 * per_layer + BERT_BASE_HEAD
        assert (info["per_layer"], info["bias_dim"], info["layers"]) == (per_layer, 768, 12)
        assert round(info["relative_percent"], 2 if per_layer == 1 else 1) == params
        assert round(info["saving_percent"] + info["relative_percent"], 9) == 100
        if paper is not None and variant != "dora":
            assert round(info["relative_percent"], 2 if per_layer == 1 else 1) == paper
        assert methods.count_parameters(bert_base) == total + 12 * per_layer  # frozen buffers are not parameters
    finally:
        reparam.remove(bert_base)
    assert methods.count_parameters(bert_base) == total and not reparam.reparametrized_modules(bert_base)


@pytest.mark.parametrize(
    ("model", "d", "saving"),
    [("bert_base", 768, 42), ("roberta_base", 768, 42), ("bert_large", 1024, 50), ("minilm", 384, 17)],
)
def test_model_reshapes_give_the_table14_savings(model, d, saving):
    """Table 14 "Params Saving" = 1 - (m r + r n) / d from each model config's (m, n, r); MiniLM's is our choice."""
    shape = reparam.Reshape(**OmegaConf.load(CONF_DIR / "model" / f"{model}.yaml").bias_reshape)
    layer = nn.Linear(d, d)
    lora = reparam.reparametrize_module(layer, "lora", shape)
    per_layer = sum(p.numel() for p in lora.parameters())
    assert per_layer == shape.m * shape.r + shape.r * shape.n
    assert round(reparam.paper_params(per_layer, d)["saving_percent"]) == saving


# --- configs ----------------------------------------------------------------------------------------------------------

NEW_METHODS = [f"bias_{v}" for v in VARIANTS]


@pytest.mark.parametrize("bias", ["v", "q", "k", "o"])
@pytest.mark.parametrize("name", NEW_METHODS)
def test_method_configs_compose_with_the_paper_schedule(compose_cfg, name, bias):
    cfg = compose_cfg("model=bert_base", "task=sst2", "regime=low", f"method={name}", f"bias={bias}")
    assert cfg.method.trainable == "bias_reparam" and cfg.method.variant == name.removeprefix("bias_")
    assert cfg.method.label == f"{name}-{bias}" and cfg.run_name == f"bert_base/sst2/low/{name}-{bias}/seed=0"
    assert OmegaConf.to_container(cfg.method.reshape) == {"m": 24, "n": 32, "r": 8}
    assert cfg.method.alpha == 1 and cfg.method.head and cfg.method.pooler_bias
    assert cfg.trainer.args.num_train_epochs == 50 and cfg.trainer.args.learning_rate == 4e-4
    assert cfg.data.num_train == 1000 and cfg.bias.roles == [bias]


def test_method_config_overrides_model_schedule_and_yields_to_the_command_line(compose_cfg):
    roberta = compose_cfg("model=roberta_base", "task=sst2", "method=bias_lora")  # schedule_model: 30 epochs
    assert roberta.trainer.args.num_train_epochs == 50
    assert OmegaConf.to_container(roberta.method.reshape) == {"m": 32, "n": 24, "r": 8}
    short = compose_cfg("task=sst2", "method=bias_lora", "trainer.args.num_train_epochs=1")
    assert short.trainer.args.num_train_epochs == 1
    assert OmegaConf.to_container(short.method.reshape) == {"m": 16, "n": 24, "r": 8}  # minilm (our choice)
    balora = compose_cfg("method=bias_balora")
    assert dict(balora.method.regularisers) == BALORA_WEIGHTS


# --- BA-LoRA's regularisers -------------------------------------------------------------------------------------------


def test_balora_terms_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    terms = balora.terms(x, x.clone(), svd_k=1)
    assert terms["consistency"] == 0
    # batch covariance: centred rows (2/3, -1/3), (-1/3, 2/3), (-1/3, -1/3) -> off-diagonal -1/6; 2 * (1/36) / 2 labels
    torch.testing.assert_close(terms["diversity"], torch.tensor(1 / 36))
    torch.testing.assert_close(terms["svd"], torch.tensor(-0.5))  # singular values (1, 1): top-1 share 1/2
    flipped = balora.terms(x, -x, svd_k=1)["consistency"]
    torch.testing.assert_close(flipped, torch.tensor(4 * 2 / 6))  # rows (1,0) vs (-1,0): squared error 4, mean of 6


def test_balora_regularisers_join_the_training_loss_only():
    model = pretrained_like(tiny_bert)
    plain = copy.deepcopy(model)
    methods.apply_method(model, method_cfg("balora", regularisers=BALORA_WEIGHTS), {"roles": ["v"]})
    labels = torch.tensor([0, 1, 1, 0])
    with torch.no_grad():  # move the factors, so that the consistency term is not zero
        for m in targets.role_modules(model, "v"):
            m.parametrizations.bias[0].B.mul_(1.5)
    out = model.train()(input_ids=IDS, labels=labels)
    assert model.training and all(m.training for m in model.modules())  # the eval-mode reference pass is undone
    assert not any(m.bypass for m in model.modules() if isinstance(m, reparam.BiasReparam))
    task = model.eval()(input_ids=IDS, labels=labels)
    reference = plain(input_ids=IDS).logits  # the pre-trained biases, with the same head
    terms = balora.terms(task.logits, reference, svd_k=3)
    assert terms["consistency"] > 0 and terms["diversity"] > 0
    expected = task.loss + sum(BALORA_WEIGHTS[k] * v for k, v in terms.items())
    torch.testing.assert_close(out.loss, expected)
    with torch.no_grad():
        model.train()
        assert torch.equal(model(input_ids=IDS, labels=labels).loss, task.loss)  # no gradients: no regulariser


# --- removing, errors, b_o --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bake", [False, True])
def test_remove_restores_or_bakes_plain_biases(bake):
    model = pretrained_like(tiny_bert)
    b0 = [b.detach().clone() for b in targets.role_biases(model, "v")]
    methods.apply_method(model, method_cfg("vera1d"), {"roles": ["v"]})
    effective = [m.bias.detach().clone() for m in targets.role_modules(model, "v")]
    reparam.remove(model, bake=bake)
    for b, want in zip(targets.role_biases(model, "v"), effective if bake else b0, strict=True):
        assert isinstance(b, nn.Parameter) and torch.equal(b.detach(), want)


def test_clear_errors():
    with pytest.raises(reparam.ReparamError, match="does not fit a bias of dimension 32"):
        methods.apply_method(tiny_bert(), method_cfg("lora", {"m": 4, "n": 4, "r": 2}), {"roles": ["v"]})
    with pytest.raises(reparam.ReparamError, match="rank r=5"):
        methods.apply_method(tiny_bert(), method_cfg("lora", {"m": 4, "n": 8, "r": 5}), {"roles": ["v"]})
    with pytest.raises(reparam.ReparamError, match="bias=all"):
        methods.apply_method(tiny_bert(), method_cfg("lora"), {"roles": "all"})
    with pytest.raises(reparam.ReparamError, match="bias_reshape"):
        methods.apply_method(tiny_bert(), method_cfg("lora", None), {"roles": ["v"]})
    with pytest.raises(reparam.ReparamError, match="unknown"):
        methods.apply_method(tiny_bert(), method_cfg("lokr"), {"roles": ["v"]})
    with pytest.raises(reparam.ReparamError, match="non-zero pre-trained bias"):  # random-init biases are zero
        methods.apply_method(tiny_bert(), method_cfg("dora"), {"roles": ["v"]})
    with pytest.raises(reparam.ReparamError, match="sequence classification"):  # BA-LoRA's NLU regularisers
        methods.apply_method(
            pretrained_like(tiny_opt), method_cfg("balora", regularisers=BALORA_WEIGHTS), {"roles": ["v"]}
        )
    with pytest.raises(targets.MissingBiasError, match="has no v bias"):
        methods.apply_method(tiny_llama(), method_cfg("lora"), {"roles": ["v"]})


@pytest.mark.parametrize("arch", list(MODELS))
def test_bv_shift_equals_a_bo_shift_through_the_output_projection(arch):
    """docs/method.md §4.4 (the reason for Table 7's b_v vs b_o): adding delta to b_v adds W_o delta to b_o."""
    model = pretrained_like(MODELS[arch][0])
    moved = copy.deepcopy(model)
    delta = torch.randn(HIDDEN, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for v, o in zip(targets.role_modules(model, "v"), targets.role_modules(moved, "o"), strict=True):
            v.bias += delta
            o.bias += o.weight @ delta
    torch.testing.assert_close(logits(model, IDS), logits(moved, IDS), rtol=0, atol=1e-4)


# --- end to end: the real MiniLM on a real SST-2 subset ---------------------------------------------------------------

MINILM_HEAD = 384 + 384 * 2 + 2  # pooler bias + 2-label classifier
MINILM_PER_LAYER = {"lora": 320, "vera": 24, "vera1d": 1, "dora": 321, "pissa": 320, "balora": 320}


@pytest.fixture(scope="module")
def sst2_cache(tmp_path_factory):
    """One tokenisation of SST-2 for all end-to-end runs of this module."""
    return tmp_path_factory.mktemp("sst2-cache")


@pytest.mark.slow
@pytest.mark.parametrize(("variant", "bias"), [(v, "o" if v == "vera1d" else "v") for v in VARIANTS])
def test_each_variant_trains_minilm_on_sst2(compose_cfg, data_dir, sst2_cache, variant, bias):
    cfg = compose_cfg(
        "model=minilm",
        "task=sst2",
        "regime=low",
        f"method=bias_{variant}",
        f"bias={bias}",
        "data.num_train=16",
        "trainer.args.num_train_epochs=1",
        "trainer.args.disable_tqdm=true",
        f"data.dir={data_dir}",
        f"data.cache_dir={sst2_cache}",
    )
    record = run_config(cfg)
    assert record["status"] == "completed"
    assert record["run"]["method"] == f"bias_{variant}" and record["run"]["bias"] == bias
    per_layer = MINILM_PER_LAYER[variant]
    info = record["params"]["bias_peft"]
    assert record["params"]["trainable"] == 6 * per_layer + MINILM_HEAD
    assert (info["variant"], info["per_layer"], info["bias_dim"], info["layers"]) == (variant, per_layer, 384, 6)
    module = BERT_MODULE[bias]
    factor = FACTORS[variant][0][0]
    assert f"bert.encoder.layer.5.{module}.parametrizations.bias.0.{factor}" in record["params"]["trainable_tensors"]
    assert [e["epoch"] for e in record["epochs"]] == [1] and 0 <= record["score"]["final"] <= 1
    assert record["data"]["num_train"] == 16 and record["data"]["eval_rows"] == {"validation": 872}
    assert [(c["role"], c["layer"]) for c in record["bias_change"]] == [(bias, i) for i in range(6)]
    assert all(c["l1"] > 0 for c in record["bias_change"])  # the effective biases moved
    assert (
        record["adapter"]["path"] is None
    )  # a re-parametrised bias has no BEFT adapter (yet): the run still completes

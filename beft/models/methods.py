"""Training methods: which parameters a run trains (docs/method.md §2 and 6.1).

Each method is a small function that marks parameters trainable and returns what it trained. They all start from a
frozen model and select parameters through the role map (``targets``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from peft import LoraConfig, PrefixTuningConfig, VeraConfig, get_peft_model, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from peft.tuners.vera import VeraLayer, VeraModel
from torch import nn

from beft.errors import ConfigError
from beft.models import positions, reparam, targets


@dataclass
class TrainableSet:
    """What a method made trainable. ``masks`` holds entry masks of partially trained tensors (rand_uniform);
    ``info`` is extra, JSON-able detail for the record's ``params`` (bias PEFT: variant, shape, the paper's Params);
    ``wrapper`` is the module to train and evaluate when the method wraps the model (prefix tuning's PeftModel)."""

    params: list[nn.Parameter]
    masks: dict[int, torch.Tensor] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    wrapper: nn.Module | None = None

    def count(self) -> int:
        return sum(int(self.masks[id(p)].sum()) if id(p) in self.masks else p.numel() for p in self.params)


MethodFn = Callable[[nn.Module, dict, dict, int], TrainableSet]
METHODS: dict[str, MethodFn] = {}


def method(name: str) -> Callable[[MethodFn], MethodFn]:
    def register(fn: MethodFn) -> MethodFn:
        METHODS[name] = fn
        return fn

    return register


def _with_head(model: nn.Module, params: list[nn.Parameter], method_cfg: dict) -> list[nn.Parameter]:
    extra: list[nn.Parameter] = []
    if method_cfg.get("pooler_bias") and (pb := targets.pooler_bias(model)) is not None:
        extra.append(pb)
    if method_cfg.get("head", True):
        extra.extend(targets.head_parameters(model))
    return _unique(params + extra)


def _unique(params: list[nn.Parameter]) -> list[nn.Parameter]:
    seen: dict[int, nn.Parameter] = {}
    for p in params:
        seen.setdefault(id(p), p)
    return list(seen.values())


def bias_params(model: nn.Module, roles: list[str] | str) -> list[nn.Parameter]:
    """The bias parameters of ``roles`` in every layer; ``"all"`` = every bias of the model."""
    if roles == "all":
        return targets.all_biases(model)
    return [b for role in roles for b in targets.role_biases(model, role)]


@method("bias")
def _bias(model: nn.Module, method_cfg: dict, bias_cfg: dict, seed: int) -> TrainableSet:
    return TrainableSet(_with_head(model, bias_params(model, bias_cfg["roles"]), method_cfg))


@method("all_biases")
def _all_biases(model: nn.Module, method_cfg: dict, bias_cfg: dict, seed: int) -> TrainableSet:
    return TrainableSet(_with_head(model, targets.all_biases(model), method_cfg))


@method("bias_reparam")
def _bias_reparam(model: nn.Module, method_cfg: dict, bias_cfg: dict, seed: int) -> TrainableSet:
    """PEFT on the bias vector (docs/method.md §5): the bias of ``bias.roles`` in every layer is re-parametrised by
    ``method.variant`` (beft.models.reparam); its factors train, the pre-trained bias stays frozen."""
    variants, info = reparam.from_config(model, method_cfg, bias_cfg["roles"], seed)
    factors = [p for v in variants for p in v.parameters()]
    return TrainableSet(_with_head(model, factors, method_cfg), info={"bias_peft": info})


@method("all")
def _all(model: nn.Module, method_cfg: dict, bias_cfg: dict, seed: int) -> TrainableSet:
    return TrainableSet(list(model.parameters()))


@method("none")
def _none(model: nn.Module, method_cfg: dict, bias_cfg: dict, seed: int) -> TrainableSet:
    """Nothing trains: zero-shot and in-context learning (docs/method.md §6.2) only evaluate the pre-trained model."""
    return TrainableSet([])


@method("lora")
def _lora(model: nn.Module, method_cfg: dict, bias_cfg: dict, seed: int) -> TrainableSet:
    """LoRA on the weights of the ``method.roles`` projections of every layer (docs/method.md §6.2: q and v, r = 8,
    alpha = 16, no dropout; A Kaiming-uniform, B = 0, so the model is unchanged at initialisation), injected in place by
    peft. The projections are named through the role map; the pre-trained weights and biases stay frozen.
    ``method.use_dora: true`` is DoRA (Table 15, conf/method/dora.yaml): peft adds a trainable magnitude vector per
    projection, initialised to the column norms of W, so the model is still unchanged at initialisation."""
    by_module = {id(m): name for name, m in model.named_modules()}
    names = [by_module[id(m)] for role in method_cfg["roles"] for m in targets.role_modules(model, role)]
    config = LoraConfig(
        r=method_cfg["r"],
        lora_alpha=method_cfg["alpha"],
        lora_dropout=method_cfg.get("dropout", 0.0),
        target_modules=names,
        bias="none",
        use_dora=bool(method_cfg.get("use_dora", False)),
    )
    inject_adapter_in_model(config, model)
    factors = [p for m in model.modules() if isinstance(m, LoraLayer) for p in (*m.lora_A.parameters(),
               *m.lora_B.parameters(), *m.lora_magnitude_vector.parameters())]  # fmt: skip
    return TrainableSet(_with_head(model, factors, method_cfg))


@method("vera")
def _vera(model: nn.Module, method_cfg: dict, bias_cfg: dict, seed: int) -> TrainableSet:
    """VeRA on the weights of the ``method.roles`` projections (Table 15; docs/method.md §6.2: rank 8 on q and v):
    frozen random A, B shared by all layers (drawn from ``method.projection_prng_key``), trainable vectors lambda_b
    (out_features, zero at init, so the model is unchanged) and lambda_d (r, ``method.d_initial``).
    peft's ``inject_adapter_in_model`` refuses VeRA (A and B live on the tuner), so ``VeraModel`` injects it in place;
    every VeRA layer holds the shared A, B as a sub-module, so the model runs without the tuner object."""
    by_module = {id(m): name for name, m in model.named_modules()}
    names = [by_module[id(m)] for role in method_cfg["roles"] for m in targets.role_modules(model, role)]
    config = VeraConfig(
        r=method_cfg["r"],
        target_modules=names,
        vera_dropout=method_cfg.get("dropout", 0.0),
        d_initial=method_cfg.get("d_initial", 0.1),
        projection_prng_key=method_cfg.get("projection_prng_key", 0),
        bias="none",
    )
    VeraModel(model, config, "default")
    factors = [p for m in model.modules() if isinstance(m, VeraLayer) for p in (*m.vera_lambda_b.parameters(),
               *m.vera_lambda_d.parameters())]  # fmt: skip
    return TrainableSet(_with_head(model, factors, method_cfg))


@method("prefix")
def _prefix(model: nn.Module, method_cfg: dict, bias_cfg: dict, seed: int) -> TrainableSet:
    """Prefix tuning (docs/method.md §6.2): ``num_virtual_tokens`` trainable key and value vectors per layer, prepended
    to every attention layer's keys and values and always attended; no re-parameterisation MLP. They start as the keys
    and values the model itself computes for that many random vocabulary tokens (uniform, drawn with the seed), as
    the reference does. Built on peft's PrefixTuning, which wraps the model (``TrainableSet.wrapper``); the prompt's
    tokens sit at positions 0, 1, ... as in the reference unless ``positions: after_prefix`` (models/positions.py)."""
    n = int(method_cfg["num_virtual_tokens"])
    mode = method_cfg.get("positions", "from_zero")
    if mode not in positions.POSITION_MODES:
        raise ConfigError(f"method.positions={mode!r} is not valid; choose one of {list(positions.POSITION_MODES)}")
    device = next(model.parameters()).device
    tokens = torch.randint(model.config.vocab_size, (1, n), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        cache = model(input_ids=tokens.to(device), use_cache=True).past_key_values
        kv = torch.stack([torch.stack([layer.keys[0], layer.values[0]]) for layer in cache.layers])  # L, 2, H, P, D
    wrapper = get_peft_model(model, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=n))
    embedding = wrapper.prompt_encoder[wrapper.active_adapter].embedding
    with torch.no_grad():  # peft's layout: row p = (layer, key|value, head, dim) flattened
        embedding.weight.copy_(kv.permute(3, 0, 1, 2, 4).reshape(n, -1).to(embedding.weight.dtype))
    if mode == "from_zero":
        positions.start_real_tokens_at_zero(model, n)
    return TrainableSet(list(embedding.parameters()), wrapper=wrapper)


@method("head")
def _head(model: nn.Module, method_cfg: dict, bias_cfg: dict, seed: int) -> TrainableSet:
    return TrainableSet(_with_head(model, [], method_cfg))


@method("random")
def _random(model: nn.Module, method_cfg: dict, bias_cfg: dict, seed: int) -> TrainableSet:
    """Rand uniform (docs/method.md §6.1): per encoder tensor, floor(numel * K / total) entries drawn with replacement.

    Masked-out entries get zero gradient through a hook that runs during backward, i.e. before gradient clipping,
    as in the reference; with weight decay 0 AdamW then leaves them unchanged.
    """
    budget = method_cfg.get("budget")
    if budget is None:
        budget = sum(p.numel() for p in bias_params(model, list(method_cfg["budget_roles"])))
    encoder = targets.encoder_parameters(model)
    total = sum(p.numel() for p in encoder)
    generator = torch.Generator().manual_seed(seed)
    masks: dict[int, torch.Tensor] = {}
    for p in encoder:
        k = p.numel() * int(budget) // total
        if k == 0:
            continue
        mask = torch.zeros(p.numel(), dtype=torch.bool)
        mask[torch.randint(p.numel(), (k,), generator=generator)] = True
        masks[id(p)] = mask.view_as(p)
    params = [p for p in encoder if id(p) in masks]
    return TrainableSet(_with_head(model, params, method_cfg), masks)


def apply_method(model: nn.Module, method_cfg: dict, bias_cfg: dict, seed: int = 0) -> TrainableSet:
    """Freeze ``model``, then make trainable what the method selects."""
    kind = method_cfg["trainable"]
    if kind not in METHODS:
        raise ValueError(f"method.trainable={kind!r} is not a known selection; valid: {sorted(METHODS)}")
    for p in model.parameters():
        p.requires_grad_(False)
    selected = METHODS[kind](model, method_cfg, bias_cfg, seed)
    for p in selected.params:
        p.requires_grad_(True)
        if id(p) in selected.masks:
            keep = selected.masks[id(p)].to(p.device, p.dtype)
            p.register_hook(lambda grad, keep=keep: grad * keep)
    return selected


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

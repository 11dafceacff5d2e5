"""The role map: which module of each architecture is the query/key/value/output projection.

Everything that selects bias parameters (methods, importance scores, parameter counts) goes through this map, so
parameter names are never guessed from substrings (``output.dense.bias`` is a substring of
``attention.output.dense.bias`` in BERT, docs/method.md §1.1). Supporting a new architecture is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from beft.errors import BeftError

ATTENTION_ROLES = ("q", "k", "v", "o")


@dataclass(frozen=True)
class Architecture:
    """Where the parts of one architecture family live.

    ``layers`` is the path from the base model (``model.base_model``) to the list of Transformer layers;
    ``roles`` maps a role to a module path inside one layer; ``head`` lists task-head modules of the top-level model;
    ``pooler`` is the pooler's dense layer (path from the base model), if the family has one.
    """

    layers: str
    roles: dict[str, str]
    head: tuple[str, ...] = ()
    pooler: str | None = None
    layer_roles: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layer_roles", tuple(self.roles))


_BERT_ROLES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "o": "attention.output.dense",  # "m1" in the paper's heat-maps
    "ln1": "attention.output.LayerNorm",
    "m2": "intermediate.dense",
    "m3": "output.dense",
    "ln2": "output.LayerNorm",
}

ARCHITECTURES: dict[str, Architecture] = {
    "bert": Architecture("encoder.layer", _BERT_ROLES, head=("classifier",), pooler="pooler.dense"),
    # RoBERTa's multiple-choice head scores the pooled output, and the pre-trained checkpoints have no pooler: it is
    # new, so it trains with the head (the classification head has no pooler)
    "roberta": Architecture("encoder.layer", _BERT_ROLES, head=("classifier", "roberta.pooler")),
    "xlm-roberta": Architecture("encoder.layer", _BERT_ROLES, head=("classifier", "roberta.pooler")),
    "opt": Architecture(
        "decoder.layers",
        {
            "q": "self_attn.q_proj",
            "k": "self_attn.k_proj",
            "v": "self_attn.v_proj",
            "o": "self_attn.out_proj",
            "ln1": "self_attn_layer_norm",
            "m2": "fc1",
            "m3": "fc2",
            "ln2": "final_layer_norm",
        },
    ),
    "llama": Architecture(
        "layers",
        {
            "q": "self_attn.q_proj",
            "k": "self_attn.k_proj",
            "v": "self_attn.v_proj",
            "o": "self_attn.o_proj",
            "gate": "mlp.gate_proj",
            "m2": "mlp.up_proj",
            "m3": "mlp.down_proj",
        },
    ),
    "gptj": Architecture(
        "h",
        {
            "q": "attn.q_proj",
            "k": "attn.k_proj",
            "v": "attn.v_proj",
            "o": "attn.out_proj",
            "ln1": "ln_1",
            "m2": "mlp.fc_in",
            "m3": "mlp.fc_out",
        },
    ),
}


class UnsupportedArchitectureError(BeftError):
    pass


class MissingBiasError(BeftError):
    pass


def architecture_of(model: nn.Module) -> Architecture:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in ARCHITECTURES:
        raise UnsupportedArchitectureError(
            f"model type {model_type!r} has no role map; supported: {sorted(ARCHITECTURES)} "
            "(add an entry to beft/models/targets.py:ARCHITECTURES)"
        )
    return ARCHITECTURES[model_type]


def layers(model: nn.Module) -> list[nn.Module]:
    return list(model.base_model.get_submodule(architecture_of(model).layers))


def role_modules(model: nn.Module, role: str) -> list[nn.Module]:
    """The module playing ``role`` in every layer, in layer order."""
    arch = architecture_of(model)
    if role not in arch.roles:
        raise ValueError(f"role {role!r} is not defined for {model.config.model_type}; valid: {list(arch.roles)}")
    return [layer.get_submodule(arch.roles[role]) for layer in layers(model)]


def role_biases(model: nn.Module, role: str) -> list[nn.Parameter]:
    """The bias vector of ``role`` in every layer; a clear error when the architecture has none (LLaMA, GPT-J)."""
    biases = [m.bias for m in role_modules(model, role)]
    if any(b is None for b in biases):
        raise MissingBiasError(
            f"{model.config.model_type} has no {role} bias in its attention layers; "
            "add a zero-initialised one with model.add_bias=true (bias-free models, docs/method.md §1.4)"
        )
    return biases


def add_biases(model: nn.Module, roles: list[str] | str) -> list[str]:
    """Give every ``roles`` projection that has no bias a zero-initialised trainable one (docs/method.md §1.4); returns
    the roles that got one.

    The bias is the linear layer's own ``bias`` parameter, of width ``out_features`` (the true key/value width under
    grouped-query attention), in the weight's dtype and device: ``y = x W^T + b`` is added at the projection's output,
    before the heads are split and before rotary embeddings, and the model's output is unchanged at initialisation.
    Kept as a plain bias (rather than peft's BEFT wrapper, which adds the same vector) so that methods, importance
    scores and the zero-gradient check treat an added bias like a native one; trained runs still export as peft
    BEFT adapters (beft/adapters.py).
    """
    if roles == "all":
        return []
    added = []
    for role in roles:
        for module in role_modules(model, role):
            if module.bias is None:
                weight = module.weight
                module.bias = nn.Parameter(torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device))
                if role not in added:
                    added.append(role)
    return added


def roles_to_add(trainable: str, bias_roles: list[str] | str) -> list[str]:
    """Where a bias-free model (``model.add_bias``) gets zero-initialised biases for a method: the bias method's roles;
    every attention role for ``roles: all`` and for the all-bias methods (BitFit, the ranking's fine-tuning)."""
    if trainable == "all_biases" or (trainable in ("bias", "bias_reparam") and bias_roles == "all"):
        return list(ATTENTION_ROLES)
    return list(bias_roles) if trainable in ("bias", "bias_reparam") else []


def all_biases(model: nn.Module) -> list[nn.Parameter]:
    """Every bias term of the model (BitFit's set): the ``bias`` parameter of every module that has one."""
    return [m.bias for m in model.modules() if isinstance(getattr(m, "bias", None), nn.Parameter)]


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    arch = architecture_of(model)
    return [p for name in arch.head if _has_submodule(model, name) for p in model.get_submodule(name).parameters()]


def pooler_bias(model: nn.Module) -> nn.Parameter | None:
    arch = architecture_of(model)
    if arch.pooler is None or not _has_submodule(model.base_model, arch.pooler):
        return None
    return model.base_model.get_submodule(arch.pooler).bias


def encoder_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of the pre-trained body (everything but the task head)."""
    head = {id(p) for p in head_parameters(model)}
    return [p for p in model.parameters() if id(p) not in head]


def parameter_names(model: nn.Module, params: list[nn.Parameter]) -> list[str]:
    """Full names of ``params`` in ``model``, in the model's parameter order (for records and tests)."""
    wanted = {id(p) for p in params}
    return [name for name, p in model.named_parameters() if id(p) in wanted]


def _has_submodule(module: nn.Module, path: str) -> bool:
    try:
        module.get_submodule(path)
    except AttributeError:
        return False
    return True

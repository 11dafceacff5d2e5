"""PEFT on a bias vector (docs/method.md §5; paper Tables 4, 13, 14 and Appendix C.4/C.5).

The chosen bias of every layer (b_q, b_k, b_v or b_o) is viewed as an m x n matrix and re-parametrised by a PEFT
method. One mechanism serves every variant: ``torch.nn.utils.parametrize`` registers a small ``BiasReparam`` module on
the projection's ``bias``, so ``module.bias`` is recomputed as ``variant(b0)`` from the frozen pre-trained ``b0`` at
every access. The projection's own code, the Trainer, ``state_dict`` and everything that reads ``module.bias`` keep
working unchanged, and a new variant is one class with its factors and an ``effective(b0)``.

Vectorisation: ``vec`` stacks the columns of an m x n matrix (``vec(M) = M.T.flatten()``), which is exactly the
reference's ``flatten_row_major((B A)^T)`` (docs/method.md §5.1); the bias is read back into a matrix the same way.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn.utils import parametrize

from beft.errors import BeftError
from beft.models import targets


class ReparamError(BeftError):
    """A bias re-parametrisation that cannot be built (bad reshape, zero bias, unsupported target)."""


@dataclass(frozen=True)
class Reshape:
    """The bias of dimension d = m * n viewed as an m x n matrix; r = the rank of the low-rank factors."""

    m: int
    n: int
    r: int

    def check(self, d: int) -> None:
        if self.m * self.n != d:
            raise ReparamError(f"reshape (m, n) = ({self.m}, {self.n}) does not fit a bias of dimension {d}: m*n != d")
        if not 1 <= self.r <= min(self.m, self.n):
            raise ReparamError(f"rank r={self.r} must be between 1 and min(m, n)={min(self.m, self.n)}")


def to_matrix(b: torch.Tensor, shape: Reshape) -> torch.Tensor:
    """The m x n matrix M with vec(M) = b (columns stacked)."""
    return b.reshape(shape.n, shape.m).T


def vec(matrix: torch.Tensor) -> torch.Tensor:
    """Columns stacked into one vector: the reference's flatten of the transpose (docs/method.md §5.1)."""
    return matrix.T.reshape(-1)


def _kaiming(rows: int, cols: int, generator: torch.Generator) -> torch.Tensor:
    """``nn.Linear``'s default initialisation (Kaiming-uniform, a = sqrt(5): bound 1/sqrt(cols)), as the reference."""
    t = torch.empty(rows, cols)
    nn.init.kaiming_uniform_(t, a=math.sqrt(5), generator=generator)
    return t


class BiasReparam(nn.Module):
    """One layer's bias as ``effective(b0)``. Trainable factors are parameters; fixed random or derived tensors are
    buffers, so that only the factors train and count. ``bypass`` returns b0 itself (BA-LoRA's pre-trained pass)."""

    variant: ClassVar[str]
    unchanged_at_init: ClassVar[bool] = True  # effective(b0) == b0 before training

    def __init__(self, b0: torch.Tensor, shape: Reshape, alpha: float) -> None:
        super().__init__()
        self.shape = shape
        self.scale = alpha / shape.r
        self.bypass = False

    def forward(self, b0: torch.Tensor) -> torch.Tensor:
        return b0 if self.bypass else self.effective(b0)

    def effective(self, b0: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"m={self.shape.m}, n={self.shape.n}, r={self.shape.r}, scale={self.scale:g}"


VARIANTS: dict[str, type[BiasReparam]] = {}


def variant(cls: type[BiasReparam]) -> type[BiasReparam]:
    VARIANTS[cls.variant] = cls
    return cls


def _new(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.to(device=like.device, dtype=like.dtype)


@variant
class LoRA(BiasReparam):
    """b' = b + (alpha/r) vec(B A); A (r x n) Kaiming-uniform, B (m x r) zeros, so b' = b at init (docs/method.md
    §5.1)."""

    variant = "lora"

    def __init__(self, b0: torch.Tensor, shape: Reshape, alpha: float, generator: torch.Generator) -> None:
        super().__init__(b0, shape, alpha)
        self.A = nn.Parameter(_new(_kaiming(shape.r, shape.n, generator), b0))
        self.B = nn.Parameter(b0.new_zeros(shape.m, shape.r))

    def effective(self, b0: torch.Tensor) -> torch.Tensor:
        return b0 + self.scale * vec(self.B @ self.A)


@variant
class VeRA(BiasReparam):
    """b' = b + (alpha/r) vec(diag(lambda_b) B diag(lambda_d) A) with frozen random A (r x n), B (m x r) per layer and
    trainable scaling vectors lambda_b (m), lambda_d (r) (docs/method.md §5.2).

    ``init="reference"``: all four Kaiming-uniform as in the reference code, so b' != b at init (docs/experiments.md
    §A10); ``init="standard"``: lambda_b = 0, lambda_d = ``d_init`` as in the VeRA paper, so b' = b at init.
    """

    variant = "vera"

    def __init__(
        self,
        b0: torch.Tensor,
        shape: Reshape,
        alpha: float,
        generator: torch.Generator,
        init: str = "reference",
        d_init: float = 0.1,
    ) -> None:
        super().__init__(b0, shape, alpha)
        if init not in ("reference", "standard"):
            raise ReparamError(f"VeRA init={init!r}; valid: 'reference', 'standard'")
        self.register_buffer("A", _new(_kaiming(shape.r, shape.n, generator), b0))
        self.register_buffer("B", _new(_kaiming(shape.m, shape.r, generator), b0))
        if init == "reference":
            lambda_b, lambda_d = _kaiming(1, shape.m, generator)[0], _kaiming(1, shape.r, generator)[0]
        else:
            lambda_b, lambda_d = torch.zeros(shape.m), torch.full((shape.r,), float(d_init))
        self.unchanged_at_init = init == "standard"
        self.lambda_b = nn.Parameter(_new(lambda_b, b0))
        self.lambda_d = nn.Parameter(_new(lambda_d, b0))

    def effective(self, b0: torch.Tensor) -> torch.Tensor:
        return b0 + self.scale * vec((self.lambda_b[:, None] * self.B) @ (self.lambda_d[:, None] * self.A))


@variant
class VeRA1d(BiasReparam):
    """b' = b + (alpha/r) s 1: one trainable scalar per layer, s = 1 at init as in the reference, so every coordinate
    starts shifted by alpha/r (docs/method.md §5.3, Table 13)."""

    variant = "vera1d"
    unchanged_at_init = False

    def __init__(self, b0: torch.Tensor, shape: Reshape, alpha: float, generator: torch.Generator) -> None:
        super().__init__(b0, shape, alpha)
        self.s = nn.Parameter(b0.new_ones(()))

    def effective(self, b0: torch.Tensor) -> torch.Tensor:
        return b0 + self.scale * self.s


@variant
class DoRA(BiasReparam):
    """b' = m (b + vec(B A)) / ||b + vec(B A)||, the paper's formula (docs/method.md §5.4, docs/experiments.md §A9):
    scalar magnitude m = ||b|| and LoRA-initialised A, B, so b' = b at init. alpha is not used (the paper has no
    scaling)."""

    variant = "dora"

    def __init__(self, b0: torch.Tensor, shape: Reshape, alpha: float, generator: torch.Generator) -> None:
        super().__init__(b0, shape, alpha)
        norm = b0.detach().float().norm()
        if norm == 0:
            raise ReparamError("DoRA on a bias needs a non-zero pre-trained bias: its direction b/||b|| is undefined")
        self.A = nn.Parameter(_new(_kaiming(shape.r, shape.n, generator), b0))
        self.B = nn.Parameter(b0.new_zeros(shape.m, shape.r))
        self.magnitude = nn.Parameter(_new(norm, b0))

    def effective(self, b0: torch.Tensor) -> torch.Tensor:
        direction = b0 + vec(self.B @ self.A)
        return self.magnitude * direction / direction.norm()


@variant
class PiSSA(BiasReparam):
    """b' = vec(R + B A) with M = mat(b) = U S V^T, B = U_r S_r^(1/2), A = S_r^(1/2) V_r^T trainable and the residual
    R = M - B0 A0 frozen (docs/method.md §5.5). Computed as b + vec(B A) - vec(B0 A0), so b' = b exactly at init.
    Scaling 1 (alpha = r, as the PiSSA paper recommends): the principal components are trained at their own scale."""

    variant = "pissa"

    def __init__(self, b0: torch.Tensor, shape: Reshape, alpha: float, generator: torch.Generator) -> None:
        super().__init__(b0, shape, alpha)
        u, s, vh = torch.linalg.svd(to_matrix(b0.detach().double(), shape), full_matrices=False)
        if s[0] == 0:
            raise ReparamError("PiSSA on a bias needs a non-zero pre-trained bias: all its singular values are zero")
        root = s[: shape.r].sqrt()
        self.B = nn.Parameter(_new(u[:, : shape.r] * root, b0))
        self.A = nn.Parameter(_new(root[:, None] * vh[: shape.r], b0))
        self.register_buffer("principal", vec(self.B.detach() @ self.A.detach()))

    def effective(self, b0: torch.Tensor) -> torch.Tensor:
        return b0 + (vec(self.B @ self.A) - self.principal)  # the bracket is exactly 0 at init


@variant
class BALoRA(PiSSA):
    """BA-LoRA on a bias: PiSSA's parameterisation; its consistency, diversity and SVD regularisers act on the loss
    (``beft.models.balora``), not on the bias."""

    variant = "balora"


# --- applying, removing, bypassing --------------------------------------------------------------------------------


def reparametrize_module(
    module: nn.Module,
    name: str,
    shape: Reshape,
    alpha: float = 1.0,
    generator: torch.Generator | None = None,
    options: Mapping[str, Any] | None = None,
) -> BiasReparam:
    """Freeze ``module.bias`` and register the variant ``name`` on it; returns the variant (its factors train)."""
    if name not in VARIANTS:
        raise ReparamError(f"bias PEFT variant {name!r} is unknown; valid: {sorted(VARIANTS)}")
    if getattr(module, "bias", None) is None:
        raise ReparamError(f"{type(module).__name__} has no bias to re-parametrise")
    if parametrize.is_parametrized(module, "bias"):
        raise ReparamError(f"the bias of {type(module).__name__} is already re-parametrised")
    b0 = module.bias.detach()
    shape.check(b0.numel())
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    reparam = VARIANTS[name](b0, shape, float(alpha), generator, **dict(options or {}))
    module.bias.requires_grad_(False)
    parametrize.register_parametrization(module, "bias", reparam)
    return reparam


def reparametrize(
    model: nn.Module,
    roles: list[str],
    name: str,
    shape: Reshape,
    alpha: float = 1.0,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
) -> list[BiasReparam]:
    """Re-parametrise the bias of ``roles`` in every layer (role map order); random factors drawn from ``seed``."""
    if isinstance(roles, str) or not roles or any(r not in targets.ATTENTION_ROLES for r in roles):
        raise ReparamError(
            f"PEFT on the bias vector applies to attention bias kinds {list(targets.ATTENTION_ROLES)}, got {roles!r} "
            "(bias=all is BitFit's set, which has no common reshape)"
        )
    generator = torch.Generator().manual_seed(seed)
    out = []
    for role in roles:
        targets.role_biases(model, role)  # a clear error for bias-free attention (LLaMA, GPT-J)
        out.extend(
            reparametrize_module(m, name, shape, alpha, generator, options) for m in targets.role_modules(model, role)
        )
    return out


def reparametrized_modules(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if parametrize.is_parametrized(m, "bias")]


def remove(model: nn.Module, bake: bool = False) -> None:
    """Undo every bias re-parametrisation (and BA-LoRA's loss hook). ``bake=True`` keeps the effective biases as plain
    parameters (a model any code can save or export); ``bake=False`` restores the pre-trained biases."""
    for module in reparametrized_modules(model):
        parametrize.remove_parametrizations(module, "bias", leave_parametrized=bake)
    handle = model.__dict__.pop("_beft_balora_hook", None)
    if handle is not None:
        handle.remove()


@contextlib.contextmanager
def bypassed(model: nn.Module) -> Iterator[None]:
    """Within the block every re-parametrised bias is its pre-trained value (the model BA-LoRA stays consistent to)."""
    reparams = [m for m in model.modules() if isinstance(m, BiasReparam)]
    for r in reparams:
        r.bypass = True
    try:
        yield
    finally:
        for r in reparams:
            r.bypass = False


# --- from a method config; counts -----------------------------------------------------------------------------------


def paper_params(per_layer: int, d: int) -> dict[str, float]:
    """The paper's bias-PEFT "Params" (trainable per layer / d, %; Tables 4, 13) and "Saving" (1 - that; Table 14)."""
    relative = 100.0 * per_layer / d
    return {"relative_percent": relative, "saving_percent": 100.0 - relative}


def from_config(model: nn.Module, method_cfg: Mapping[str, Any], roles: list[str], seed: int) -> tuple[list, dict]:
    """Apply ``method.variant`` with ``method.reshape`` ({m, n, r}, from the model config) to ``roles``; add BA-LoRA's
    regularisers when ``method.regularisers`` has a non-zero weight. Returns (variants, info for the record)."""
    reshape = method_cfg.get("reshape")
    if not reshape:
        raise ReparamError(
            "method.reshape is not set: add `bias_reshape: {m, n, r}` (m*n = bias dimension) to the model config"
        )
    shape = Reshape(int(reshape["m"]), int(reshape["n"]), int(reshape["r"]))
    name, alpha = method_cfg["variant"], float(method_cfg.get("alpha", 1.0))
    variants = reparametrize(model, list(roles), name, shape, alpha, seed, method_cfg.get("options"))
    info: dict[str, Any] = {"variant": name, "reshape": asdict(shape), "alpha": alpha, "roles": list(roles)}
    regularisers = method_cfg.get("regularisers")
    if regularisers is not None:
        from beft.models import balora  # balora builds on this module's bypass

        weights = balora.BALoRAWeights(**regularisers)
        if weights.active():
            if not type(model).__name__.endswith("ForSequenceClassification"):
                raise ReparamError(
                    f"BA-LoRA's regularisers are implemented for sequence classification (NLU, Appendix C.5), not "
                    f"{type(model).__name__}; set method.regularisers weights to 0 for the parameterisation alone"
                )
            balora.add_regularisers(model, weights)
        info["regularisers"] = asdict(weights)
    per_layer = {sum(p.numel() for p in v.parameters()) for v in variants}
    dims = {v.shape.m * v.shape.n for v in variants}
    if len(per_layer) == 1 and len(dims) == 1:
        info.update(per_layer=per_layer.pop(), bias_dim=dims.pop(), layers=len(variants))
        info.update(paper_params(info["per_layer"], info["bias_dim"]))
    return variants, info

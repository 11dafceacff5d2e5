"""Bias importance: which bias kind changes most when all biases are fine-tuned (docs/method.md §3).

Three per-layer scores, aggregated over layers as the reference does (rank by the sum, display the mean):

* ``angle`` (the paper's magnitude + angle score): ``1 - <b0, bf> / max(|b0|, |bf|)^2``;
* ``magnitude`` (BitFit's): ``mean_i |bf_i - b0_i|``;
* ``fisher`` (empirical, batch-level, at the pre-trained point): mean over entries of the squared, clipped,
  batch-averaged gradient, averaged over the training batches.

The first two need only a few numbers per layer bias (norms, dot product, L1 change), which every run records as
``bias_change``; the ranking is derived from those, so a completed BitFit record is enough to rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from beft.errors import BeftError
from beft.models import targets

APPROACHES = ("angle", "magnitude", "fisher")
CANDIDATES = ("q", "k", "v")  # the paper selects its target among these


class ScoreError(BeftError):
    """A score that is undefined for a layer (zero-norm bias, or an angle over 90 degrees)."""


def angle_score(dot: float, norm0: float, normf: float) -> float:
    """The paper's magnitude + angle score from a layer's sufficient statistics (docs/method.md §3.3).

    Edge cases as the reference decides: a zero norm makes the score undefined (error); an angle over 90 degrees
    (negative dot product) would give a score above 1 and aborts the reference (error).
    """
    if norm0 == 0 or normf == 0:
        raise ScoreError(
            f"magnitude+angle score undefined: bias norm is zero (|b0|={norm0:g}, |bf|={normf:g}); "
            "it cannot rank biases that start at zero (e.g. added biases), docs/method.md §3.3"
        )
    if dot < 0:
        cos = dot / (norm0 * normf)
        raise ScoreError(
            f"angle between pre-trained and fine-tuned bias is larger than 90 degrees (cos={cos:.4f}); "
            "the reference aborts here (docs/method.md §3.3); rank.angle_over_90=report records the raw score instead"
        )
    return 1.0 - dot / max(norm0, normf) ** 2


def change_stats(b0: torch.Tensor, bf: torch.Tensor) -> dict[str, float]:
    """Sufficient statistics of one bias vector's change (float64, flattened)."""
    b0, bf = b0.detach().double().flatten().cpu(), bf.detach().double().flatten().cpu()
    return {
        "d": b0.numel(),
        "norm0": float(b0.norm()),
        "normf": float(bf.norm()),
        "dot": float(b0 @ bf),
        "l1": float((bf - b0).abs().sum()),
    }


def snapshot(model: nn.Module, trained: Iterable[nn.Parameter]) -> dict[tuple[str, int], torch.Tensor]:
    """Copies of every trained per-layer bias, keyed by (role, layer): the b0 of ``bias_change``."""
    trained_ids = {id(p) for p in trained}
    arch = targets.architecture_of(model)
    out = {}
    for role in arch.layer_roles:
        for layer, module in enumerate(targets.role_modules(model, role)):
            bias = getattr(module, "bias", None)
            if bias is not None and trained_ids & _bias_sources(module):
                out[(role, layer)] = bias.detach().clone()
    return out


def _bias_sources(module: nn.Module) -> set[int]:
    """Ids of the parameters ``module.bias`` is computed from: the bias itself, or the factors of a re-parametrised
    bias (PEFT on the bias vector, beft.models.reparam), whose change is that of the effective bias."""
    if parametrize.is_parametrized(module, "bias"):
        return {id(p) for p in module.parametrizations.bias.parameters()}
    return {id(module.bias)}


def bias_change(before: Mapping[tuple[str, int], torch.Tensor], model: nn.Module) -> list[dict[str, Any]]:
    """Per trained layer bias: role, layer and ``change_stats`` against the snapshot."""
    rows = []
    for (role, layer), b0 in before.items():
        bf = targets.role_modules(model, role)[layer].bias
        rows.append({"role": role, "layer": layer, **change_stats(b0, bf)})
    return rows


def layer_scores(changes: Sequence[Mapping[str, Any]], approach: str, angle_over_90: str = "error") -> dict:
    """{role: [score per layer]} from ``bias_change`` rows, for ``angle`` or ``magnitude``."""
    if angle_over_90 not in ("error", "report"):
        raise ValueError(f"angle_over_90={angle_over_90!r}; valid: 'error', 'report'")
    scores: dict[str, dict[int, float]] = {}
    for row in changes:
        if approach == "magnitude":
            value = row["l1"] / row["d"]
        elif approach == "angle":
            try:
                value = angle_score(row["dot"], row["norm0"], row["normf"])
            except ScoreError as err:
                if angle_over_90 == "report" and row["dot"] < 0 and row["norm0"] and row["normf"]:
                    value = 1.0 - row["dot"] / max(row["norm0"], row["normf"]) ** 2
                else:
                    raise ScoreError(f"{row['role']} bias of layer {row['layer']}: {err}") from None
        else:
            raise ValueError(f"approach {approach!r} is not computed from bias changes; valid: angle, magnitude")
        scores.setdefault(row["role"], {})[row["layer"]] = value
    return {role: [per[layer] for layer in sorted(per)] for role, per in scores.items()}


def fisher_scores(
    model: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    max_grad_norm: float = 1.0,
    loss_fn: Callable[[nn.Module, Mapping[str, torch.Tensor]], torch.Tensor] | None = None,
) -> dict:
    """Empirical Fisher of every trainable layer bias at the current (pre-trained) point, as the reference computes it.

    Eval mode (no dropout), no optimiser step; per batch: zero grads, forward, the model's loss (cross-entropy, or MSE
    for regression), backward, clip the global gradient norm of all trainable parameters, accumulate
    ``mean(grad^2)`` per tensor; finally divide by the number of batches (docs/method.md §3.2). ``loss_fn(model,
    batch)`` replaces the model's own loss (decoders: the training objective, docs/experiments.md §D7).
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    layer_biases = snapshot(model, trainable)
    modules = {key: targets.role_modules(model, key[0])[key[1]] for key in layer_biases}
    sums = {key: 0.0 for key in layer_biases}
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    n = 0
    for batch in batches:
        model.zero_grad(set_to_none=True)
        batch = {k: v.to(device) for k, v in batch.items()}
        loss = loss_fn(model, batch) if loss_fn is not None else model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in trainable if p.grad is not None], max_grad_norm)
        for key, module in modules.items():
            grad = module.bias.grad
            sums[key] += 0.0 if grad is None else float(grad.double().pow(2).mean())
        n += 1
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    if n == 0:
        raise ScoreError("Fisher scores need at least one training batch")
    per: dict[str, dict[int, float]] = {}
    for (role, layer), total in sums.items():
        per.setdefault(role, {})[layer] = total / n
    return {role: [layers[i] for i in sorted(layers)] for role, layers in per.items()}


def summarise(per_layer: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """Aggregate (sum over layers; mean for display), rank bias kinds, and select the target among q/k/v."""
    total = {role: float(math.fsum(values)) for role, values in per_layer.items()}
    mean = {role: total[role] / len(per_layer[role]) for role in per_layer}
    ranking = sorted(total, key=lambda role: -total[role])
    candidates = [role for role in ranking if role in CANDIDATES]
    return {
        "per_layer": {role: list(values) for role, values in per_layer.items()},
        "sum": total,
        "mean": mean,
        "ranking": ranking,
        "ranking_qkv": candidates,
        "target": candidates[0] if candidates else None,
    }

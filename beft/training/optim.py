"""The reference's AdamW: ``transformers.optimization.AdamW`` of transformers 4.x (``optim="adamw_hf"`` there).

The authors' encoder code builds that class directly (``AdamW(params, lr, correct_bias=True)``), and MeZO's decoder
trainer gets it from transformers 4.28's default ``optim="adamw_hf"``; transformers 5 no longer ships it
(docs/method.md §7.2). Its step differs from ``torch.optim.AdamW`` in where epsilon enters::

    m_t = b1 m + (1 - b1) g,   v_t = b2 v + (1 - b2) g^2
    p  -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m_t / (sqrt(v_t) + eps)          # this class
    p  -= lr * (m_t / (1 - b1^t)) / (sqrt(v_t / (1 - b2^t)) + eps)             # torch.optim.AdamW

so its effective epsilon is ``eps / sqrt(1 - b2^t)`` in torch's terms: about 32x larger at step 1 (b2 = 0.999), 1x
after a few thousand steps. Gradients near eps (b_k's) move less. Weight decay is applied after the Adam step
(``p -= lr * wd * p``), as there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

REFERENCE_OPTIM = "adamw_hf"  # trainer.args.optim value that selects this class (its transformers 4.x name)


class ReferenceAdamW(torch.optim.Optimizer):
    """AdamW with transformers 4.x's update (see the module docstring); ``correct_bias=False`` drops the bias
    correction (the original BERT's), as there."""

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        correct_bias: bool = True,
    ) -> None:
        if lr < 0.0 or eps < 0.0 or not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(
                f"invalid AdamW settings: lr={lr}, betas={betas}, eps={eps} (need lr, eps >= 0, 0 <= b < 1)"
            )
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "correct_bias": correct_bias}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("ReferenceAdamW does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(p.grad, alpha=1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1.0 - beta2)
                denom = exp_avg_sq.sqrt().add_(group["eps"])  # eps before the second moment's bias correction
                step_size = group["lr"]
                if group["correct_bias"]:
                    step_size *= math.sqrt(1.0 - beta2 ** state["step"]) / (1.0 - beta1 ** state["step"])
                p.addcdiv_(exp_avg, denom, value=-step_size)
                if group["weight_decay"] > 0.0:
                    p.add_(p, alpha=-group["lr"] * group["weight_decay"])
        return loss


def split_optimizer(trainer_args: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[type, dict[str, Any]] | None]:
    """(TrainingArguments keywords, the Trainer's ``optimizer_cls_and_kwargs``). ``optim: adamw_hf`` selects
    ``ReferenceAdamW`` with the args' learning rate, betas and epsilon (weight decay comes per parameter group from the
    Trainer); any other ``optim`` is left to the Trainer (None)."""
    kwargs = dict(trainer_args)
    if kwargs.get("optim") != REFERENCE_OPTIM:
        return kwargs, None
    del kwargs["optim"]
    return kwargs, (ReferenceAdamW, reference_kwargs(kwargs))


def reference_kwargs(trainer_args: Mapping[str, Any]) -> dict[str, Any]:
    """ReferenceAdamW's keywords from TrainingArguments keywords (the Trainer's defaults where a key is absent)."""
    return {
        "lr": float(trainer_args["learning_rate"]),
        "betas": (float(trainer_args.get("adam_beta1", 0.9)), float(trainer_args.get("adam_beta2", 0.999))),
        "eps": float(trainer_args.get("adam_epsilon", 1e-8)),
        "correct_bias": True,
    }

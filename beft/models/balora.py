"""BA-LoRA's regularisers on the bias (docs/method.md §5.5; Appendix C.5): PiSSA's parameterisation of the bias plus
three terms added to the training loss. The weights are configuration (conf/method/bias_balora.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from beft.models.reparam import ReparamError, bypassed


@dataclass(frozen=True)
class BALoRAWeights:
    """Weights of BA-LoRA's NLU regularisers (``method.regularisers`` of conf/method/bias_balora.yaml)."""

    consistency: float
    diversity: float
    svd: float
    svd_k: int

    def active(self) -> bool:
        return any((self.consistency, self.diversity, self.svd))


def terms(logits: torch.Tensor, reference: torch.Tensor | None, svd_k: int) -> dict[str, torch.Tensor]:
    """BA-LoRA's NLU regularisers on a batch of classification logits (batch x labels).

    consistency: MSE between the L2-normalised logits and those of the pre-trained biases (knowledge drift);
    diversity: sum of squared off-diagonal entries of the logits' batch covariance, divided by the number of labels
    (representation collapse); svd: minus the share of the top-k singular values of the logit matrix (noise).
    """
    if logits.dim() != 2:
        raise ReparamError(
            f"BA-LoRA regularisers need classification logits (batch x labels), got {tuple(logits.shape)}"
        )
    batch, dim = logits.shape
    terms: dict[str, torch.Tensor] = {}
    if reference is not None:
        terms["consistency"] = F.mse_loss(F.normalize(logits, dim=-1), F.normalize(reference, dim=-1))
    centred = logits - logits.mean(dim=0)
    cov = centred.T @ centred / max(batch - 1, 1)
    terms["diversity"] = (cov - torch.diag(torch.diag(cov))).pow(2).sum() / dim
    s = torch.linalg.svdvals(logits.float())
    terms["svd"] = -(s[:svd_k].sum() / s.sum().clamp_min(1e-10)).to(logits.dtype)
    return terms


def add_regularisers(model: nn.Module, weights: BALoRAWeights) -> RemovableHandle:
    """Add BA-LoRA's weighted regularisers to ``output.loss`` of every training forward pass of ``model``.

    A forward hook, so any training loop that uses the model's loss (the shared Trainer) gets them without changes;
    evaluation (eval mode or no grad) is untouched. The consistency reference is the same model with the pre-trained
    biases (the re-parametrisations bypassed), in eval mode and without gradients, as BA-LoRA's frozen teacher.
    """

    def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        if not (module.training and torch.is_grad_enabled()) or getattr(output, "loss", None) is None:
            return None
        reference = None
        if weights.consistency:
            inputs = {k: v for k, v in kwargs.items() if k not in ("labels", "num_items_in_batch")}
            with torch.no_grad(), bypassed(module):
                module.eval()
                try:
                    reference = module(*args, **inputs).logits
                finally:
                    module.train()
        batch_terms = terms(output.logits, reference, weights.svd_k)
        output.loss = output.loss + sum(getattr(weights, k) * v for k, v in batch_terms.items())
        return output

    handle = model.register_forward_hook(hook, with_kwargs=True)
    model.__dict__["_beft_balora_hook"] = handle  # plain attribute: found again by ``remove``
    return handle

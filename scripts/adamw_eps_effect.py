"""How far the reference's AdamW step is from torch's, per bias role, on a run's first training batch.

    python scripts/adamw_eps_effect.py model=minilm task=mrpc regime=low
    python scripts/adamw_eps_effect.py model=smollm2 task=sst2 regime=low data.num_eval=8

For each of b_q, b_k, b_v (one prepared run per role, seed 0 unless ``seed=`` is given) it takes the gradient of the
training loss on the first batch of the regime's subset and prints, per role, the median |g|, the share of entries
with |g| < eps / sqrt(1 - beta2) and the mean over entries of (|g| + eps) / (|g| + eps / sqrt(1 - beta2^t)): the
reference's step over torch's for a gradient of steady size |g| (docs/method.md §7.2), at step 1 and at the run's
last step. Used by docs/reproduction.md.
"""

from __future__ import annotations

import json
import math
import sys

import torch

from beft import run
from beft.bench import settings
from beft.models import targets


def role_stats(overrides: list[str], role: str) -> dict[str, float]:
    spec = settings.train_spec(*overrides, f"bias={role}", checked=True)
    prep = run.prepare(spec)
    batch_size = int(spec.trainer_args["per_device_train_batch_size"])
    prep.model.train()
    prep.data.loss(prep.model, prep.data.collate([prep.data.train[i] for i in range(batch_size)])).backward()
    grad = torch.cat([p.grad.flatten() for p in targets.role_biases(prep.inner, role)]).abs().double()
    args = spec.trainer_args
    eps, beta2 = float(args["adam_epsilon"]), float(args["adam_beta2"])
    per_epoch = math.ceil(len(prep.data.train) / (batch_size * int(args.get("gradient_accumulation_steps", 1))))
    last = per_epoch * int(args["num_train_epochs"])

    def ratio(step: int) -> float:
        return float(((grad + eps) / (grad + eps / math.sqrt(1 - beta2**step))).mean())

    return {
        "median_abs_grad": float(grad.median()),
        "share_below_step1_eps": float((grad < eps / math.sqrt(1 - beta2)).double().mean()),
        "ratio_step1": ratio(1),
        "last_step": last,
        "ratio_last_step": ratio(last),
    }


def main(overrides: list[str]) -> None:
    print(json.dumps({f"b_{role}": role_stats(overrides, role) for role in ("q", "k", "v")}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])

"""Step timing: each method's training step (and an evaluation step) on one model and one batch, interleaved."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from beft.bench import settings
from beft.spec import RunSpec
from beft.training.optim import REFERENCE_OPTIM, ReferenceAdamW


@dataclass
class StepSetup:
    """One row of the step table: what is trained and how (training), or a forward pass only (evaluation)."""

    name: str
    label: str
    params: list[nn.Parameter]
    lr: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-6
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    train: bool = True
    optim: str = "adamw_torch"  # trainer.args.optim

    def optimizer(self) -> torch.optim.Optimizer:
        """The trainer config's AdamW (``optim``: the reference's or torch's) with its settings, as the Trainer builds
        it."""
        if self.optim == REFERENCE_OPTIM:
            return ReferenceAdamW(
                self.params, lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay
            )
        return torch.optim.AdamW(
            self.params, lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay
        )


EVAL = StepSetup("eval", "evaluation (forward, no gradients)", [], train=False)


def method_setups(model: nn.Module, base_overrides: Sequence[str]) -> list[StepSetup]:
    """The training rows, each from its composed config (method, bias, learning rate, optimizer settings)."""
    from beft.models import methods

    setups = []
    for name, (label, overrides) in settings.methods().items():
        spec = settings.train_spec(*base_overrides, *overrides)
        args = spec.trainer_args
        trainable = methods.apply_method(model, dict(spec.method), dict(spec.bias), seed=spec.seed)
        setups.append(
            StepSetup(
                name,
                label,
                trainable.params,
                lr=float(args["learning_rate"]),
                betas=(float(args["adam_beta1"]), float(args["adam_beta2"])),
                eps=float(args["adam_epsilon"]),
                weight_decay=float(args["weight_decay"]),
                max_grad_norm=float(args["max_grad_norm"]),
                optim=str(args.get("optim", "adamw_torch")),
            )
        )
    return setups


def step_batch(spec: RunSpec, tokenizer, device: torch.device) -> tuple[dict[str, torch.Tensor], str]:
    """The first training batch of the task's subset (seed ``spec.seed``), padded as ``data.padding`` says."""
    from transformers import DataCollatorWithPadding

    from beft.data import features, regimes, sources

    data, task = spec.data, spec.task
    train = sources.load_splits(task, data.dir)["train"]
    size = int(spec.trainer_args["per_device_train_batch_size"])
    rows = regimes.subset_indices(len(train), data.num_train, spec.seed)[:size]
    feats = features.tokenize(train.select(rows), task.text_fields, tokenizer, data.max_length, data.padding, None)
    batch = DataCollatorWithPadding(tokenizer)([feats[i] for i in range(len(feats))])
    batch = {("labels" if k == "label" else k): v.to(device) for k, v in batch.items()}
    return (
        batch,
        f"first {size} rows of the {task.name} {spec.regime}-regime subset, seed {spec.seed}, {data.padding} padding",
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def select_trainable(model: nn.Module, params: Sequence[nn.Parameter]) -> None:
    """Make exactly ``params`` trainable: switching rows without reloading the model."""
    keep = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[precision])


def run_step(
    model: nn.Module,
    batch: Mapping[str, torch.Tensor],
    setup: StepSetup,
    optimizer: torch.optim.Optimizer | None,
    precision: str,
    clock: Callable[[], float],
) -> dict[str, float]:
    """One training step (forward, backward, clip, AdamW, zero) or one evaluation forward; phase times in s."""
    device = next(model.parameters()).device
    t0 = clock()
    if not setup.train:
        model.eval()
        with torch.inference_mode(), _autocast(device, precision):
            model(**batch)
        t1 = clock()
        model.train()
        return {"total": t1 - t0, "forward": t1 - t0}
    with _autocast(device, precision):
        loss = model(**batch).loss
    t1 = clock()
    loss.backward()
    t2 = clock()
    torch.nn.utils.clip_grad_norm_(setup.params, setup.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    t3 = clock()
    return {"total": t3 - t0, "forward": t1 - t0, "backward": t2 - t1, "optimizer": t3 - t2}


def time_steps(
    model: nn.Module,
    batch: Mapping[str, torch.Tensor],
    setups: Sequence[StepSetup],
    steps: int,
    warmup: int,
    precision: str = "fp32",
) -> dict[str, dict[str, list[float]]]:
    """Per row, the time of each of ``steps`` steps after ``warmup`` (s), split into phases.

    Rows are interleaved (one step of each per round) so that a slow spell of a shared machine is spread over all
    rows instead of inflating one; the model is built once and only ``requires_grad`` changes between rows.
    """
    device = next(model.parameters()).device

    def clock() -> float:
        sync(device)
        return time.perf_counter()

    model.train()
    optimizers = {s.name: s.optimizer() if s.train else None for s in setups}
    times: dict[str, dict[str, list[float]]] = {s.name: {} for s in setups}
    for round_ in range(warmup + steps):
        for s in setups:
            select_trainable(model, s.params)
            phases = run_step(model, batch, s, optimizers[s.name], precision, clock)
            if round_ >= warmup:
                for phase, seconds in phases.items():
                    times[s.name].setdefault(phase, []).append(seconds)
    select_trainable(model, [])
    return times

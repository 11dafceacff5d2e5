"""The one shared Hugging Face Trainer loop: build it from the config, train, return the per-epoch history.

Every hyperparameter comes from ``cfg.trainer.args`` (passed to ``TrainingArguments`` unchanged); this module only
wires the task's metrics, the collator and the per-epoch history into the Trainer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from torch import nn
from transformers import (
    DataCollatorWithPadding,
    EvalPrediction,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from beft.data.tasks import TaskSpec
from beft.training import metrics, optim

log = logging.getLogger(__name__)

# |sum of a bias's per-token gradients| / sum of their magnitudes at or below this = a gradient that is zero up to
# rounding. Measured on MiniLM and tiny BERT: b_k ~1e-8 in fp32 and ~5e-4 under bf16 autocast; b_q/b_v/b_o 0.3-0.95.
ZERO_GRADIENT_RTOL = 3e-3


class NonFiniteLossError(RuntimeError):
    pass


class FiniteLossTrainer(Trainer):
    """Stops at the first NaN/inf training loss, before the optimizer applies its gradients.

    The Trainer's ``logging_nan_inf_filter`` (on by default) replaces a non-finite step loss by the running mean in
    the logged loss, so a check at logging alone would miss a diverged run and report metrics of a broken model.
    """

    def training_step(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        loss = super().training_step(*args, **kwargs)
        if not torch.isfinite(loss).all():
            raise NonFiniteLossError(
                f"training loss became {loss.float().mean().item()} at step {self.state.global_step + 1} "
                f"(epoch {self.state.epoch or 0:.2f}): the run diverged; try a lower trainer.args.learning_rate "
                f"(now {self.args.learning_rate:g})"
            )
        return loss


class EpochHistory(TrainerCallback):
    """Collects, per epoch, the training loss and every evaluation split's metrics; stops on a NaN/inf loss."""

    def __init__(self, eval_keys: list[str]) -> None:
        self.eval_keys = eval_keys
        self.epochs: dict[int, dict[str, Any]] = {}

    def _entry(self, epoch: float | None) -> dict[str, Any]:
        e = round(epoch or 0)
        return self.epochs.setdefault(e, {"epoch": e})

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            if not math.isfinite(logs["loss"]):
                raise NonFiniteLossError(f"training loss became {logs['loss']} at epoch {state.epoch:.2f}")
            self._entry(state.epoch)["train_loss"] = float(logs["loss"])

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        for key in self.eval_keys:
            prefix = f"eval_{key}_"
            found = {k[len(prefix) :]: v for k, v in (metrics or {}).items() if k.startswith(prefix)}
            if found:
                keep = {k: float(v) for k, v in found.items() if not k.endswith(("runtime", "per_second"))}
                bad = {k: v for k, v in keep.items() if not math.isfinite(v)}
                if bad:  # a diverged model (inf/NaN logits) still gets an accuracy: never record it
                    raise NonFiniteLossError(
                        f"evaluation on {key} after epoch {state.epoch or 0:.2f} gave non-finite {bad}: the model "
                        f"diverged; try a lower trainer.args.learning_rate (now {args.learning_rate:g})"
                    )
                self._entry(state.epoch)[key] = keep

    def history(self) -> list[dict[str, Any]]:
        return [self.epochs[e] for e in sorted(self.epochs)]


class EvalOutputs(TrainerCallback):
    """Every split's per-example outputs (head outputs, labels) of the latest evaluation: after training, the final
    epoch's. The metrics function hands them over; ``on_evaluate``, which follows it for the same split, files them
    under the split its metrics name."""

    def __init__(self, eval_keys: list[str]) -> None:
        self.eval_keys = eval_keys
        self.pending: tuple[np.ndarray, np.ndarray] | None = None
        self.by_split: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def keep(self, outputs: np.ndarray, labels: np.ndarray) -> None:
        self.pending = (outputs, labels)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        # the longest matching key: "eval_validation_" is also a prefix of "eval_validation_matched_..."
        named = [k for k in self.eval_keys if any(m.startswith(f"eval_{k}_") for m in metrics or {})]
        if named and self.pending is not None:
            self.by_split[max(named, key=len)] = self.pending
        self.pending = None


def compute_metrics_fn(task: TaskSpec, outputs: EvalOutputs | None = None):
    def compute(prediction: EvalPrediction) -> dict[str, float]:
        preds = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        preds, labels = np.asarray(preds), np.asarray(prediction.label_ids)
        if outputs is not None:
            outputs.keep(preds, labels)
        return metrics.compute(task.metrics, preds, labels)

    return compute


class ZeroGradientCheck(TrainerCallback):
    """On the first optimizer step, warns about each trained bias role whose gradient is zero up to rounding.

    b_k gets exactly zero gradient in BERT, RoBERTa and OPT: it adds the same q·b_k to every logit of a query's row,
    and softmax ignores such shifts (docs/method.md §4.1). A run that trains it moves only the head, so this is said
    after one step instead of after the epochs. Floating point leaves a tiny non-zero gradient, so "zero" is judged
    without a scale: a bias's gradient is the sum over tokens of its module's output gradient, and the check compares
    |sum| with the sum of the terms' magnitudes (hooks on the modules, first step only).
    """

    def __init__(self, role_params: Mapping[str, Sequence[nn.Parameter]], rtol: float = ZERO_GRADIENT_RTOL) -> None:
        self.role_params = {role: list(params) for role, params in role_params.items()}
        self.rtol = rtol
        self.ratios: dict[str, float] = {}
        self.warnings: list[str] = []
        self._sums: dict[tuple[str, int], list[torch.Tensor]] = {}
        self._handles: list[Any] = []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        for role, params in self.role_params.items():
            ids = {id(p) for p in params}
            for module in model.modules():
                if id(getattr(module, "bias", None)) in ids:
                    self._handles.append(module.register_forward_hook(self._forward_hook(role, id(module))))

    def _forward_hook(self, role: str, key: int):
        def hook(module, inputs, output):
            if isinstance(output, torch.Tensor) and output.requires_grad:
                output.register_hook(lambda grad: self._accumulate(role, key, grad))

        return hook

    def _accumulate(self, role: str, key: int, grad: torch.Tensor) -> None:
        g = grad.detach().reshape(-1, grad.shape[-1]).double()
        total = self._sums.setdefault((role, key), [0.0, 0.0])
        total[0] = total[0] + g.sum(0).cpu()
        total[1] = total[1] + g.abs().sum(0).cpu()

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if not self._handles:
            return
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for role in self.role_params:
            sums = [v for (r, _), v in self._sums.items() if r == role]
            if not sums:  # no gradient reached the role's modules at all
                continue
            magnitude = float(sum(m.sum() for _, m in sums))
            ratio = float(sum(s.abs().sum() for s, _ in sums)) / magnitude if magnitude > 0 else 0.0
            self.ratios[role] = ratio
            if ratio <= self.rtol:
                message = (
                    f"b_{role} gets zero gradient (up to rounding: |sum| / sum of magnitudes = {ratio:.1e} at the "
                    f"first step): training it cannot change the model's output, only the other trained parameters "
                    f"(head, pooler bias) move. For b_k this is softmax's shift invariance: q·b_k is added to every "
                    f"logit of a query's row (docs/method.md §4.1)."
                )
                log.warning(message)
                self.warnings.append(message)
        self._sums.clear()


def training_arguments(
    trainer_args: Mapping[str, Any],
    output_dir: str | Path,
    seed: int,
    report_to: str | list[str] = "none",
    run_name: str | None = None,
) -> TrainingArguments:
    """``trainer.args`` as TrainingArguments, with what only the machine decides: no pinned memory and no fp16
    autocast without an accelerator (fp16 is the decoders' GPU setting, docs/experiments.md §6.4). ``optim: adamw_hf``
    is not a transformers 5 choice: it is left out here and given to the Trainer as ``Monitors.optimizer``."""
    kwargs, _ = optim.split_optimizer(trainer_args)
    if not torch.accelerator.is_available():
        kwargs["dataloader_pin_memory"] = False  # pinning needs an accelerator; on a CPU it only warns
        if kwargs.get("fp16"):
            log.info("fp16 mixed precision needs a GPU: training in fp32 on this CPU")
            kwargs["fp16"] = False
    if torch.cuda.is_available():
        # cuDNN's attention builds a plan for every new sequence length (~0.2 s each on an H100 under bf16), i.e. for
        # most batches with dynamic padding; flash / memory-efficient attention need none and are as fast here.
        torch.backends.cuda.enable_cudnn_sdp(False)
    return TrainingArguments(output_dir=str(output_dir), seed=seed, report_to=report_to, run_name=run_name, **kwargs)


@dataclass
class FitSettings:
    """What the run decides for the training loop, whatever the model kind."""

    trainer_args: Mapping[str, Any]  # transformers.TrainingArguments keywords (conf/trainer, the task's schedule)
    output_dir: Path
    seed: int
    max_length: int
    report_to: str | list[str] = "none"
    run_name: str | None = None
    zero_grad_roles: Mapping[str, Sequence[nn.Parameter]] | None = None  # role -> bias tensors, checked at step one


@dataclass
class Monitors:
    """The TrainingArguments and the callbacks every loop uses: the per-epoch history and, for the bias roles a run
    trains directly, the zero-gradient check (not under ``torch_compile``, where its hooks force recompilation)."""

    args: TrainingArguments
    history: EpochHistory
    check: ZeroGradientCheck | None
    optimizer: tuple[type, dict[str, Any]] | None = None  # the Trainer's optimizer_cls_and_kwargs (None: args.optim)

    @classmethod
    def build(cls, settings: FitSettings, eval_keys: list[str]) -> Monitors:
        args = training_arguments(
            settings.trainer_args, settings.output_dir, settings.seed, settings.report_to, settings.run_name
        )
        roles = settings.zero_grad_roles
        check = ZeroGradientCheck(roles) if roles and not args.torch_compile else None
        return cls(args, EpochHistory(eval_keys), check, optim.split_optimizer(settings.trainer_args)[1])

    @property
    def callbacks(self) -> list[TrainerCallback]:
        return [self.history, *([self.check] if self.check else [])]

    def train_metrics(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        return {**metrics, "warnings": self.check.warnings if self.check else []}


def fit(
    model,
    tokenizer,
    train_dataset: datasets.Dataset,
    eval_datasets: Mapping[str, datasets.Dataset],
    task: TaskSpec,
    settings: FitSettings,
    collate=None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train and evaluate after every epoch; returns (per-epoch history, the Trainer's train metrics + ``warnings``
    + ``outputs``: each split's head outputs and labels at the final epoch's evaluation). ``collate`` batches the
    rows (default: padding to the batch's longest sequence)."""
    monitors = Monitors.build(settings, list(eval_datasets))
    outputs = EvalOutputs(list(eval_datasets))
    trainer = FiniteLossTrainer(
        model=model,
        args=monitors.args,
        train_dataset=train_dataset,
        eval_dataset=dict(eval_datasets),
        data_collator=collate or DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_metrics_fn(task, outputs),
        callbacks=[*monitors.callbacks, outputs],
        optimizer_cls_and_kwargs=monitors.optimizer,
    )
    result = trainer.train()
    return monitors.history.history(), {**monitors.train_metrics(result.metrics), "outputs": outputs.by_split}

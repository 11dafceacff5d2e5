"""The one shared Hugging Face Trainer loop: build it from the config, train, return the per-epoch history.

Every hyperparameter comes from ``cfg.trainer.args`` (passed to ``TrainingArguments`` unchanged); this module only
wires the task's metrics, the collator and the per-epoch history into the Trainer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from transformers import (
    DataCollatorWithPadding,
    EvalPrediction,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from beft.data.tasks import TaskSpec
from beft.training import metrics


class NonFiniteLossError(RuntimeError):
    pass


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
                self._entry(state.epoch)[key] = keep

    def history(self) -> list[dict[str, Any]]:
        return [self.epochs[e] for e in sorted(self.epochs)]


def compute_metrics_fn(task: TaskSpec):
    def compute(prediction: EvalPrediction) -> dict[str, float]:
        preds = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        return metrics.compute(task.metrics, np.asarray(preds), np.asarray(prediction.label_ids))

    return compute


def fit(
    model,
    tokenizer,
    train_dataset: datasets.Dataset,
    eval_datasets: Mapping[str, datasets.Dataset],
    task: TaskSpec,
    trainer_args: Mapping[str, Any],
    output_dir: str | Path,
    seed: int,
    report_to: str | list[str] = "none",
    run_name: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train and evaluate after every epoch; returns (per-epoch history, the Trainer's train metrics)."""
    args = TrainingArguments(
        output_dir=str(output_dir),
        seed=seed,
        report_to=report_to,
        run_name=run_name,
        **dict(trainer_args),
    )
    history = EpochHistory(list(eval_datasets))
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=dict(eval_datasets),
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_metrics_fn(task),
        callbacks=[history],
    )
    result = trainer.train()
    return history.history(), dict(result.metrics)

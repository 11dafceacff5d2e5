"""What every model kind provides: load the model, frame the task's data, fit and evaluate.

A run (``beft.run``) loads the splits and the regime's subset, asks the pipeline for the model, applies the method
(shared by all kinds), asks the pipeline to frame the data, then to fit; ``beft.rank`` reuses the framed training
data and the training loss for its Fisher pass.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from beft.data.tasks import TaskSpec
from beft.training.trainer import FitSettings

History = list[dict[str, Any]]
__all__ = ["FitSettings", "History", "Pipeline", "PreparedData"]


@dataclass
class PreparedData:
    """The framed data of a run: ``train`` is None when the method trains nothing (zero-shot, in-context learning).
    ``collate`` and ``loss`` batch training rows and compute the training objective (the Fisher pass uses them);
    ``eval_collate`` batches evaluation rows where the kind needs its own (decoders: every candidate);
    ``eval_ids`` names each evaluated example (its id in the predictions files)."""

    train: Any
    eval: dict[str, Any]
    collate: Callable[[list[dict]], dict[str, torch.Tensor]]
    loss: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]
    eval_collate: Callable[[list[dict]], dict[str, torch.Tensor]] | None = None
    eval_ids: dict[str, list[Any]] = field(default_factory=dict)


class Pipeline(abc.ABC):
    kind: str
    task_kinds: tuple[str, ...]  # the task kinds (conf/task/*.yaml `kind`) this model kind can run
    saves_model_artifact: bool  # a run without a bias adapter saves its trained tensors (beft.predict reads them)

    def task_spec(self, task_cfg: Mapping[str, Any]) -> TaskSpec:
        """The task as this kind runs it (a task's ``decoder:`` block applies to decoders only)."""
        return TaskSpec.from_config(task_cfg, pipeline=self.kind)

    @abc.abstractmethod
    def valid_metrics(self, task: TaskSpec) -> list[str]:
        """The metrics a run of ``task`` can report."""

    @abc.abstractmethod
    def load(self, model_cfg: Mapping[str, Any], task: TaskSpec) -> tuple[nn.Module, Any, str]:
        """(model, tokenizer, source folder or hub id). Seed the RNGs first: an encoder's head is random."""

    @abc.abstractmethod
    def skeleton(self, model_cfg: Mapping[str, Any], task: TaskSpec) -> nn.Module:
        """The model without weights (meta device), for the checks before anything loads."""

    @abc.abstractmethod
    def prepare_data(self, spec, splits: Mapping[str, Any], indices: list[int], tokenizer) -> PreparedData:
        """Frame the regime's training subset and the evaluation splits (tokenised, cached)."""

    @abc.abstractmethod
    def fit(
        self, model: nn.Module, tokenizer, data: PreparedData, task: TaskSpec, settings: FitSettings
    ) -> tuple[History, dict[str, Any]]:
        """Train and evaluate; (per-epoch history, the Trainer's train metrics with the zero-gradient ``warnings`` and
        the final evaluation's per-example ``outputs`` of every split)."""

    @abc.abstractmethod
    def prediction_rows(self, task: TaskSpec, data: PreparedData, outputs: Mapping[str, Any]) -> dict[str, list[dict]]:
        """Each evaluation split's predictions file rows (beft/predictions.py) from ``fit``'s ``outputs``."""

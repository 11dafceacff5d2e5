"""Encoders with a sequence-classification head (BERT, RoBERTa, MiniLM): classification and regression tasks.

The task's text fields are tokenised (cached, ``beft.data.features``) and the shared Trainer loop evaluates every
split after every epoch (docs/experiments.md §3).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn
from transformers import DataCollatorWithPadding

from beft import predictions
from beft.data import features
from beft.data.tasks import TaskSpec
from beft.models import loading
from beft.pipelines.base import FitSettings, History, Pipeline, PreparedData
from beft.training import metrics, trainer


class EncoderPipeline(Pipeline):
    kind = "encoder"
    task_kinds = ("classification", "regression")
    saves_model_artifact = True  # beft.predict labels test sets with it

    def valid_metrics(self, task: TaskSpec) -> list[str]:
        return sorted(metrics.METRICS)

    def load(self, model_cfg: Mapping[str, Any], task: TaskSpec) -> tuple[nn.Module, Any, str]:
        return loading.load_encoder(model_cfg, task)

    def skeleton(self, model_cfg: Mapping[str, Any], task: TaskSpec) -> nn.Module:
        return loading.encoder_skeleton(model_cfg, task)

    def prepare_data(self, spec, splits: Mapping[str, Any], indices: list[int], tokenizer) -> PreparedData:
        data, task = spec.data, spec.task

        def featurise(ds):
            return features.tokenize(ds, task.text_fields, tokenizer, data.max_length, data.padding, data.cache_dir)

        train = featurise(splits["train"]).select(indices)
        evals = {key: featurise(splits[split]) for key, split in task.eval_splits.items()}
        ids = {key: predictions.example_ids(splits[split]) for key, split in task.eval_splits.items()}
        return PreparedData(train, evals, DataCollatorWithPadding(tokenizer), lambda m, batch: m(**batch).loss, ids)

    def fit(
        self, model: nn.Module, tokenizer, data: PreparedData, task: TaskSpec, settings: FitSettings
    ) -> tuple[History, dict[str, Any]]:
        return trainer.fit(model, tokenizer, data.train, data.eval, task, settings)

    def prediction_rows(self, task: TaskSpec, data: PreparedData, outputs: Mapping[str, Any]) -> dict[str, list[dict]]:
        """The head's outputs: class probabilities, or the regression score."""
        rows = predictions.regression_rows if task.is_regression else predictions.classification_rows
        return {key: rows(data.eval_ids[key], *outputs[key]) for key in outputs}

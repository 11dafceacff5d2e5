"""Encoders (BERT, RoBERTa, XLM-R, MiniLM): a sequence-classification head for classification and regression tasks, a
multiple-choice head for multiple-choice ones (each (question, choice) pair encoded, one logit per choice).

The task's text fields are tokenised (cached, ``beft.data.features``) and the shared Trainer loop evaluates every
split (or ``data.num_eval`` examples of it, drawn with the seed) after every epoch (docs/experiments.md §3).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn
from transformers import DataCollatorForMultipleChoice, DataCollatorWithPadding

from beft import predictions
from beft.data import features, regimes
from beft.data.tasks import TaskSpec
from beft.models import loading
from beft.pipelines.base import FitSettings, History, Pipeline, PreparedData
from beft.training import metrics, trainer


class EncoderPipeline(Pipeline):
    kind = "encoder"
    task_kinds = ("classification", "regression", "multiple_choice")
    saves_model_artifact = True  # beft.predict labels test sets with it

    def valid_metrics(self, task: TaskSpec) -> list[str]:
        return sorted(metrics.METRICS)

    def load(self, model_cfg: Mapping[str, Any], task: TaskSpec) -> tuple[nn.Module, Any, str]:
        return loading.load_encoder(model_cfg, task)

    def skeleton(self, model_cfg: Mapping[str, Any], task: TaskSpec) -> nn.Module:
        return loading.encoder_skeleton(model_cfg, task)

    def prepare_data(self, spec, splits: Mapping[str, Any], indices: list[int], tokenizer) -> PreparedData:
        data, task = spec.data, spec.task

        choices = task.task_kind == "multiple_choice"

        def featurise(ds):
            if choices:  # the question is the one text field, the choices the one list field
                question, options = task.text_fields[0], task.list_fields[0]
                return features.tokenize_choices(
                    ds, question, options, tokenizer, data.max_length, data.padding, data.cache_dir
                )
            return features.tokenize(ds, task.text_fields, tokenizer, data.max_length, data.padding, data.cache_dir)

        train = featurise(splits["train"]).select(indices)
        evals, ids = {}, {}
        for key, split in task.eval_splits.items():  # at most data.num_eval examples, drawn as decoders draw them
            feats = featurise(splits[split])  # the whole split: its cache serves every subset
            rows = None if data.num_eval is None else regimes.eval_indices(len(feats), data.num_eval, spec.seed)
            evals[key] = feats if rows is None else feats.select(rows)
            ids[key] = predictions.example_ids(splits[split], rows)
        collate = (DataCollatorForMultipleChoice if choices else DataCollatorWithPadding)(tokenizer)
        return PreparedData(train, evals, collate, lambda m, batch: m(**batch).loss, eval_ids=ids)

    def fit(
        self, model: nn.Module, tokenizer, data: PreparedData, task: TaskSpec, settings: FitSettings
    ) -> tuple[History, dict[str, Any]]:
        return trainer.fit(model, tokenizer, data.train, data.eval, task, settings, data.collate)

    def prediction_rows(self, task: TaskSpec, data: PreparedData, outputs: Mapping[str, Any]) -> dict[str, list[dict]]:
        """The head's outputs: class probabilities, or the regression score."""
        rows = predictions.regression_rows if task.is_regression else predictions.classification_rows
        return {key: rows(data.eval_ids[key], *outputs[key]) for key in outputs}

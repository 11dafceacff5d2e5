"""Autoregressive LMs framed with prompts (OPT, LLaMA-2, GPT-J, DeepSeek-Coder, SmolLM2; docs/experiments.md §6).

Every example becomes prompt rows with one candidate per option (``beft.data.prompts``, docs/templates.md); the
training objective depends on the task kind (``beft.training.decoder``) and evaluation runs once, after the last epoch,
on at most ``data.num_eval`` examples per split.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from torch import nn

from beft import predictions
from beft.data import prompts, regimes
from beft.data.tasks import TaskSpec
from beft.models import loading
from beft.pipelines.base import FitSettings, History, Pipeline, PreparedData
from beft.training import decoder, metrics

log = logging.getLogger(__name__)


class DecoderPipeline(Pipeline):
    kind = "decoder"
    task_kinds = ("classification", "multiple_choice", "generation")
    saves_model_artifact = False  # beft.predict labels with an encoder head only; decoders score prompts in beft.train

    def valid_metrics(self, task: TaskSpec) -> list[str]:
        """Accuracy of the chosen candidate; F1 and exact match of a generated answer."""
        return list(metrics.DECODER_METRICS.get(task.task_kind, ()))

    def load(self, model_cfg: Mapping[str, Any], task: TaskSpec) -> tuple[nn.Module, Any, str]:
        return loading.load_decoder(model_cfg)

    def skeleton(self, model_cfg: Mapping[str, Any], task: TaskSpec) -> nn.Module:
        return loading.decoder_skeleton(model_cfg)

    def prepare_data(self, spec, splits: Mapping[str, Any], indices: list[int], tokenizer) -> PreparedData:
        """The regime's training subset, and evaluation subsets of at most ``data.num_eval`` examples
        (``RandomState(seed).permutation(N)[:num_eval]``, docs/experiments.md §6.2), with demonstrations for ICL."""
        data, task = spec.data, spec.task
        bos = spec.model.get("bos_token_id")  # OPT: the reference's token 0 (conf/model/opt_*.yaml)

        def encode(ds):
            return prompts.encode_split(ds, task.template, tokenizer, data.max_length, data.cache_dir, bos)

        # only the regime's subset is encoded: the whole split would be ~100k rows (ReCoRD: x ~14 candidates each)
        train = _with_gold(encode(splits["train"].select(indices))) if spec.trains else None
        num_demos = int(spec.method.get("num_demos") or 0)
        evals, ids = {}, {}
        for key, split in task.eval_splits.items():
            positions = regimes.eval_indices(len(splits[split]), data.num_eval, spec.seed)
            ds, ids[key] = splits[split].select(positions), predictions.example_ids(splits[split], positions)
            evals[key] = (
                prompts.icl_split(
                    ds, splits["train"], task.template, tokenizer, data.max_length, num_demos, spec.seed, bos
                )
                if num_demos
                else encode(ds)
            )
        objective, shared = decoder.OBJECTIVES[task.task_kind], spec.decoder.shared_prefix
        return PreparedData(
            train,
            evals,
            decoder.collator(tokenizer.pad_token_id, gold_only=objective != "classification", shared_prefix=shared),
            lambda m, batch: decoder.objective_loss(m, batch, objective),
            eval_collate=decoder.collator(tokenizer.pad_token_id, gold_only=False, shared_prefix=shared),
            eval_ids=ids,
        )

    def fit(
        self, model: nn.Module, tokenizer, data: PreparedData, task: TaskSpec, settings: FitSettings
    ) -> tuple[History, dict[str, Any]]:
        return decoder.fit(
            model, tokenizer, data.train, data.eval, task.task_kind, settings, data.collate, data.eval_collate
        )

    def prediction_rows(self, task: TaskSpec, data: PreparedData, outputs: Mapping[str, Any]) -> dict[str, list[dict]]:
        """The chosen candidate and the softmax of the candidates' scores, or the generated answer."""
        generation = task.task_kind == "generation"
        rows, gold = (predictions.generation_rows, "answers") if generation else (predictions.candidate_rows, "gold")
        return {key: rows(data.eval_ids[key], values, data.eval[key][gold]) for key, values in outputs.items()}


def _with_gold(rows):
    """Leave out training examples with no gold candidate (a DROP answer without spans, number or date; a ReCoRD
    answer no entity matches): there is no text to train on."""
    if n := sum(1 not in gold for gold in rows["gold"]):
        log.warning("%d of %d training examples have no gold candidate and are left out", n, len(rows))
        rows = rows.filter(lambda row: 1 in row["gold"])
    return rows

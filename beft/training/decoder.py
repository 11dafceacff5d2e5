"""The decoder objectives and evaluation (docs/experiments.md §6.1-6.5) on the shared Trainer loop.

Classification tasks train with cross-entropy over the candidates' scores (the mean log-probability of each
candidate's option tokens); multiple-choice and generation tasks train with teacher forcing on the gold text's option
tokens. Evaluation scores every candidate and takes the most likely (ties: the first), or decodes greedily and scores
the answer with SQuAD token F1 / exact match. Batches are padded on the left, to a multiple of 8, so every sequence's
option tokens are its last ones and only those positions need logits.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import datasets
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from beft.data.prompts import MAX_NEW_TOKENS
from beft.training import candidates, metrics
from beft.training.trainer import FiniteLossTrainer, FitSettings, Monitors

log = logging.getLogger(__name__)

OBJECTIVES = {"classification": "classification", "multiple_choice": "teacher_forcing", "generation": "teacher_forcing"}


def _pad_left(seqs: Sequence[Sequence[int]], pad_id: int, multiple: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    width = -(-width // multiple) * multiple
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s) :] = torch.as_tensor(s)
            mask[i, width - len(s) :] = 1
    return ids, mask


class CandidateCollator:
    """Rows (``beft.data.prompts``) -> one batch of sequences. ``gold_only`` keeps each example's first gold text
    (teacher forcing); otherwise every candidate goes in (classification training, evaluation)."""

    def __init__(self, pad_id: int, gold_only: bool) -> None:
        self.pad_id = pad_id
        self.gold_only = gold_only

    def __call__(self, rows: list[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        seqs, opt, owner, counts, gold = [], [], [], [], []
        for i, row in enumerate(rows):
            picks = [row["gold"].index(1)] if self.gold_only else range(len(row["input_ids"]))
            for c in picks:
                seqs.append(row["input_ids"][c])
                opt.append(row["option_len"][c])
                owner.append(i)
            counts.append(len(picks))
            gold.append(row["gold"].index(1) if 1 in row["gold"] else -100)
        ids, mask = _pad_left(seqs, self.pad_id)
        positions = torch.arange(ids.shape[1])
        option_mask = positions.unsqueeze(0) >= ids.shape[1] - torch.as_tensor(opt).unsqueeze(1)
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "option_mask": option_mask,
            "owner": torch.as_tensor(owner),
            "num_candidates": torch.as_tensor(counts),
            "gold": torch.as_tensor(gold),
        }


def collator(pad_id: int, gold_only: bool, shared_prefix: bool):
    """The batches of an objective: an example's candidates packed into one sequence (``decoder.shared_prefix``), or
    one sequence per candidate; teacher forcing trains on one sequence per example either way."""
    if shared_prefix and not gold_only:
        return candidates.SharedPrefixCollator(pad_id)
    return CandidateCollator(pad_id, gold_only)


def _last_positions(ids: torch.Tensor, keep: int) -> torch.Tensor:
    """``logits_to_keep`` for the last ``keep`` positions, as indices: the model then gathers those hidden states into
    a contiguous tensor, and its output layer is one matrix product (an int slice is a strided view, for which torch
    multiplies every row of the batch with its own copy of the output layer)."""
    return torch.arange(ids.shape[1] - keep, ids.shape[1], device=ids.device)


def option_logprobs(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p of every option token, the candidate each belongs to). Logits are computed for the last positions only
    (``logits_to_keep``): left padding puts every option token there."""
    if candidates.is_packed(batch):
        return candidates.option_logprobs(model, batch)
    ids, mask, option_mask = batch["input_ids"], batch["attention_mask"], batch["option_mask"]
    keep = int(option_mask.sum(1).max()) + 1
    kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "use_cache": False}
    base = model.get_base_model() if candidates.prefix_tokens(model) else model  # peft's wrapper takes **kwargs
    params = inspect.signature(base.forward).parameters
    if "position_ids" in params:  # real tokens only, as without padding (peft shifts them past a prefix)
        kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    if "logits_to_keep" in params:
        kwargs["logits_to_keep"] = _last_positions(ids, keep)
    logits = model(**kwargs).logits[:, -keep:-1]  # position t predicts token t + 1
    targets, target_mask = ids[:, -keep + 1 :], option_mask[:, -keep + 1 :]
    picked = logits[target_mask].float().log_softmax(-1)
    logp = picked.gather(-1, targets[target_mask].unsqueeze(-1)).squeeze(-1)
    rows = torch.arange(ids.shape[0], device=ids.device).unsqueeze(1).expand_as(target_mask)[target_mask]
    return logp, rows


def candidate_scores(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The mean log-probability of each sequence's option tokens (the candidate score, docs/experiments.md §6.1)."""
    logp, rows = option_logprobs(model, batch)
    n = int(batch["num_candidates"].sum())
    total = torch.zeros(n, device=logp.device).index_add(0, rows, logp)
    count = torch.zeros(n, device=logp.device).index_add(0, rows, torch.ones_like(logp))
    return total / count


def _per_example(scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Candidate scores as an (examples x max candidates) matrix, -inf where an example has fewer candidates."""
    out = torch.full((len(counts), int(counts.max())), float("-inf"), device=scores.device, dtype=scores.dtype)
    start = 0
    for i, n in enumerate(counts.tolist()):
        out[i, :n] = scores[start : start + n]
        start += n
    return out


def objective_loss(model: nn.Module, batch: Mapping[str, torch.Tensor], objective: str) -> torch.Tensor:
    """Cross-entropy over the candidates' scores (classification), or the token-level cross-entropy over every option
    token of the batch (teacher forcing on the gold text)."""
    if objective == "classification":
        scores = _per_example(candidate_scores(model, batch), batch["num_candidates"])
        return F.cross_entropy(scores, batch["gold"])
    logp, _ = option_logprobs(model, batch)
    return -logp.mean()


class DecoderTrainer(FiniteLossTrainer):
    """The shared Trainer with the decoder objectives as its loss."""

    def __init__(self, *args: Any, objective: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.objective = objective
        self.loss_is_scaled_for_ga = False  # our loss is a per-batch mean: the Trainer divides by accumulation steps

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = objective_loss(model, inputs, self.objective)
        return (loss, {"loss": loss}) if return_outputs else loss


@torch.no_grad()
def evaluate_candidates(
    model: nn.Module,
    rows: datasets.Dataset,
    pad_id: int,
    batch_size: int,
    collate: Callable | None = None,
    outputs: list | None = None,
) -> dict[str, float]:
    """Accuracy: the most likely candidate (ties: the first) is one of the gold ones. ``collate`` batches every
    candidate (``collator``; default: one sequence per candidate); ``outputs`` receives each example's candidate
    scores."""
    model.eval()
    collate, device, correct = collate or CandidateCollator(pad_id, gold_only=False), _device(model), 0
    for start in tqdm(range(0, len(rows), batch_size), desc="Scoring candidates", leave=False):
        chunk = _rows(rows, start, batch_size)
        batch = {k: v.to(device) for k, v in collate(chunk).items()}
        scores = _per_example(candidate_scores(model, batch), batch["num_candidates"])
        picked = scores.argmax(-1).tolist()
        correct += sum(row["gold"][p] for row, p in zip(chunk, picked, strict=True))
        if outputs is not None:
            outputs += [s[:n].tolist() for s, n in zip(scores.cpu(), batch["num_candidates"].tolist(), strict=True)]
    return {"accuracy": correct / len(rows)}


def _rows(rows: datasets.Dataset, start: int, size: int) -> list[dict[str, Any]]:
    return [rows[i] for i in range(start, min(start + size, len(rows)))]


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate_generation(
    model: nn.Module, tokenizer, rows: datasets.Dataset, batch_size: int, max_length: int, max_new_tokens: int
) -> tuple[dict[str, float], list[str]]:
    """Greedy decoding, stopped at a newline or EOS; SQuAD token F1 and exact match against all gold answers."""
    model.eval()
    device, pad_id = _device(model), tokenizer.pad_token_id
    newline = tokenizer("\n", add_special_tokens=False).input_ids[-1]
    stop = [t for t in (newline, tokenizer.eos_token_id) if t is not None]
    predictions: list[str] = []
    for start in tqdm(range(0, len(rows), batch_size), desc="Generating", leave=False):
        batch = _rows(rows, start, batch_size)
        ids, mask = _pad_left([r["prompt_ids"] for r in batch], pad_id, multiple=1)
        budget = max(1, min(max_new_tokens, max_length - ids.shape[1]))
        out = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=budget,
            do_sample=False,
            num_beams=1,
            eos_token_id=stop,
            pad_token_id=pad_id,
        )
        predictions += [t.strip() for t in tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)]
    answers = [r["answers"] for r in rows]
    return {
        "f1": metrics.mean_over(metrics.token_f1, predictions, answers),
        "exact_match": metrics.mean_over(metrics.exact_match, predictions, answers),
    }, predictions


def evaluate(
    model: nn.Module,
    tokenizer,
    rows: datasets.Dataset,
    kind: str,
    batch_size: int,
    max_length: int,
    collate: Callable | None = None,
    outputs: list | None = None,
) -> dict[str, float]:
    """The split's metrics; ``outputs`` receives each example's candidate scores, or its generated text."""
    if kind == "generation":
        scores, texts = evaluate_generation(model, tokenizer, rows, batch_size, max_length, MAX_NEW_TOKENS)
        if outputs is not None:
            outputs += texts
        return scores
    return evaluate_candidates(model, rows, tokenizer.pad_token_id, batch_size, collate, outputs)


def fit(
    model: nn.Module,
    tokenizer,
    train_rows: datasets.Dataset | None,
    eval_rows: Mapping[str, datasets.Dataset],
    kind: str,
    settings: FitSettings,
    collate: Callable,
    eval_collate: Callable,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train (unless ``train_rows`` is None: zero-shot and ICL), then evaluate once, after the last epoch; ``collate``
    and ``eval_collate`` batch the training and evaluation rows (``collator``).

    Returns the history (one entry: the final epoch's training loss and every evaluation split's metrics) and the
    Trainer's train metrics with the zero-gradient ``warnings`` and the ``outputs`` of every split (per example: the
    candidate scores, or the generated text).
    """
    monitors = Monitors.build(settings, list(eval_rows))
    train_metrics: dict[str, Any] = {}
    epoch = 0
    if train_rows is not None:
        trainer = DecoderTrainer(
            model=model,
            args=monitors.args,
            train_dataset=train_rows,
            data_collator=collate,
            processing_class=tokenizer,
            callbacks=monitors.callbacks,
            optimizer_cls_and_kwargs=monitors.optimizer,
            objective=OBJECTIVES[kind],
        )
        train_metrics = trainer.train().metrics
        epoch = round(trainer.state.epoch or 0)
    entry = monitors.history.epochs.setdefault(epoch, {"epoch": epoch})
    if "train_loss" in train_metrics:  # the mean over all steps (the logged loss covers the last logging window only)
        entry["train_loss_mean"] = float(train_metrics["train_loss"])
    batch_size = monitors.args.per_device_eval_batch_size
    outputs: dict[str, list] = {key: [] for key in eval_rows}
    for key, rows in eval_rows.items():
        entry[key] = evaluate(model, tokenizer, rows, kind, batch_size, settings.max_length, eval_collate, outputs[key])
        log.info("%s after epoch %d: %s", key, epoch, entry[key])
    return [entry], {**monitors.train_metrics(train_metrics), "outputs": outputs}

"""Decoder scoring and objectives (docs/experiments.md §6.1-6.5): candidate scores in left-padded batches, accuracy,
the two training losses, and SQuAD token F1 / exact match."""

from __future__ import annotations

import datasets
import pytest
import torch
import torch.nn.functional as F

from beft.models import targets
from beft.training import decoder, metrics
from tests.models.tiny import tiny_gptj, tiny_llama, tiny_opt

PAD = 1


def seq(length: int, seed: int) -> list[int]:
    return torch.randint(4, 100, (length,), generator=torch.Generator().manual_seed(seed)).tolist()


# rows as beft.data.prompts builds them: candidates of different lengths, option tokens = the last option_len
ROWS = [
    {"input_ids": [seq(9, 1), seq(5, 2), seq(12, 3)], "option_len": [2, 1, 4], "gold": [0, 0, 1]},
    {"input_ids": [seq(3, 4), seq(17, 5), seq(6, 6)], "option_len": [1, 3, 5], "gold": [1, 0, 0]},
]


@pytest.fixture(params=["opt", "llama", "gptj"])
def model(request):
    torch.manual_seed(0)
    return {"opt": tiny_opt, "llama": tiny_llama, "gptj": tiny_gptj}[request.param]().eval()


def alone(model, ids: list[int], n_opt: int) -> torch.Tensor:
    """log p of the last ``n_opt`` tokens, the sequence run by itself (no padding, no mask)."""
    with torch.no_grad():
        logp = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    return torch.stack([logp[t - 1, ids[t]] for t in range(len(ids) - n_opt, len(ids))])


def test_batched_left_padded_scores_equal_scores_alone(model):
    batch = decoder.CandidateCollator(PAD, gold_only=False)(ROWS)
    assert batch["input_ids"].shape == (6, 24)  # padded on the left to a multiple of 8
    assert (batch["input_ids"][:, 0] == PAD).all() and batch["attention_mask"][:, -1].all()
    assert batch["option_mask"].sum(1).tolist() == [2, 1, 4, 1, 3, 5]
    assert batch["option_mask"][:, -1].all()  # every option token is at the end
    with torch.no_grad():
        scores = decoder.candidate_scores(model, batch)
    expected = [alone(model, ids, n).mean() for row in ROWS for ids, n in zip(row["input_ids"], row["option_len"],
                                                                              strict=True)]  # fmt: skip
    assert torch.allclose(scores, torch.stack(expected), atol=1e-5, rtol=0)


def test_score_is_the_mean_over_option_tokens_only(model):
    ids = seq(10, 7)
    scores = []
    for n in (1, 4):
        batch = decoder.CandidateCollator(PAD, gold_only=False)([{"input_ids": [ids], "option_len": [n], "gold": [1]}])
        with torch.no_grad():
            scores.append(decoder.candidate_scores(model, batch)[0])
    logp = alone(model, ids, 9)  # every token with a predecessor
    assert torch.allclose(scores[0], logp[-1:].mean(), atol=1e-5)
    assert torch.allclose(scores[1], logp[-4:].mean(), atol=1e-5)


def test_classification_loss_is_cross_entropy_over_candidate_scores(model):
    batch = decoder.CandidateCollator(PAD, gold_only=False)(ROWS)
    assert batch["gold"].tolist() == [2, 0] and batch["num_candidates"].tolist() == [3, 3]
    with torch.no_grad():
        loss = decoder.objective_loss(model, batch, "classification")
    scores = torch.stack([torch.stack([alone(model, ids, n).mean() for ids, n in zip(row["input_ids"],
                          row["option_len"], strict=True)]) for row in ROWS])  # fmt: skip
    assert torch.allclose(loss, F.cross_entropy(scores, torch.tensor([2, 0])), atol=1e-5)


def test_teacher_forcing_loss_is_the_mean_nll_of_the_gold_option_tokens(model):
    batch = decoder.CandidateCollator(PAD, gold_only=True)(ROWS)
    assert batch["input_ids"].shape[0] == 2  # the gold sequence of each example only
    with torch.no_grad():
        loss = decoder.objective_loss(model, batch, "teacher_forcing")
    gold = torch.cat([alone(model, ROWS[0]["input_ids"][2], 4), alone(model, ROWS[1]["input_ids"][0], 1)])
    assert torch.allclose(loss, -gold.mean(), atol=1e-5)  # averaged over all 5 option tokens, not per example


def test_losses_train_the_bias(model):
    """Gradients reach the trainable bias (OPT's own, LLaMA's added) through both objectives."""
    for p in model.parameters():
        p.requires_grad_(False)
    targets.add_biases(model, ["v"])
    bias = targets.role_biases(model, "v")[0].requires_grad_(True)
    for objective, gold_only in (("classification", False), ("teacher_forcing", True)):
        bias.grad = None
        decoder.objective_loss(model, decoder.CandidateCollator(PAD, gold_only)(ROWS), objective).backward()
        assert bias.grad is not None and bias.grad.abs().sum() > 0


def fake_scores(values: list[float]):
    def scores(model, batch):
        return torch.tensor(values[: int(batch["num_candidates"].sum())], dtype=torch.float32)

    return scores


def test_accuracy_counts_the_first_of_tied_candidates_and_any_gold_one(monkeypatch):
    rows = datasets.Dataset.from_list([
        {"input_ids": [[5, 6], [5, 7], [5, 8]], "option_len": [1, 1, 1], "gold": [1, 0, 1]},  # ReCoRD: two gold
        {"input_ids": [[5, 6], [5, 7]], "option_len": [1, 1], "gold": [0, 1]},  # tie: the first (wrong) wins
        {"input_ids": [[5, 6], [5, 7]], "option_len": [1, 1], "gold": [1, 0]},  # tie: the first (right) wins
        {"input_ids": [[5, 6], [5, 7], [5, 8]], "option_len": [1, 1, 1], "gold": [0, 1, 0]},
    ])  # fmt: skip
    # per example: argmax 2 (gold), tie -> 0 (not gold), tie -> 0 (gold), argmax 0 (not gold)
    monkeypatch.setattr(decoder, "candidate_scores", fake_scores([-3.0, -2.0, -1.0, -1.0, -1.0, -2.0, -2.0,
                                                                   -0.5, -0.7, -0.9]))  # fmt: skip
    model = torch.nn.Linear(1, 1)
    assert decoder.evaluate_candidates(model, rows, PAD, batch_size=16) == {"accuracy": 0.5}
    shared = decoder.collator(PAD, gold_only=False, shared_prefix=True)  # one packed sequence per example
    assert decoder.evaluate_candidates(model, rows, PAD, batch_size=16, collate=shared) == {"accuracy": 0.5}


def test_accuracy_of_a_real_model_matches_its_scores(model):
    rows = datasets.Dataset.from_list(ROWS)
    batch = decoder.CandidateCollator(PAD, gold_only=False)(ROWS)
    with torch.no_grad():
        picked = decoder.candidate_scores(model, batch).view(2, 3).argmax(-1).tolist()
    expected = sum(row["gold"][p] for row, p in zip(ROWS, picked, strict=True)) / 2
    assert decoder.evaluate_candidates(model, rows, PAD, batch_size=1) == {"accuracy": expected}
    shared = decoder.collator(PAD, gold_only=False, shared_prefix=True)
    assert decoder.evaluate_candidates(model, rows, PAD, batch_size=2, collate=shared) == {"accuracy": expected}


class ScriptedLM(torch.nn.Module):
    """Stands in for a causal LM's ``generate``: returns the prompts followed by fixed continuations."""

    def __init__(self, continuations: list[list[int]]) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.continuations = continuations
        self.calls: list[dict] = []

    def generate(self, input_ids, attention_mask, **kwargs):
        self.calls.append({"input_ids": input_ids, "attention_mask": attention_mask, **kwargs})
        width = max(len(c) for c in self.continuations)
        new = torch.tensor([c + [kwargs["pad_token_id"]] * (width - len(c)) for c in self.continuations])
        return torch.cat([input_ids, new], dim=1)


def test_generation_decodes_greedily_until_newline_and_scores_f1(smollm2_tokenizer):
    tok = smollm2_tokenizer
    rows = datasets.Dataset.from_list([
        {"prompt_ids": tok("Question: Who won?\nAnswer:").input_ids, "answers": ["Denver Broncos", "Broncos"]},
        {"prompt_ids": tok("Answer:").input_ids, "answers": ["Carolina Panthers"]},
    ])  # fmt: skip
    newline = tok("\n", add_special_tokens=False).input_ids[-1]
    model = ScriptedLM([
        tok(" the Denver Broncos", add_special_tokens=False).input_ids + [newline],  # stopped at the newline
        tok(" Panthers", add_special_tokens=False).input_ids + [tok.eos_token_id],  # stopped at EOS
    ])  # fmt: skip
    scores, predictions = decoder.evaluate_generation(model, tok, rows, batch_size=2, max_length=20, max_new_tokens=50)
    assert predictions == ["the Denver Broncos", "Panthers"]  # new tokens only, special tokens dropped, stripped
    assert scores == {"f1": pytest.approx((1.0 + 2 / 3) / 2), "exact_match": 0.5}
    call = model.calls[0]
    assert call["do_sample"] is False and call["num_beams"] == 1
    assert set(call["eos_token_id"]) == {newline, tok.eos_token_id}
    width = len(rows[0]["prompt_ids"])
    assert call["input_ids"].shape == (2, width) and call["max_new_tokens"] == 20 - width  # max_length - prompt
    assert call["attention_mask"][1].tolist() == [0] * (width - len(rows[1]["prompt_ids"])) + [1] * len(
        rows[1]["prompt_ids"])  # left padding  # fmt: skip


# --- SQuAD v1.1 token F1 and exact match (docs/experiments.md §6.5) ---------------------------------------------------


@pytest.mark.parametrize(("prediction", "gold", "f1", "em"), [
    ("Denver Broncos", "Denver Broncos", 1.0, 1.0),
    ("the Denver Broncos!", "Denver Broncos", 1.0, 1.0),  # articles and punctuation removed, case folded
    ("Broncos", "Denver Broncos", 2 / 3, 0.0),  # precision 1, recall 1/2
    ("Denver Broncos won", "The Broncos", 0.5, 0.0),  # precision 1/3, recall 1
    ("Levi's Stadium", "Levis  Stadium", 1.0, 1.0),  # apostrophe removed, whitespace collapsed
    ("an apple a day", "apple day", 1.0, 1.0),
    ("banana", "an a the banana", 1.0, 1.0),  # only whole-word articles go
    ("Santa Clara", "Carolina Panthers", 0.0, 0.0),
    ("", "Denver Broncos", 0.0, 0.0),
    ("1745", "1745", 1.0, 1.0),
    ("24–10", "24-10", 0.0, 0.0),  # an en dash is not ASCII punctuation (as in the official script)
])  # fmt: skip
def test_token_f1_and_exact_match(prediction, gold, f1, em):
    assert metrics.token_f1(prediction, gold) == pytest.approx(f1)
    assert metrics.exact_match(prediction, gold) == em


def test_scores_take_the_best_gold_answer_and_average_over_examples():
    predictions = ["Levi's Stadium", "Broncos", ""]
    answers = [
        ["Santa Clara, California", "Levi's Stadium", "Levi's Stadium in the San Francisco Bay Area at Santa Clara"],
        ["Denver Broncos", "Broncos of Denver", "The Denver Broncos"],
        ["Carolina Panthers"],
    ]
    assert metrics.mean_over(metrics.token_f1, predictions, answers) == pytest.approx((1.0 + 2 / 3 + 0.0) / 3)
    assert metrics.mean_over(metrics.exact_match, predictions, answers) == pytest.approx(1 / 3)
    assert metrics.mean_over(metrics.token_f1, ["anything"], [[]]) == 0.0  # no gold answer: 0
    assert metrics.mean_over(metrics.token_f1, [], []) == 0.0
    with pytest.raises(ValueError):
        metrics.mean_over(metrics.token_f1, ["a", "b"], [["a"]])  # predictions and answers must pair up

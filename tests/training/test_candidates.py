"""Shared-prefix candidate scoring (``decoder.shared_prefix``, docs/architecture.md): one pack per example, short packs
sharing a row, gives the per-candidate path's option log-probabilities, losses and bias gradients, for every prompt
template, every decoder family (tiny random OPT / LLaMA with GQA / GPT-J; the real SmolLM2), both attention
implementations that take a 4D mask, added biases, LoRA and prefix tuning.

The template rows are the real texts of tests/data/test_templates.py tokenised by SmolLM2's tokenizer: in full for
SmolLM2; for the tiny models (40 positions) truncated from the left to 36 and to 16 tokens, ids folded into their
vocabulary.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from beft.data import prompts, templates
from beft.errors import ConfigError
from beft.models import methods, targets
from beft.training import candidates, decoder
from tests.data.test_templates import CASES, ids_of
from tests.models.tiny import tiny_gptj, tiny_llama, tiny_opt

PAD, TOL = 1, 1e-4
FAMILIES = {"opt": tiny_opt, "llama": tiny_llama, "gptj": tiny_gptj}
METHOD_CONF = Path(__file__).resolve().parents[2] / "conf" / "method"


def tiny(family: str, attention: str = "sdpa"):
    torch.manual_seed(0)
    model = FAMILIES[family]().eval()
    model.set_attn_implementation(attention)
    return model


def fold(row: dict, vocab: int = 100) -> dict:
    """A row with its token ids folded into a tiny vocabulary (ids 4..vocab-1; equal ids stay equal)."""
    return {**row, "input_ids": [[4 + t % (vocab - 4) for t in seq] for seq in row["input_ids"]]}


@pytest.fixture(scope="module")
def template_rows(smollm2_tokenizer) -> dict[str, list[dict]]:
    """Per template case: its rows at max_length 2048 (``full``) and truncated to 36 and 16 tokens (``short``)."""
    out = {}
    for case in CASES:
        framed = templates.TEMPLATES[case[0]](case[1])
        out[ids_of(case)] = {
            "full": [prompts.Encoder(smollm2_tokenizer, 2048).encode(framed)],
            "short": [fold(prompts.Encoder(smollm2_tokenizer, n).encode(framed)) for n in (36, 16)],
        }
    return out


def both_scores(model, rows: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    per_candidate = decoder.candidate_scores(model, decoder.CandidateCollator(PAD, gold_only=False)(rows))
    shared = decoder.candidate_scores(model, candidates.SharedPrefixCollator(PAD)(rows))
    return per_candidate, shared


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("case", CASES, ids=ids_of)
def test_option_scores_equal_the_per_candidate_path_for_every_template(family, case, template_rows):
    rows = template_rows[ids_of(case)]["short"]
    with torch.no_grad():
        per_candidate, shared = both_scores(tiny(family), rows)
    assert shared.shape == per_candidate.shape == (sum(len(r["input_ids"]) for r in rows),)
    torch.testing.assert_close(shared, per_candidate, atol=TOL, rtol=0)


def test_packing_keeps_the_shared_tokens_once_with_continued_positions():
    rows = [{"input_ids": [[7, 8, 9, 5], [7, 8, 9, 6, 6], [7, 8, 2, 3]], "option_len": [1, 2, 2], "gold": [0, 1, 0]}]
    batch = candidates.SharedPrefixCollator(PAD)(rows)
    # shared: 7 8 (the third candidate differs at its third token, before its option); then each candidate's rest
    assert batch["input_ids"][0, -9:].tolist() == [7, 8, 9, 5, 9, 6, 6, 2, 3]
    assert batch["segments"][0, -9:].tolist() == [0, 0, 1, 1, 2, 2, 2, 3, 3]
    assert batch["position_ids"][0, -9:].tolist() == [0, 1, 2, 3, 2, 3, 4, 2, 3]
    assert batch["input_ids"].shape == (1, 16) and (batch["segments"][0, :7] == candidates.PAD_SEGMENT).all()
    assert batch["target_ids"].tolist() == [5, 6, 6, 2, 3]
    predicting = batch["kept_cols"][batch["target_kept"]] - 7
    assert predicting.tolist() == [2, 4, 5, 1, 7]  # the token before each option token
    assert batch["target_candidates"].tolist() == [0, 1, 1, 2, 2] and batch["gold"].tolist() == [1]


def test_short_packs_share_a_row_and_see_only_their_own_example():
    rows = [
        {"input_ids": [[7, 8, 9, 5], [7, 8, 9, 6]], "option_len": [1, 1], "gold": [1, 0]},  # pack: 7 8 9 5 6
        {"input_ids": [[3, 2], [3, 4]], "option_len": [1, 1], "gold": [0, 1]},  # pack: 3 2 4
        {"input_ids": [[9, 9, 9, 9, 9, 1], [9, 9, 9, 9, 9, 2]], "option_len": [1, 1], "gold": [1, 0]},  # 7 tokens
    ]
    batch = candidates.SharedPrefixCollator(PAD)(rows)
    assert batch["input_ids"].shape == (2, 8)  # the longest pack (7) alone, then the 5- and 3-token packs together
    assert batch["input_ids"][1].tolist() == [7, 8, 9, 5, 6, 3, 2, 4]
    assert batch["examples"][1].tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    assert batch["position_ids"][1].tolist() == [0, 1, 2, 3, 3, 0, 1, 1]
    assert batch["target_candidates"].tolist() == [0, 1, 2, 3, 4, 5] and batch["gold"].tolist() == [0, 1, 0]
    mask = candidates.block_mask(batch["examples"], batch["segments"], 0, "bool", torch.float32)[1, 0]
    assert not mask[5:, :5].any() and mask[7].tolist() == [0, 0, 0, 0, 0, 1, 0, 1]


def test_the_mask_shows_shared_tokens_and_the_own_candidate_only():
    segments = torch.tensor([[-1, 0, 0, 1, 1, 2]])
    examples = torch.tensor([[-1, 0, 0, 0, 0, 0]])  # padding, then one example
    mask = candidates.block_mask(examples, segments, 0, "bool", torch.float32)[0, 0].int().tolist()
    assert mask == [
        [1, 0, 0, 0, 0, 0],  # padding sees itself only
        [0, 1, 0, 0, 0, 0],
        [0, 1, 1, 0, 0, 0],
        [0, 1, 1, 1, 0, 0],
        [0, 1, 1, 1, 1, 0],
        [0, 1, 1, 0, 0, 1],  # candidate 2 skips candidate 1
    ]
    additive = candidates.block_mask(examples, segments, 2, "float", torch.float32)[0, 0]
    assert additive.shape == (6, 8) and (additive[:, :2] == 0).all()  # a trained prefix is seen by every token
    assert additive[5, 2 + 3] == torch.finfo(torch.float32).min  # candidate 2 still skips candidate 1


@pytest.mark.parametrize("family", FAMILIES)
def test_eager_attention_takes_the_additive_mask(family, template_rows):
    rows = [r for rows in template_rows.values() for r in rows["short"]]
    with torch.no_grad():
        per_candidate, shared = both_scores(tiny(family, "eager"), rows)
    torch.testing.assert_close(shared, per_candidate, atol=TOL, rtol=0)


def test_an_attention_without_4d_masks_is_refused_in_one_line():
    model = tiny("llama")
    model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ConfigError, match="set decoder.shared_prefix=false"):
        candidates.mask_kind(model)


def with_method(family: str, method: str):
    """A tiny model with ``method`` applied as a run applies it (an added b_v for ``beft``): (model, trained)."""
    model = tiny(family)
    if method == "beft":
        targets.add_biases(model, ["v"])
    cfg = OmegaConf.to_container(OmegaConf.load(METHOD_CONF / f"{method}.yaml"))
    trainable = methods.apply_method(model, cfg, {"name": "v", "roles": ["v"]}, seed=0)
    return (trainable.wrapper or model).eval(), trainable.params


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", ["beft", "lora", "prefix"])
def test_training_loss_and_gradients_equal_the_per_candidate_path(family, method, template_rows):
    # several candidates, and room in the 40 positions for prefix tuning's 5 (under method.positions=after_prefix)
    rows = [r for rows in template_rows.values() for r in rows["short"]
            if len(r["input_ids"]) > 1 and max(map(len, r["input_ids"])) <= 32]  # fmt: skip
    assert len(candidates.SharedPrefixCollator(PAD)(rows)["input_ids"]) < len(rows)  # some rows hold several packs
    model, params = with_method(family, method)
    grads = []
    for collate in (decoder.CandidateCollator(PAD, gold_only=False), candidates.SharedPrefixCollator(PAD)):
        model.zero_grad()
        loss = decoder.objective_loss(model, collate(rows), "classification")
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in params]))
    (loss_a, grads_a), (loss_b, grads_b) = grads
    torch.testing.assert_close(loss_b, loss_a, atol=TOL, rtol=0)
    assert any(g.abs().sum() > 0 for g in grads_a)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(b, a, atol=TOL, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_prefix_tuning_scores_ignore_left_padding(family):
    """Positions count real tokens only (the prefix hook of models/positions.py), whatever the left padding."""
    model, _ = with_method(family, "prefix")
    short = {"input_ids": [[5, 6, 7, 8]], "option_len": [2], "gold": [1]}
    long = {"input_ids": [list(range(10, 30))], "option_len": [3], "gold": [1]}
    collate = decoder.CandidateCollator(PAD, gold_only=False)
    with torch.no_grad():
        alone = decoder.candidate_scores(model, collate([short]))
        padded = decoder.candidate_scores(model, collate([short, long]))[:1]
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=0)


def test_the_collator_follows_the_setting_and_teacher_forcing_keeps_one_sequence():
    assert isinstance(decoder.collator(PAD, gold_only=False, shared_prefix=True), candidates.SharedPrefixCollator)
    assert isinstance(decoder.collator(PAD, gold_only=False, shared_prefix=False), decoder.CandidateCollator)
    assert isinstance(decoder.collator(PAD, gold_only=True, shared_prefix=True), decoder.CandidateCollator)


@pytest.mark.slow
def test_smollm2_scores_and_loss_equal_the_per_candidate_path(decoder_cache, template_rows):
    from beft.models import loading
    from tests.conftest import smollm2_config

    model, _, _ = loading.load_decoder(smollm2_config(decoder_cache))
    model.eval()
    rows = [r for rows in template_rows.values() for r in rows["full"]]
    with torch.no_grad():
        per_candidate, shared = both_scores(model, rows)
    torch.testing.assert_close(shared, per_candidate, atol=TOL, rtol=0)
    scores = decoder._per_example(shared, torch.tensor([len(r["input_ids"]) for r in rows]))
    gold = torch.tensor([r["gold"].index(1) for r in rows])
    loss = decoder.objective_loss(model, candidates.SharedPrefixCollator(PAD)(rows), "classification")
    torch.testing.assert_close(loss.detach(), F.cross_entropy(scores, gold), atol=TOL, rtol=0)


@pytest.mark.slow
def test_smollm2_icl_scores_equal_the_per_candidate_path(decoder_cache, data_dir, smollm2_tokenizer):
    """In-context prompts: real COPA examples, each after two demonstrations drawn as an ICL run draws them."""
    from beft.bench import settings
    from beft.data import sources
    from beft.models import loading
    from tests.conftest import smollm2_config

    spec = settings.train_spec("model=smollm2", "task=copa", f"data.dir={data_dir}")
    splits = sources.load_splits(spec.task, spec.data.dir)
    evals = splits["validation"].select(range(6))
    rows = prompts.icl_split(evals, splits["train"], spec.task.template, smollm2_tokenizer, 2048, 2, seed=0)
    rows = [rows[i] for i in range(len(rows))]
    model, _, _ = loading.load_decoder(smollm2_config(decoder_cache))
    with torch.no_grad():
        per_candidate, shared = both_scores(model.eval(), rows)
    torch.testing.assert_close(shared, per_candidate, atol=TOL, rtol=0)

"""OPT as the reference runs it, on a tiny OPT: prompts start with token 0 (not the tokenizer's BOS 2), and under
prefix tuning the prompt's tokens sit at positions 0, 1, ... (not after the 5 virtual tokens)."""

from __future__ import annotations

import datasets
import pytest
import torch

from beft.data import prompts, templates
from beft.errors import ConfigError
from beft.models import methods
from beft.training import decoder
from tests.models.tiny import tiny_opt, tiny_opt_tokenizer

PREFIX = {"trainable": "prefix", "num_virtual_tokens": 5, "head": False, "pooler_bias": False}
FRAMED = templates.sst2({"sentence": "ab", "label": 1})  # "ab It was terrible" / "ab It was great"


def test_the_tiny_tokenizer_starts_every_text_with_opts_bos_2():
    tok = tiny_opt_tokenizer()
    assert tok("ab").input_ids == [2, *tok("ab", add_special_tokens=False).input_ids]


def test_opt_prompts_start_with_token_zero():
    tok = tiny_opt_tokenizer()
    row = prompts.Encoder(tok, 2048, bos_token_id=0).encode(FRAMED)
    own = prompts.Encoder(tok, 2048).encode(FRAMED)
    for ids, default in zip(
        row["input_ids"] + [row["prompt_ids"]], own["input_ids"] + [own["prompt_ids"]], strict=True
    ):
        assert ids[0] == 0 and default[0] == 2 and ids[1:] == default[1:]
    assert row["option_len"] == own["option_len"]
    body = tok("ab It was great", add_special_tokens=False).input_ids
    assert row["input_ids"][1] == [0, *body]


def test_truncation_keeps_token_zero_first():
    tok = tiny_opt_tokenizer()
    row = prompts.Encoder(tok, 6, bos_token_id=0).encode(FRAMED)
    assert row["input_ids"][1] == [0, *tok(" great", add_special_tokens=False).input_ids[-5:]]


def test_icl_rows_start_with_one_token_zero():
    tok = tiny_opt_tokenizer()
    features = datasets.Features({"sentence": datasets.Value("string"), "label": datasets.Value("int64")})
    train = datasets.Dataset.from_list([{"sentence": "a", "label": 1}, {"sentence": "b", "label": 0}], features)
    evals = datasets.Dataset.from_list([{"sentence": "c", "label": 1}], features)
    ids = prompts.icl_split(evals, train, "sst2", tok, 2048, 2, seed=0, bos_token_id=0)[0]["input_ids"][0]
    assert ids[0] == 0 and 0 not in ids[1:] and 2 not in ids


def test_bos_option_needs_a_tokenizer_that_adds_a_bos():
    with pytest.raises(ConfigError, match=r"model\.bos_token_id=0.*set model\.bos_token_id=null"):
        prompts.Encoder(tiny_opt_tokenizer(add_bos_token=False), 2048, bos_token_id=0)


def test_opt_configs_use_token_zero_and_other_decoders_keep_theirs(compose_cfg):
    assert compose_cfg("model=opt_1_3b").model.bos_token_id == 0
    assert compose_cfg("model=opt_6_7b").model.bos_token_id == 0
    assert compose_cfg("model=smollm2").model.bos_token_id is None
    assert compose_cfg("model=opt_1_3b", "model.bos_token_id=null").model.bos_token_id is None


def _record_inputs(model):
    """The token ids and position ids every forward of ``model`` (an OPT) feeds its decoder."""
    seen = {"ids": [], "positions": []}
    decoder_module = model.model.decoder

    def hook(module, args, kwargs):
        seen["ids"].append(kwargs["input_ids"].tolist())
        seen["positions"].append(None)  # filled in by the position embedding below

    decoder_module.register_forward_pre_hook(hook, with_kwargs=True)
    original = decoder_module.embed_positions.forward

    def embed(attention_mask, cache_length=0, position_ids=None):  # OPT's own positions when none are passed
        if position_ids is None:
            position_ids = (attention_mask.cumsum(1) * attention_mask - 1)[:, cache_length:]
        seen["positions"][-1] = position_ids.tolist()
        return original(attention_mask, cache_length, position_ids)

    decoder_module.embed_positions.forward = embed
    return seen


def _prefix_model(positions: str | None):
    torch.manual_seed(0)
    model = tiny_opt(vocab_size=len(tiny_opt_tokenizer())).eval()
    cfg = PREFIX if positions is None else {**PREFIX, "positions": positions}
    wrapper = methods.apply_method(model, cfg, {}, seed=0).wrapper
    return model, wrapper


@pytest.mark.parametrize(("positions", "first"), [(None, 0), ("from_zero", 0), ("after_prefix", 5)])
def test_prefix_tuned_opt_scores_with_the_prompt_from_position_zero(positions, first):
    tok = tiny_opt_tokenizer()
    model, wrapper = _prefix_model(positions)
    seen = _record_inputs(model)
    row = prompts.Encoder(tok, 2048, bos_token_id=0).encode(FRAMED)
    batch = decoder.CandidateCollator(tok.pad_token_id, gold_only=False)([row])
    decoder.candidate_scores(wrapper, batch)
    lengths = [len(ids) for ids in row["input_ids"]]
    width = batch["input_ids"].shape[1]
    for ids, pos, n in zip(seen["ids"][-1], seen["positions"][-1], lengths, strict=True):
        assert ids[width - n] == 0  # token 0 leads every candidate
        assert pos[width - n :] == list(range(first, first + n))


@pytest.mark.parametrize(("positions", "first"), [("from_zero", 0), ("after_prefix", 5)])
def test_prefix_tuned_opt_generates_from_position_zero(positions, first):
    model, wrapper = _prefix_model(positions)
    seen = _record_inputs(model)
    ids, mask = torch.tensor([[1, 1, 0, 9, 8]]), torch.tensor([[0, 0, 1, 1, 1]])
    wrapper.generate(input_ids=ids, attention_mask=mask, max_new_tokens=3, do_sample=False, pad_token_id=1)
    assert seen["positions"][0][0][2:] == [first, first + 1, first + 2]
    assert [p[0] for p in seen["positions"][1:]] == [[first + 3], [first + 4]]


def test_explicit_positions_reach_the_model_unchanged_under_from_zero():
    """A caller that passes its own positions (e.g. packed candidates restarting at 0) gets exactly those."""
    model, wrapper = _prefix_model("from_zero")
    seen = _record_inputs(model)
    ids, mask = torch.tensor([[0, 9, 8, 0, 7]]), torch.ones(1, 5, dtype=torch.long)
    wrapper(input_ids=ids, attention_mask=mask, position_ids=torch.tensor([[0, 1, 2, 0, 1]]))
    assert seen["positions"][-1] == [[0, 1, 2, 0, 1]]


def test_a_bad_positions_value_names_the_choices():
    with pytest.raises(ConfigError, match=r"method\.positions='zero'.*from_zero.*after_prefix"):
        methods.apply_method(tiny_opt().eval(), {**PREFIX, "positions": "zero"}, {}, seed=0)

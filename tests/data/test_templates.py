"""Decoder prompts (docs/templates.md): every template's exact texts, option-token counts, left truncation and ICL
draws.

Option tokens are counted with the real SmolLM2 tokenizer (byte-level BPE, no BOS token; loaded from the converted
model folder of the session's cache); BOS-keeping truncation with a tiny word-level tokenizer that adds ``<s>``.
"""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
from omegaconf import OmegaConf
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from beft.data import prompts, templates
from beft.errors import ConfigError

CONF = Path(__file__).resolve().parents[2] / "conf" / "task"

SUPER_BOWL = (
    "Super Bowl 50 was an American football game to determine the champion of the National Football League (NFL) for "
    "the 2015 season. The American Football Conference (AFC) champion Denver Broncos defeated the National Football "
    "Conference (NFC) champion Carolina Panthers 24–10 to earn their third Super Bowl title."
)

# (template, example, prompt after space-stripping, candidates, gold indices): docs/templates.md verbatim
CASES = [
    (
        "sst2",
        {"sentence": " a gripping , funny film  ", "label": 1},
        "a gripping , funny film It was",
        ["a gripping , funny film It was terrible", "a gripping , funny film It was great"],
        [1],
    ),
    (
        "rte",
        {"premise": "Dana Reeve died.", "hypothesis": "Christopher Reeve had an accident.", "label": 1},
        'Dana Reeve died.\nDoes this mean that "Christopher Reeve had an accident." is true? Yes or No?\n',
        [
            'Dana Reeve died.\nDoes this mean that "Christopher Reeve had an accident." is true? Yes or No?\nYes',
            'Dana Reeve died.\nDoes this mean that "Christopher Reeve had an accident." is true? Yes or No?\nNo',
        ],
        [1],
    ),
    (
        "cb",
        {"premise": "It was a complex language.", "hypothesis": "the language was peeled down", "label": 2},
        'Suppose It was a complex language. Can we infer that "the language was peeled down"? Yes, No, or Maybe?\n',
        [
            'Suppose It was a complex language. Can we infer that "the language was peeled down"? Yes, No, or Maybe?\n'
            + word
            for word in ("Yes", "No", "Maybe")
        ],
        [2],
    ),
    (  # '?' appended, first character upper-cased; label 1 = "false" -> "No"
        "boolq",
        {
            "passage": "Ethanol fuel -- All biomass goes through these steps.",
            "question": "does ethanol take energy",
            "label": 1,
        },  # fmt: skip
        "Ethanol fuel -- All biomass goes through these steps. Does ethanol take energy?\n",
        [
            "Ethanol fuel -- All biomass goes through these steps. Does ethanol take energy?\nYes",
            "Ethanol fuel -- All biomass goes through these steps. Does ethanol take energy?\nNo",
        ],
        [1],
    ),
    (  # a question that ends with '?' keeps the one it has
        "boolq",
        {"passage": "P.", "question": "is it true?", "label": 0},
        "P. Is it true?\n",
        ["P. Is it true?\nYes", "P. Is it true?\nNo"],
        [0],
    ),
    (  # span2 lower-cased, span1 as written; candidates No (label 0), Yes (label 1)
        "wsc",
        {"text": "Mark told Pete many lies about himself.", "span1_text": "Pete", "span2_text": "Himself", "label": 0},
        'Mark told Pete many lies about himself.\nIn the previous sentence, does the pronoun "himself" refer to Pete? '
        "Yes or No?\n",
        [
            'Mark told Pete many lies about himself.\nIn the previous sentence, does the pronoun "himself" refer to '
            "Pete? Yes or No?\n" + word
            for word in ("No", "Yes")
        ],
        [0],
    ),
    (
        "wic",
        {
            "word": "place",
            "sentence1": "Do you want to come over to my place later?",
            "sentence2": "A political system with no place for the less prominent groups.",
            "label": 0,
        },  # fmt: skip
        'Does the word "place" have the same meaning in these two sentences? Yes, No?\n'
        "Do you want to come over to my place later?\n"
        "A political system with no place for the less prominent groups.\n",
        [
            'Does the word "place" have the same meaning in these two sentences? Yes, No?\n'
            "Do you want to come over to my place later?\nA political system with no place for the less prominent "
            "groups.\n" + word
            for word in ("No", "Yes")
        ],
        [0],
    ),
    (
        "multirc",
        {
            "paragraph": "Forces cause changes in motion.",
            "question": "What changes motion?",
            "answer": "A force",
            "label": 1,
        },  # fmt: skip
        'Forces cause changes in motion.\nQuestion: What changes motion?\nI found this answer "A force". Is that '
        "correct? Yes or No?\n",
        [
            'Forces cause changes in motion.\nQuestion: What changes motion?\nI found this answer "A force". Is that '
            "correct? Yes or No?\n" + word
            for word in ("No", "Yes")
        ],
        [1],
    ),
    (  # docs/templates.md's example: effect -> " so ", the choice's first word lower-cased
        "copa",
        {
            "premise": "The man turned on the faucet.",
            "choice1": "The toilet filled with water.",
            "choice2": "Water flowed from the spout.",
            "question": "effect",
            "label": 1,
        },  # fmt: skip
        "The man turned on the faucet so",
        [
            "The man turned on the faucet so the toilet filled with water.",
            "The man turned on the faucet so water flowed from the spout.",
        ],  # fmt: skip
        [1],
    ),
    (  # cause -> " because "; "I" keeps its case; trailing spaces and one '.' removed
        "copa",
        {
            "premise": "My body cast a shadow over the grass.  ",
            "choice1": "I stood in the sun.",
            "choice2": "The grass was cut.",
            "question": "cause",
            "label": 0,
        },  # fmt: skip
        "My body cast a shadow over the grass because",
        [
            "My body cast a shadow over the grass because I stood in the sun.",
            "My body cast a shadow over the grass because the grass was cut.",
        ],  # fmt: skip
        [0],
    ),
    (  # @highlight\n -> "- "; every entity a candidate; both gold answers are gold indices
        "record",
        {
            "passage": "Tracy Morgan will host SNL.\n@highlight\nMorgan returns\n@highlight\nShow airs on NBC",
            "query": "@placeholder will be the host.",
            "entities": ["Morgan", "NBC", "Tracy Morgan"],
            "answers": ["Morgan", "Tracy Morgan"],
        },  # fmt: skip
        "Tracy Morgan will host SNL.\n- Morgan returns\n- Show airs on NBC\n-",
        [
            "Tracy Morgan will host SNL.\n- Morgan returns\n- Show airs on NBC\n- Morgan will be the host.",
            "Tracy Morgan will host SNL.\n- Morgan returns\n- Show airs on NBC\n- NBC will be the host.",
            "Tracy Morgan will host SNL.\n- Morgan returns\n- Show airs on NBC\n- Tracy Morgan will be the host.",
        ],
        [0, 2],
    ),
    (  # the question stripped; training text = prompt + " <first answer>\n"
        "squad",
        {
            "title": "Super_Bowl_50",
            "context": SUPER_BOWL,
            "question": " Which NFL team represented the AFC? ",
            "answers": ["Denver Broncos", "the Denver Broncos"],
        },  # fmt: skip
        f"Title: Super_Bowl_50\nContext: {SUPER_BOWL}\nQuestion: Which NFL team represented the AFC?\nAnswer:",
        [
            f"Title: Super_Bowl_50\nContext: {SUPER_BOWL}\nQuestion: Which NFL team represented the AFC?\nAnswer: "
            "Denver Broncos\n"
        ],  # fmt: skip
        [0],
    ),
    (
        "drop",
        {
            "passage": "The Raiders kicked two field goals.",
            "question": "How many field goals? ",
            "answers": ["2", "two"],
        },  # fmt: skip
        "Passage: The Raiders kicked two field goals.\nQuestion: How many field goals?\nAnswer:",
        ["Passage: The Raiders kicked two field goals.\nQuestion: How many field goals?\nAnswer: 2\n"],
        [0],
    ),
]

# the text of each candidate's option tokens (the gold candidate's, for generation: what teacher forcing trains on)
OPTION_TEXT = {
    "sst2": [" terrible", " great"],
    "rte": ["Yes", "No"],
    "cb": ["Yes", "No", "Maybe"],
    "boolq": ["Yes", "No"],
    "wsc": ["No", "Yes"],
    "wic": ["No", "Yes"],
    "multirc": ["No", "Yes"],
    "record": [" Morgan will be the host.", " NBC will be the host.", " Tracy Morgan will be the host."],
    "squad": [" Denver Broncos\n"],
    "drop": [" 2\n"],
}


def ids_of(case):
    return f"{case[0]}-{CASES.index(case)}"


@pytest.mark.parametrize("case", CASES, ids=ids_of)
def test_template_texts_are_the_spec_formats(case):
    name, example, prompt, candidates, gold = case
    framed = templates.TEMPLATES[name](example)
    assert framed.prompt.strip(" ") == prompt
    assert [c.strip(" ") for c in framed.candidates] == candidates
    assert framed.gold == gold
    if name in ("squad", "drop"):
        assert framed.answers == tuple(example["answers"])  # every gold answer is scored, the first one trained on
    else:
        assert framed.answers == ()


def test_every_decoder_task_names_a_known_template():
    for path in sorted(CONF.glob("*.yaml")):
        cfg = OmegaConf.to_container(OmegaConf.load(path))
        if "decoder" in (cfg.get("pipelines") or ()):
            name = {**cfg, **(cfg.get("decoder") or {})}.get("template")
            assert name in templates.TEMPLATES, path.name
    with pytest.raises(ConfigError, match=r"task.template='sst5' is not a known prompt template; valid: \['boolq'"):
        prompts.template("sst5")


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in OPTION_TEXT], ids=ids_of)
def test_option_tokens_are_what_the_candidate_adds_to_the_prompt(case, smollm2_tokenizer):
    tok = smollm2_tokenizer
    name, example, prompt, candidates, _ = case
    row = prompts.Encoder(tok, 2048).encode(templates.TEMPLATES[name](example))
    n_prompt = len(tok(prompt).input_ids)
    for c, text in enumerate(candidates):
        full = tok(text).input_ids
        assert row["input_ids"][c] == full
        assert row["option_len"][c] == len(full) - n_prompt  # n_opt = len(tok(candidate)) - len(tok(prompt))
        assert tok.decode(full[-row["option_len"][c] :]) == OPTION_TEXT[name][c]
    assert row["gold"] == [int(i in case[4]) for i in range(len(candidates))]


def test_copa_option_tokens_are_the_transformed_choice(smollm2_tokenizer):
    _, example, _, _, _ = CASES[8]
    row = prompts.Encoder(smollm2_tokenizer, 2048).encode(templates.copa(example))
    options = [smollm2_tokenizer.decode(ids[-n:]) for ids, n in zip(row["input_ids"], row["option_len"], strict=True)]
    assert options == [" the toilet filled with water.", " water flowed from the spout."]


def test_generation_rows_keep_the_prompt_and_every_answer(smollm2_tokenizer):
    _, example, prompt, _, _ = CASES[-2]
    row = prompts.Encoder(smollm2_tokenizer, 2048).encode(templates.squad(example))
    assert row["prompt_ids"] == smollm2_tokenizer(prompt).input_ids  # what greedy decoding continues
    assert row["answers"] == ["Denver Broncos", "the Denver Broncos"]


def bos_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer that puts ``<s>`` (id 2) before every text, like OPT's and LLaMA's."""
    words = ["<unk>", "<pad>", "<s>", "</s>", "a", "b", "c", "d", "e", "f", "g", "h"]
    words += ["It", "was", "terrible", "great", "Answer:", "x"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def test_left_truncation_keeps_bos_and_the_option_tokens():
    tok = bos_tokenizer()
    framed = templates.sst2({"sentence": "a b c d e f g h", "label": 1})
    full = prompts.Encoder(tok, 2048).encode(framed)
    assert full["input_ids"][1] == tok("a b c d e f g h It was great").input_ids
    assert full["input_ids"][1][0] == tok.bos_token_id and len(full["input_ids"][1]) == 12
    assert full["option_len"] == [1, 1]  # BOS counts on both sides of len(candidate) - len(prompt)

    row = prompts.Encoder(tok, 6).encode(framed)
    assert tok.convert_ids_to_tokens(row["input_ids"][1]) == ["<s>", "g", "h", "It", "was", "great"]
    assert tok.convert_ids_to_tokens(row["input_ids"][0]) == ["<s>", "g", "h", "It", "was", "terrible"]
    assert row["option_len"] == [1, 1]


def test_generation_prompt_budget_leaves_room_for_fifty_new_tokens():
    tok = bos_tokenizer()
    framed = templates.drop({"passage": "a b c d e f g h", "question": "x", "answers": ["x"]})
    row = prompts.Encoder(tok, prompts.MAX_NEW_TOKENS + 4).encode(framed)
    assert len(row["prompt_ids"]) == 4
    assert tok.convert_ids_to_tokens(row["prompt_ids"]) == ["<s>", "<unk>", "x", "Answer:"]  # BOS + the last 3


def test_option_tokens_never_exceed_what_fits():
    tok = bos_tokenizer()
    framed = templates.Framed("a", ["a b c d e f g h"], [0])
    row = prompts.Encoder(tok, 4).encode(framed)
    assert len(row["input_ids"][0]) == 4 and row["option_len"] == [3]  # all but BOS, which nothing predicts


# --- in-context learning (docs/experiments.md §6.6) -------------------------------------------------------------------

SST2_TRAIN = [
    {"sentence": "a gripping film", "label": 1},
    {"sentence": "dull and long", "label": 0},
    {"sentence": "a joy to watch", "label": 1},
    {"sentence": "badly acted", "label": 0},
    {"sentence": "warm and funny", "label": 1},
    {"sentence": "a mess", "label": 0},
]
SST2_EVAL = [{"sentence": f"film number {i}", "label": i % 2} for i in range(5)]


SST2_FEATURES = datasets.Features(
    {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["negative", "positive"])}
)


def sst2_dataset(rows):
    return datasets.Dataset.from_list(rows, features=SST2_FEATURES)


def expected_demos(i: int, k: int, seed: int = 0) -> list[str]:
    """docs/experiments.md §6.6: seeds = RandomState(0).randint(0, 10000, 1000); example i draws
    RandomState(seeds[i]).permutation(N_train)[:k]."""
    seeds = np.random.RandomState(seed).randint(0, 10000, 1000)
    picks = np.random.RandomState(seeds[i]).permutation(len(SST2_TRAIN))[:k]
    words = ["terrible", "great"]
    return [f"{SST2_TRAIN[j]['sentence']} It was {words[SST2_TRAIN[j]['label']]}" for j in picks]


def test_icl_prepends_k_demonstrations_joined_by_a_blank_line(smollm2_tokenizer):
    tok = smollm2_tokenizer
    rows = prompts.icl_split(sst2_dataset(SST2_EVAL), sst2_dataset(SST2_TRAIN), "sst2", tok, 2048, 3, seed=0)
    assert len(rows) == len(SST2_EVAL)
    draws = set()
    for i, row in enumerate(rows):
        demos = expected_demos(i, 3)
        draws.add(tuple(demos))
        for c, word in enumerate(["terrible", "great"]):
            text = "\n\n".join(demos) + f"\n\nfilm number {i} It was {word}"
            assert tok.decode(row["input_ids"][c]) == text
            assert row["option_len"][c] == 1 and tok.decode(row["input_ids"][c][-1:]) == f" {word}"
        assert row["gold"] == [int(i % 2 == 0), int(i % 2 == 1)]
    assert len(draws) > 1  # a new draw per evaluation example
    again = prompts.icl_split(sst2_dataset(SST2_EVAL), sst2_dataset(SST2_TRAIN), "sst2", tok, 2048, 3, seed=0)
    assert again[:] == rows[:]  # deterministic


def test_icl_generation_demonstrations_end_with_the_answer(smollm2_tokenizer):
    tok = smollm2_tokenizer
    train = datasets.Dataset.from_list([{"passage": "P1.", "question": "Q1?", "answers": ["A1", "B1"]}])
    evals = datasets.Dataset.from_list([{"passage": "P2.", "question": "Q2?", "answers": ["A2"]}])
    row = prompts.icl_split(evals, train, "drop", tok, 2048, 1, seed=0)[0]
    demo = "Passage: P1.\nQuestion: Q1?\nAnswer: A1"  # stripped: no final newline
    assert tok.decode(row["prompt_ids"]) == f"{demo}\n\nPassage: P2.\nQuestion: Q2?\nAnswer:"
    assert tok.decode(row["input_ids"][0]) == f"{demo}\n\nPassage: P2.\nQuestion: Q2?\nAnswer: A2\n"
    assert row["answers"] == ["A2"]


def test_zero_shot_is_icl_without_demonstrations(smollm2_tokenizer):
    evals = sst2_dataset(SST2_EVAL)
    icl = prompts.icl_split(evals, sst2_dataset(SST2_TRAIN), "sst2", smollm2_tokenizer, 2048, 0, seed=0)
    plain = prompts.encode_split(evals, "sst2", smollm2_tokenizer, 2048, cache_dir=None)
    assert icl[:] == plain[:]


def test_over_long_icl_text_loses_the_oldest_demonstrations():
    tok = bos_tokenizer()
    train = sst2_dataset([{"sentence": "a b c d", "label": 1}, {"sentence": "e f g h", "label": 0}])
    row = prompts.icl_split(sst2_dataset([{"sentence": "x", "label": 1}]), train, "sst2", tok, 8, 2, seed=0)[0]
    tokens = tok.convert_ids_to_tokens(row["input_ids"][1])
    assert len(tokens) == 8 and tokens[0] == "<s>" and tokens[-4:] == ["x", "It", "was", "great"]
    assert row["option_len"] == [1, 1]

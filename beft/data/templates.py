"""Prompt templates of the decoder experiments (the MeZO task suite, docs/templates.md), one small function per task.

A template frames one example (a row of the task's fields) as a prompt and the full texts of its candidates: the
verbalised labels of a classification task, the filled-in options of a multiple-choice task, or, for a generation
task, the training text (prompt + `` <answer>\\n``). Code holds the formats, the task config names the template.
Texts are stripped of leading/trailing spaces (not newlines) when they are tokenised (``beft.data.prompts``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Example = Mapping[str, Any]


@dataclass(frozen=True)
class Framed:
    """One example, framed. ``gold`` indexes ``candidates`` (several for ReCoRD); ``answers`` are the gold strings of
    a generation task (scored by token F1), empty otherwise."""

    prompt: str
    candidates: list[str]
    gold: list[int]
    answers: tuple[str, ...] = ()


def _verbalise(prompt: str, words: list[str], label: int) -> Framed:
    return Framed(prompt, [prompt + w for w in words], [label])


def sst2(ex: Example) -> Framed:
    s = ex["sentence"].strip()
    return _verbalise(f"{s} It was", [" terrible", " great"], ex["label"])


def rte(ex: Example) -> Framed:
    prompt = f'{ex["premise"]}\nDoes this mean that "{ex["hypothesis"]}" is true? Yes or No?\n'
    return _verbalise(prompt, ["Yes", "No"], ex["label"])  # 0 entailment, 1 not_entailment


def cb(ex: Example) -> Framed:
    prompt = f'Suppose {ex["premise"]} Can we infer that "{ex["hypothesis"]}"? Yes, No, or Maybe?\n'
    return _verbalise(prompt, ["Yes", "No", "Maybe"], ex["label"])  # entailment, contradiction, neutral


def boolq(ex: Example) -> Framed:
    q = ex["question"] if ex["question"].endswith("?") else ex["question"] + "?"
    q = q[:1].upper() + q[1:]
    return _verbalise(f"{ex['passage']} {q}\n", ["Yes", "No"], ex["label"])  # label_names [true, false]


def wsc(ex: Example) -> Framed:
    prompt = (
        f'{ex["text"]}\nIn the previous sentence, does the pronoun "{ex["span2_text"].lower()}" refer to '
        f"{ex['span1_text']}? Yes or No?\n"
    )
    return _verbalise(prompt, ["No", "Yes"], ex["label"])


def wic(ex: Example) -> Framed:
    prompt = (
        f'Does the word "{ex["word"]}" have the same meaning in these two sentences? Yes, No?\n'
        f"{ex['sentence1']}\n{ex['sentence2']}\n"
    )
    return _verbalise(prompt, ["No", "Yes"], ex["label"])


def multirc(ex: Example) -> Framed:
    prompt = (
        f'{ex["paragraph"]}\nQuestion: {ex["question"]}\nI found this answer "{ex["answer"]}". Is that correct? '
        "Yes or No?\n"
    )
    return _verbalise(prompt, ["No", "Yes"], ex["label"])


def _copa_choice(choice: str) -> str:
    words = choice.split(" ")
    if words[0] != "I":
        words[0] = words[0].lower()
    return " ".join(words)


def copa(ex: Example) -> Framed:
    premise = ex["premise"].rstrip()
    premise = premise[:-1] if premise.endswith(".") else premise
    head = premise + (" because " if ex["question"] == "cause" else " so ")
    return Framed(head, [head + _copa_choice(ex[c]) for c in ("choice1", "choice2")], [ex["label"]])


def record(ex: Example) -> Framed:
    passage = ex["passage"].replace("@highlight\n", "- ")
    entities = list(ex["entities"])
    fill = [f"{passage}\n- " + ex["query"].replace("@placeholder", e) for e in entities]
    return Framed(f"{passage}\n-", fill, [i for i, e in enumerate(entities) if e in ex["answers"]])


def _generation(prompt: str, answers: list[str]) -> Framed:
    train = [f"{prompt} {answers[0]}\n"] if answers else []
    return Framed(prompt, train, [0] if answers else [], tuple(answers))


def squad(ex: Example) -> Framed:
    prompt = f"Title: {ex['title']}\nContext: {ex['context']}\nQuestion: {ex['question'].strip()}\nAnswer:"
    return _generation(prompt, list(ex["answers"]))


def drop(ex: Example) -> Framed:
    return _generation(f"Passage: {ex['passage']}\nQuestion: {ex['question'].strip()}\nAnswer:", list(ex["answers"]))


TEMPLATES: dict[str, Callable[[Example], Framed]] = {
    fn.__name__: fn for fn in (sst2, rte, cb, boolq, wsc, wic, multirc, copa, record, squad, drop)
}

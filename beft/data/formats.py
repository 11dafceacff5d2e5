"""Readers of the nested original release files, each yielding flat rows in the Hugging Face datasets' field names.

MultiRC and ReCoRD (SuperGLUE JSONL), SQuAD v1.1 and DROP (JSON) nest questions and answers inside passages, and
CommonsenseQA (JSONL) nests its choices inside the question; the hub's builders flatten them to one row per question
(per answer, for MultiRC). These readers do the same, so a task reads identical rows from a local file and from the
hub (WSC: the hub's ``wsc.fixed`` span corrections; DROP: the hub's per-split answers and skipped questions). Each
reader takes the file and the split it holds and yields ``(where, row)``: ``where`` is the JSONL line or the position
in the JSON file that error messages name.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from beft.errors import DataError

Rows = Iterator[tuple[Any, dict[str, Any]]]


def check_utf8(path: Path) -> None:
    """The whole file decodes as UTF-8; else the line of the first bad byte is named (checked before any row is
    used, so a bad byte deep in a training file fails before the model loads, not mid-run)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                start = max(err.start, 0)
                line += chunk[:start].count(b"\n")
                raise DataError(
                    f"{path}, line {line}: byte 0x{chunk[start : start + 1].hex()} is not UTF-8; save the file as UTF-8"
                ) from None
            line += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise DataError(f"{path}, line {line}: the file ends inside a UTF-8 character; save it as UTF-8") from None


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) of every non-empty line of a JSONL file; a bad line is named."""
    check_utf8(path)
    with path.open(encoding="utf-8") as fh:
        for line_num, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    yield line_num, json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}, line {line_num}: not valid JSON ({err.msg})") from err


def _json(path: Path) -> Any:
    check_utf8(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}, line {err.lineno}: not valid JSON ({err.msg})") from err


def _get(obj: Any, key: str, path: Path, where: Any) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        found = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise DataError(f"{path}, {where}: key {key!r} is missing; found {found}")
    return obj[key]


def multirc_jsonl(path: Path, split: str = "train") -> Rows:
    """SuperGLUE MultiRC: one row per (paragraph, question, answer) with the answer's 0/1 label."""
    for line, doc in read_jsonl(path):
        passage = _get(doc, "passage", path, f"line {line}")
        for q in _get(passage, "questions", path, f"line {line}"):
            for a in _get(q, "answers", path, f"line {line}"):
                yield (
                    line,
                    {
                        "paragraph": _get(passage, "text", path, f"line {line}"),
                        "question": _get(q, "question", path, f"line {line}"),
                        "answer": _get(a, "text", path, f"line {line}"),
                        "label": _get(a, "label", path, f"line {line}"),
                    },
                )


def record_jsonl(path: Path, split: str = "train") -> Rows:
    """SuperGLUE ReCoRD: one row per query. ``entities`` are the passage's distinct entity strings and ``answers`` the
    distinct gold strings, both sorted (the hub's builder sorts the answers and stores the entities as a set; sorting
    both makes the candidate order deterministic)."""
    for line, doc in read_jsonl(path):
        passage = _get(doc, "passage", path, f"line {line}")
        text = _get(passage, "text", path, f"line {line}")
        spans = _get(passage, "entities", path, f"line {line}")
        where = f"line {line}"
        entities = sorted({text[_get(e, "start", path, where) : _get(e, "end", path, where) + 1] for e in spans})
        for qa in _get(doc, "qas", path, f"line {line}"):
            answers = sorted({_get(a, "text", path, f"line {line}") for a in qa.get("answers", [])})
            yield line, {"passage": text, "query": _get(qa, "query", path, f"line {line}"), "entities": entities,
                         "answers": answers}  # fmt: skip


def squad_json(path: Path, split: str = "train") -> Rows:
    """SQuAD v1.1 (``data[].paragraphs[].qas[]``): one row per question, all gold answer texts."""
    doc = _json(path)
    for a, article in enumerate(_get(doc, "data", path, "top level")):
        for p, paragraph in enumerate(_get(article, "paragraphs", path, f"data[{a}]")):
            for q, qa in enumerate(_get(paragraph, "qas", path, f"data[{a}].paragraphs[{p}]")):
                where = f"data[{a}].paragraphs[{p}].qas[{q}]"
                yield (
                    where,
                    {
                        "title": _get(article, "title", path, f"data[{a}]"),
                        "context": _get(paragraph, "context", path, f"data[{a}].paragraphs[{p}]"),
                        "question": _get(qa, "question", path, where),
                        "answers": [_get(x, "text", path, where) for x in _get(qa, "answers", path, where)],
                    },
                )


def _drop_date(date: dict) -> str:
    """A DROP date as the hub's builder writes it: ``"{day} {month} {year}"`` without the blank parts at the ends."""
    return " ".join(str(date.get(k, "")) for k in ("day", "month", "year")).strip()


def _drop_answers(answers: list[dict]) -> list[str] | None:
    """The hub's ``answers_spans.spans`` of one question (its builder's ``build_answers``): per answer its number, else
    its date, else all its spans; None where the builder skips the question (an answer that is two kinds at once, or
    no answer at all)."""
    spans: list[str] = []
    for answer in answers:
        number, date, texts = answer.get("number", ""), _drop_date(answer.get("date") or {}), answer.get("spans") or []
        if sum([number != "", bool(date), bool(texts)]) > 1:
            return None
        spans += [str(number)] if number != "" else [date] if date else [str(t) for t in texts]
    return spans or None


def drop_json(path: Path, split: str = "train") -> Rows:
    """DROP (``{passage_id: {passage, qa_pairs: [{question, answer, validated_answers}]}}``): one row per question,
    as the hub's builder (``ucinlp/drop``) makes them: ``answers`` = ``answers_spans.spans`` of the question's
    ``answer`` in the training split and of its ``validated_answers`` in the others; questions the builder cannot
    parse (no answer, or an answer that is a number and a span at once) are left out, as there (77,400 of the 77,409
    training questions, 9,535 of the 9,536 validation ones)."""
    doc = _json(path)
    if not isinstance(doc, dict):
        raise DataError(f"{path}, top level: expected an object of passages, found {type(doc).__name__}")
    for pid, item in doc.items():
        for q, qa in enumerate(_get(item, "qa_pairs", path, pid)):
            where = f"{pid}.qa_pairs[{q}]"
            given = [_get(qa, "answer", path, where)] if split == "train" else qa.get("validated_answers", [])
            answers = _drop_answers(given)
            if answers is None:
                continue
            yield where, {"passage": _get(item, "passage", path, pid), "question": _get(qa, "question", path, where),
                          "answers": answers}  # fmt: skip


def _fix_wsc_span(ex: dict, k: str) -> None:
    """The hub's ``wsc.fixed`` correction of one span (its builder's ``_fix_wst``): a span text that is not a substring
    of the text gets the case of the text's word at the span index, no trailing '.', and no newline."""
    text, index = ex[k + "_text"], ex[k + "_index"]
    if text in ex["text"] or text in ("Kamenev and Zinoviev", "Kamenev, Zinoviev, and Stalin"):
        return
    if "theyscold" in text:
        ex["span2_index"] = 10  # the builder moves the index (its text replacement is a no-op)
    first_word = ex["text"].split()[index]
    text = text[0].lower() + text[1:] if first_word[0].islower() else text[0].upper() + text[1:]
    ex[k + "_text"] = text.rstrip(".").replace("\n", " ")


def wsc_fixed_jsonl(path: Path, split: str = "train") -> Rows:
    """SuperGLUE WSC as the hub's ``wsc.fixed`` reads it: each line as written, with the span texts under ``target``
    corrected where they are not substrings of the text (e.g. "The table" for "the table": 96 of the 658 training
    and validation examples)."""
    for line, doc in read_jsonl(path):
        target = _get(doc, "target", path, f"line {line}")
        ex = {"text": _get(doc, "text", path, f"line {line}")}
        for key in ("span1_text", "span1_index", "span2_text", "span2_index"):
            ex[key] = _get(target, key, path, f"line {line}")
        _fix_wsc_span(ex, "span1")
        _fix_wsc_span(ex, "span2")
        yield line, {**doc, "target": {**target, **{k: v for k, v in ex.items() if k != "text"}}}


def commonsense_qa_jsonl(path: Path, split: str = "train") -> Rows:
    """CommonsenseQA (``{id, question: {stem, choices: [{label, text}]}, answerKey}``): one row per question with the
    choice texts in the file's order, as the hub's builder (``tau/commonsense_qa``) stores ``choices.text``."""
    for line, doc in read_jsonl(path):
        question = _get(doc, "question", path, f"line {line}")
        choices = [_get(c, "text", path, f"line {line}") for c in _get(question, "choices", path, f"line {line}")]
        yield line, {"question": _get(question, "stem", path, f"line {line}"), "choices": choices,
                     "label": _get(doc, "answerKey", path, f"line {line}")}  # fmt: skip


READERS: dict[str, Callable[[Path, str], Rows]] = {
    "multirc_jsonl": multirc_jsonl,
    "record_jsonl": record_jsonl,
    "squad_json": squad_json,
    "drop_json": drop_json,
    "wsc_fixed_jsonl": wsc_fixed_jsonl,
    "commonsense_qa_jsonl": commonsense_qa_jsonl,
}

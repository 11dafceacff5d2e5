"""A local folder laid out like the Hugging Face hub's dataset repositories, built from the original release files.

``datasets.load_dataset(<folder>/<repo>, <config>)`` reads it as it reads the hub: parquet files per config and split
(``<dir>/<split>-00000-of-00001.parquet``), found through the ``configs:`` block of the repository's README.md, with
the hub's features. The features and the row building below are transcribed from the hub builders that produced those
parquet files (the ``datasets`` library's scripts ``glue.py``, ``super_glue.py``, ``squad.py``, ``paws-x.py``,
``commonsense_qa.py``, ``boolq.py`` and ``drop.py``, and the dataset cards of nyu-mll/glue, aps/super_glue,
rajpurkar/squad, google-research-datasets/paws-x, tau/commonsense_qa, google/boolq, ucinlp/drop): their ClassLabel
names in the hub's order, their ``idx`` columns, their column names. This is the one place the tests state them.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import datasets

from beft.data import formats

V, SEQ = datasets.Value, datasets.Sequence
BOOL_CLASSES = ["False", "True"]  # super_glue.py: SuperGlueConfig's default label_classes, labels cast by _cast_label


def _label(names: list[str] | None) -> datasets.ClassLabel | datasets.Value:
    return V("float32") if names is None else datasets.ClassLabel(names=names)


# glue.py (nyu-mll/glue): config -> (text feature -> TSV column, label column, label classes; None = float32 score)
GLUE = {
    "cola": ({"sentence": 3}, 1, ["unacceptable", "acceptable"]),  # no header: columns by position
    "sst2": ({"sentence": "sentence"}, "label", ["negative", "positive"]),
    "mrpc": ({"sentence1": "#1 String", "sentence2": "#2 String"}, "Quality", ["not_equivalent", "equivalent"]),
    "qqp": ({"question1": "question1", "question2": "question2"}, "is_duplicate", ["not_duplicate", "duplicate"]),
    "stsb": ({"sentence1": "sentence1", "sentence2": "sentence2"}, "score", None),
    "mnli": ({"premise": "sentence1", "hypothesis": "sentence2"}, "gold_label",
             ["entailment", "neutral", "contradiction"]),
    "qnli": ({"question": "question", "sentence": "sentence"}, "label", ["entailment", "not_entailment"]),
    "rte": ({"sentence1": "sentence1", "sentence2": "sentence2"}, "label", ["entailment", "not_entailment"]),
}  # fmt: skip

# super_glue.py (aps/super_glue): config -> (string features, label classes)
SUPER_GLUE = {
    "cb": (["premise", "hypothesis"], ["entailment", "contradiction", "neutral"]),
    "copa": (["premise", "choice1", "choice2", "question"], ["choice1", "choice2"]),
    "rte": (["premise", "hypothesis"], ["entailment", "not_entailment"]),
    "wic": (["word", "sentence1", "sentence2"], BOOL_CLASSES),
    "wsc.fixed": (["text", "span1_text", "span2_text"], BOOL_CLASSES),
    "multirc": (["paragraph", "question", "answer"], BOOL_CLASSES),
    "record": (["passage", "query"], None),
}


def glue_features(config: str) -> datasets.Features:
    text, _, names = GLUE[config]
    return datasets.Features({**{f: V("string") for f in text}, "label": _label(names), "idx": V("int32")})


def super_glue_features(config: str) -> datasets.Features:
    strings, names = SUPER_GLUE[config]
    features = {f: V("string") for f in strings}
    if config == "wsc.fixed":
        features.update(span1_index=V("int32"), span2_index=V("int32"))
    if config == "wic":
        features.update(start1=V("int32"), start2=V("int32"), end1=V("int32"), end2=V("int32"))
    if config == "multirc":
        features["idx"] = {"paragraph": V("int32"), "question": V("int32"), "answer": V("int32")}
    elif config == "record":
        features["idx"] = {"passage": V("int32"), "query": V("int32")}
        features.update(entities=SEQ(V("string")), answers=SEQ(V("string")))
    else:
        features["idx"] = V("int32")
    if names is not None:
        features["label"] = datasets.ClassLabel(names=names)
    return datasets.Features(features)


OTHER_FEATURES = {
    "google/boolq": datasets.Features({"question": V("string"), "answer": V("bool"), "passage": V("string")}),
    "rajpurkar/squad": datasets.Features({
        "id": V("string"), "title": V("string"), "context": V("string"), "question": V("string"),
        "answers": SEQ({"text": V("string"), "answer_start": V("int32")}),
    }),
    "ucinlp/drop": datasets.Features({
        "section_id": V("string"), "query_id": V("string"), "passage": V("string"), "question": V("string"),
        "answers_spans": SEQ({"spans": V("string"), "types": V("string")}),
    }),
    "google-research-datasets/paws-x": datasets.Features({
        "id": V("int32"), "sentence1": V("string"), "sentence2": V("string"),
        "label": datasets.ClassLabel(names=["0", "1"]),
    }),
    "tau/commonsense_qa": datasets.Features({
        "id": V("string"), "question": V("string"), "question_concept": V("string"),
        "choices": SEQ({"label": V("string"), "text": V("string")}), "answerKey": V("string"),
    }),
}  # fmt: skip

# Where a repository keeps a config's parquet files: named after the config, or `data/` for a single-config repository
DEFAULT_CONFIG_DIR = {"google/boolq": "data", "ucinlp/drop": "data", "tau/commonsense_qa": "data"}


def features_of(repo: str, config: str | None) -> datasets.Features:
    if repo == "nyu-mll/glue":
        return glue_features(config)
    if repo == "aps/super_glue":
        return super_glue_features(config)
    return OTHER_FEATURES[repo]


def _tsv(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        yield from csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)


def _jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as fh:
        yield from (json.loads(line) for line in fh if line.strip())


def glue_rows(config: str, path: Path) -> Iterator[dict]:
    """glue.py's _generate_examples: text features by column, the label by class name or integer id, idx = row."""
    text, label_column, names = GLUE[config]
    if config == "cola":
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    else:
        rows = list(_tsv(path))
    for n, row in enumerate(rows):
        label = row[label_column]
        if names is None:
            label = float(label)
        elif label not in names:
            label = int(label)
        yield {**{f: row[col] for f, col in text.items()}, "label": label, "idx": n}


def super_glue_rows(config: str, path: Path) -> Iterator[dict]:
    """super_glue.py's _generate_examples: the features as written (WSC: the target's spans, wsc.fixed's correction),
    labels cast to their class names; MultiRC and ReCoRD flattened to one row per answer / query."""
    strings, names = SUPER_GLUE[config]
    if config == "multirc":
        for row in _jsonl(path):
            for q in row["passage"]["questions"]:
                for a in q["answers"]:
                    yield {"paragraph": row["passage"]["text"], "question": q["question"], "answer": a["text"],
                           "label": str(bool(a["label"])), "idx": {"paragraph": row["idx"], "question": q["idx"],
                                                                   "answer": a["idx"]}}  # fmt: skip
        return
    if config == "record":
        for row in _jsonl(path):
            text = row["passage"]["text"]
            entities = sorted({text[e["start"] : e["end"] + 1] for e in row["passage"]["entities"]})
            for qa in row["qas"]:
                yield {"passage": text, "query": qa["query"], "entities": entities,
                       "answers": sorted({a["text"] for a in qa.get("answers", [])}),
                       "idx": {"passage": row["idx"], "query": qa["idx"]}}  # fmt: skip
        return
    rows = (r for _, r in formats.wsc_fixed_jsonl(path)) if config == "wsc.fixed" else _jsonl(path)  # its _fix_wst
    extra = {"wsc.fixed": ["span1_index", "span2_index"], "wic": ["start1", "start2", "end1", "end2"]}.get(config, [])
    for row in rows:
        if config == "wsc.fixed":
            row = {**row, **row["target"]}
        label = row["label"]
        if config == "copa":
            label = "choice2" if label else "choice1"
        elif isinstance(label, bool):
            label = str(label)
        yield {**{f: row[f] for f in [*strings, *extra]}, "idx": row["idx"], "label": label}


def squad_rows(path: Path) -> Iterator[dict]:
    """squad.py: one row per question, the answers as {text, answer_start} lists."""
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                texts, starts = [a["text"] for a in qa["answers"]], [a["answer_start"] for a in qa["answers"]]
                answers = {"text": texts, "answer_start": starts}
                yield {"id": qa["id"], "title": article.get("title", ""), "context": paragraph["context"],
                       "question": qa["question"], "answers": answers}  # fmt: skip


def drop_rows(path: Path, split: str) -> Iterator[dict]:
    """drop.py's rows; its answer parsing (which questions it keeps, number/date/span answers) is the one
    beft.data.formats.drop_json reproduces and tests/data/test_formats.py pins, so it is reused here."""
    for where, row in formats.drop_json(path, split):
        pid, qid = where.split(".qa_pairs")
        yield {"section_id": pid, "query_id": qid, "passage": row["passage"], "question": row["question"],
               "answers_spans": {"spans": row["answers"], "types": ["span"] * len(row["answers"])}}  # fmt: skip


def pawsx_rows(path: Path) -> Iterator[dict]:
    for row in _tsv(path):
        yield {"id": int(row["id"]), "sentence1": row["sentence1"], "sentence2": row["sentence2"],
               "label": int(row["label"])}  # fmt: skip


def commonsense_qa_rows(path: Path) -> Iterator[dict]:
    """commonsense_qa.py: the stem as ``question``, the choices as {label, text} lists, ``answerKey`` as written."""
    for row in _jsonl(path):
        q = row["question"]
        yield {"id": row["id"], "question": q["stem"], "question_concept": q["question_concept"],
               "choices": {"label": [c["label"] for c in q["choices"]], "text": [c["text"] for c in q["choices"]]},
               "answerKey": row.get("answerKey", "")}  # fmt: skip


def boolq_rows(path: Path) -> Iterator[dict]:
    for row in _jsonl(path):
        yield {"question": row["question"], "answer": row["label"], "passage": row["passage"]}


def rows_of(repo: str, config: str | None, path: Path, split: str) -> Iterator[dict]:
    readers: dict[str, Callable[[], Iterator[dict]]] = {
        "nyu-mll/glue": lambda: glue_rows(config, path),
        "aps/super_glue": lambda: super_glue_rows(config, path),
        "rajpurkar/squad": lambda: squad_rows(path),
        "ucinlp/drop": lambda: drop_rows(path, split),
        "google-research-datasets/paws-x": lambda: pawsx_rows(path),
        "tau/commonsense_qa": lambda: commonsense_qa_rows(path),
        "google/boolq": lambda: boolq_rows(path),
    }
    return readers[repo]()


def build(root: Path, repo: str, config: str | None, files: dict[str, Path]) -> Path:
    """Write ``root/<repo>/`` for one config: a parquet file per split (split -> original file) and a README.md whose
    ``configs:`` block points at them, as on the hub. Returns the repository folder (load_dataset's path)."""
    folder = root / repo
    name = config or "default"
    sub = DEFAULT_CONFIG_DIR.get(repo, name)
    features = features_of(repo, config)
    for split, path in files.items():
        rows = list(rows_of(repo, config, path, split))
        ds = datasets.Dataset.from_list(rows, features=features)
        target = folder / sub / f"{split}-00000-of-00001.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(target))
    splits = "".join(f"  - split: {s}\n    path: {sub}/{s}-*\n" for s in files)
    (folder / "README.md").write_text(f"---\nconfigs:\n- config_name: {name}\n  data_files:\n{splits}---\n")
    return folder

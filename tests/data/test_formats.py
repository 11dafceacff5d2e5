"""The nested original files of the decoder tasks read as the hub's flat rows (beft/data/formats.py, sources.py).

SQuAD, DROP and ReCoRD read from small fixtures in their original layouts (tests/fixtures/data); MultiRC, WSC and
BoolQ from the real files. Each reader must give the rows the hub's builder gives (docs/experiments.md §2.2 sizes).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from beft.data import formats, sources, templates
from beft.data.tasks import TaskSpec
from beft.errors import DataError

CONF = Path(__file__).resolve().parents[2] / "conf" / "task"


def task(name: str) -> TaskSpec:
    return TaskSpec.from_config(OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml")), pipeline="decoder")


def test_squad_rows_are_questions_with_every_gold_answer(fixture_data_dir):
    ds = sources.load_local_split(task("squad"), fixture_data_dir, "train")
    assert len(ds) == 6 and ds.column_names == ["title", "context", "question", "answers"]
    first = ds[0]
    assert first["title"] == "Super_Bowl_50" and first["context"].startswith("Super Bowl 50 was an American football")
    assert first["question"] == "Which NFL team represented the AFC at Super Bowl 50?"
    assert first["answers"] == ["Denver Broncos"] * 3  # answers.text, duplicates kept as on the hub
    assert ds[2]["answers"] == ["Santa Clara, California", "Levi's Stadium",
                                "Levi's Stadium in the San Francisco Bay Area at Santa Clara, California."]  # fmt: skip
    assert ds[3]["title"] == "Warsaw"


def test_squad_real_dev_file_has_every_question(data_dir):
    ds = sources.load_local_split(task("squad"), data_dir, "validation")
    assert len(ds) == 10570  # docs/experiments.md §2.2
    assert ds[0]["question"] == "Which NFL team represented the AFC at Super Bowl 50?"


def test_drop_training_rows_take_the_answer_and_skip_the_unparseable(fixture_data_dir):
    ds = sources.load_local_split(task("drop"), fixture_data_dir, "train")
    assert ds.column_names == ["passage", "question", "answers"]
    assert ds["answers"] == [
        ["Chaz Schilens"],  # span
        ["2"],  # number
        ["Chaz Schilens", "Vonta Leach"],  # every span of a multi-span answer; validated answers ignored in train
        ["31 July 1667"],  # date: day month year
        ["1667"],  # date with the year only
    ]  # the question without any answer is left out, as the hub's builder does (77,409 -> 77,400)
    assert ds[0]["passage"].startswith("Hoping to rebound from their loss to the Patriots")
    assert ds[3]["question"] == " When was the Treaty of Breda signed? "  # as written; the template strips it


def test_drop_validation_rows_take_the_validated_answers(fixture_data_dir):
    ds = sources.load_local_split(task("drop"), fixture_data_dir, "validation")
    # the hub's validation answers_spans.spans come from validated_answers only; a question without any is left out
    assert ds["answers"] == [["Chaz Schilens", "Schilens"], ["3"], ["31 July 1667", "July 1667"]]
    assert [q.split()[0] for q in ds["question"]] == ["Who", "How", "When"]


def test_drop_answer_that_is_two_kinds_is_left_out(tmp_path):
    path = tmp_path / "drop_dataset_train.json"
    both = {"number": "3", "date": {"day": "", "month": "", "year": ""}, "spans": ["three"]}
    ok = {"number": "4", "date": {"day": "", "month": "", "year": ""}, "spans": []}
    path.write_text(json.dumps({"p": {"passage": "P", "qa_pairs": [
        {"question": "Q1", "answer": both, "validated_answers": []},
        {"question": "Q2", "answer": ok, "validated_answers": []}]}}))  # fmt: skip
    rows = [row for _, row in formats.drop_json(path, "train")]
    assert rows == [{"passage": "P", "question": "Q2", "answers": ["4"]}]


def test_record_rows_are_queries_with_sorted_entities_and_answers(fixture_data_dir):
    spec = task("record")
    ds = sources.load_local_split(spec, fixture_data_dir, "train")
    assert len(ds) == 3 and ds.column_names == ["passage", "query", "entities", "answers"]
    first = ds[0]
    assert "\n@highlight\nTracy Morgan will host SNL on October 10" in first["passage"]  # as written
    # entity spans are inclusive: text[start : end + 1]; "Morgan" alone and inside "Tracy Morgan" are both entities
    assert first["entities"] == ["CNN", "Morgan", "NBC", "New Jersey", "SNL", "Saturday Night Live", "Tracy Morgan",
                                 "Twitter"]  # fmt: skip
    assert first["answers"] == ["SNL", "Saturday Night Live"]  # distinct gold texts of three answer spans
    assert ds[1]["query"] == "@placeholder made the announcement on Twitter on Monday."
    framed = templates.record(first)
    assert framed.gold == [4, 5]  # two gold candidates
    assert "\n@highlight\n" not in framed.prompt and "\n- Tracy Morgan will host SNL on October 10\n- " in framed.prompt
    val = sources.load_local_split(spec, fixture_data_dir, "validation")
    assert val["answers"] == [["Rooney", "Wayne Rooney"], ["Arsenal"]]


def test_multirc_rows_are_answers(data_dir):
    path = data_dir / "super_glue" / "MultiRC" / "val.jsonl"
    docs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    answers = [a for d in docs for q in d["passage"]["questions"] for a in q["answers"]]
    ds = sources.load_local_split(task("multirc"), data_dir, "validation")
    assert len(ds) == len(answers) == 4848  # one row per paragraph-question-answer triple
    assert ds.column_names == ["paragraph", "question", "answer", "label"]
    assert ds[0]["question"] == docs[0]["passage"]["questions"][0]["question"]
    assert ds[0]["answer"] == "No" and ds[0]["label"] == 0 and ds[1]["label"] == 1
    assert ds["label"] == [a["label"] for a in answers]


def test_wsc_reads_the_nested_target_spans_as_wsc_fixed(data_dir):
    ds = sources.load_local_split(task("wsc"), data_dir, "validation")
    assert len(ds) == 104 and ds.column_names == ["text", "span1_text", "span2_text", "label"]
    assert ds[0]["span1_text"] == "anyone" and ds[0]["span2_text"] == "him"  # from target.span1_text/span2_text
    assert ds[0]["label"] == 0  # false
    # wsc.fixed: a span that is not in the text takes the text's case ("The table" -> "the table")
    fixed = [r for r in ds if r["text"].startswith("The large ball crashed right through the table")]
    assert "the table" in [r["span1_text"] for r in fixed] and "The table" not in ds["span1_text"]  # raw: The table
    assert all(r["span1_text"] in r["text"] and r["span2_text"] in r["text"] for r in ds)
    train = sources.load_local_split(task("wsc"), data_dir, "train")
    assert len(train) == 554 and sum(r["span1_text"] in r["text"] for r in train) == 554


def test_boolq_true_is_the_first_label_and_the_yes_candidate(data_dir):
    spec = task("boolq")
    ds = sources.load_local_split(spec, data_dir, "validation")
    assert len(ds) == 3270 and ds.features["label"].names == ["true", "false"]
    raw = [json.loads(line)["label"] for line in (data_dir / "super_glue/BoolQ/val.jsonl").open()]
    assert ds["label"] == [0 if x else 1 for x in raw]
    yes = ds[raw.index(True)]
    no = ds[raw.index(False)]
    assert templates.boolq(yes).gold == [0] and templates.boolq(yes).candidates[0].endswith("?\nYes")
    assert templates.boolq(no).gold == [1] and templates.boolq(no).candidates[1].endswith("?\nNo")


def test_missing_original_file_is_named(data_dir):
    with pytest.raises(DataError, match=r"task 'squad': .*squad/train-v1.1.json is missing") as err:
        sources.load_local_split(task("squad"), data_dir, "train")
    assert "expected the original JSON release file squad/train-v1.1.json under data.dir=" in str(err.value)
    assert str(data_dir) in str(err.value) and "run without data.dir" in str(err.value)
    with pytest.raises(DataError, match=r"task 'boolq': .*super_glue/BoolQ/train.jsonl is missing"):
        sources.check_local_file(task("boolq"), data_dir, "train")


def test_broken_nested_files_name_file_and_place(tmp_path, fixture_data_dir):
    folder = tmp_path / "squad"
    folder.mkdir()
    doc = json.loads((fixture_data_dir / "squad" / "train-v1.1.json").read_text())
    del doc["data"][1]["paragraphs"][0]["qas"][2]["answers"]
    (folder / "train-v1.1.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"train-v1.1.json, data\[1\].paragraphs\[0\].qas\[2\]: key 'answers' is miss"):
        sources.load_local_split(task("squad"), tmp_path, "train")
    record = tmp_path / "super_glue" / "ReCoRD"
    shutil.copytree(fixture_data_dir / "super_glue" / "ReCoRD", record)
    lines = (record / "val.jsonl").read_text().splitlines()
    (record / "val.jsonl").write_text(lines[0][:40] + "\n")
    with pytest.raises(DataError, match=r"val.jsonl, line 1: not valid JSON"):
        sources.load_local_split(task("record"), tmp_path, "validation")

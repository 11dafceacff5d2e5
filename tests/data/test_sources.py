"""Local original files load with the hub's fields and label ids; bad files fail naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from beft.data import sources
from beft.data.tasks import TaskSpec
from beft.errors import DataError

CONF = Path(__file__).resolve().parents[2] / "conf" / "task"


def task(name: str) -> TaskSpec:
    return TaskSpec.from_config(OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml")))


@pytest.mark.parametrize(
    ("name", "rows", "first_label"),
    [
        ("sst2", {"train": 67349, "validation": 872}, 0),
        ("rte", {"train": 2490, "validation": 277}, 1),  # first train pair is not_entailment
        ("cola", {"train": 8551, "validation": 1043}, 1),
        ("mrpc", {"train": 3668, "validation": 408}, 1),
        ("stsb", {"train": 5749, "validation": 1500}, 5.0),
        ("cb", {"train": 250, "validation": 56}, None),
        ("wic", {"train": 5428, "validation": 638}, None),
    ],
)
def test_real_local_files_load_with_hub_label_ids(data_dir, name, rows, first_label):
    spec = task(name)
    splits = sources.load_splits(spec, data_dir)
    assert {k: len(v) for k, v in splits.items()} == rows
    train = splits["train"]
    assert set(train.column_names) == {*spec.text_fields, "label"}
    assert all(isinstance(train[0][f], str) and train[0][f] for f in spec.text_fields)
    if first_label is not None:
        assert train[0]["label"] == first_label
    if not spec.is_regression:
        assert set(train.unique("label")) == set(range(spec.num_labels))
        assert train.features["label"].names == spec.label_names


@pytest.mark.parametrize(
    ("name", "rows", "first_text"),
    [
        (
            "rte",
            3000,
            "Mangla was summoned after Madhumita's sister Nidhi Shukla, who was the first witness in the case.",
        ),
        ("cola", 1063, "Bill whistled past the house."),  # the test file has a header row, train and dev do not
        ("mrpc", 1725, None),
        ("stsb", 1379, None),
        ("sst2", 1821, None),
        ("qnli", 5463, None),
        ("cb", 250, "Polly had to think quickly."),
        ("wic", 1400, None),
    ],
)
def test_real_test_splits_load_unlabeled_with_their_ids(data_dir, name, rows, first_text):
    spec = task(name)
    test = sources.load_split(spec, data_dir, "test")
    assert len(test) == rows
    assert test[sources.ID_FIELD] == [str(i) for i in range(rows)]  # every release numbers its test rows 0..n-1
    assert set(test["label"]) == {sources.UNLABELED}
    if first_text is not None:
        assert test[0][spec.text_fields[0]].startswith(first_text)
    assert sources.ID_FIELD not in sources.load_split(spec, data_dir, "validation").column_names


def test_an_unknown_split_names_the_valid_ones(data_dir):
    with pytest.raises(DataError, match=r"task 'mnli' has no split 'test'; valid: \['train', 'validation_matched', "
                       r"'validation_mismatched', 'test_matched', 'test_mismatched'\]"):  # fmt: skip
        sources.load_split(task("mnli"), data_dir, "test")


def test_cb_and_wic_string_and_boolean_labels(data_dir):
    cb = sources.load_splits(task("cb"), data_dir)["validation"]
    assert cb[0]["label"] == task("cb").label_names.index("contradiction")  # first CB val row
    wic = sources.load_splits(task("wic"), data_dir)["validation"]
    assert wic[0]["label"] == 0  # first WiC val row: label false


def test_mnli_fixture_gives_matched_and_mismatched(fixture_data_dir):
    spec = task("mnli")
    splits = sources.load_splits(spec, fixture_data_dir)
    assert sorted(splits) == ["train", "validation_matched", "validation_mismatched"]
    assert splits["train"]["label"] == [0, 2, 1]  # entailment, contradiction, neutral in the hub's order
    assert len(splits["validation_mismatched"]) == 3


@pytest.mark.parametrize("name", ["qqp", "qnli"])
def test_fixture_tasks_without_local_real_data(fixture_data_dir, name):
    splits = sources.load_splits(task(name), fixture_data_dir)
    assert set(splits["train"]["label"]) == {0, 1}


def test_missing_file_names_path_and_hub_alternative(data_dir):
    with pytest.raises(DataError, match=r"glue/QQP/train.tsv is missing.*hub"):
        sources.load_splits(task("qqp"), data_dir)


def test_wrong_column_count_names_file_and_line(tmp_path):
    folder = tmp_path / "glue" / "RTE"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tc\tnot_entailment\n")
    with pytest.raises(DataError, match=r"train.tsv, line 3: expected 4 tab-separated columns"):
        sources.load_local_split(task("rte"), tmp_path, "train")


def test_unknown_label_names_file_line_and_choices(tmp_path):
    folder = tmp_path / "glue" / "RTE"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(DataError, match=r"line 2: label 'maybe' is not one of \['entailment', 'not_entailment'\]"):
        sources.load_local_split(task("rte"), tmp_path, "train")


def test_missing_column_names_it(tmp_path):
    folder = tmp_path / "glue" / "RTE"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text("index\tpremise\tsentence2\tlabel\n0\ta\tb\tentailment\n")
    with pytest.raises(DataError, match=r"column 'sentence1'.*missing"):
        sources.load_local_split(task("rte"), tmp_path, "train")

"""The users' default path: without ``data.dir`` every task loads from the Hugging Face hub.

A folder laid out like the hub's dataset repositories (tests/data/hub_layout.py) is built from slices of the original
files and read through the hub path's own ``datasets.load_dataset`` call (``sources.load_splits`` without a data
folder, the task's ``hub.path`` pointed at the local repository folder). Hub and local files must give the same
columns, rows, labels and regime subset: a wrong config, split, column or label order would show here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import datasets
import pytest
from omegaconf import OmegaConf

from beft.data import features, regimes, sources
from beft.data.tasks import TaskSpec
from beft.errors import DataError
from tests.conftest import CONF_DIR, DATA_DIR, FIXTURE_DATA
from tests.data import hub_layout

ROWS = 120  # rows (JSONL lines) of each original file the tests keep: enough for a regime subset, fast to build
SEED = 3

# (task, model kind): every task config, in each framing whose hub source differs
CASES = [
    *[(t, "encoder") for t in ("sst2", "rte", "qqp", "qnli", "mnli", "cola", "mrpc", "stsb", "cb", "wic")],
    *[(t, "encoder") for t in ("pawsx", "commonsense_qa")],
    *[(t, "decoder") for t in ("rte", "wic", "boolq", "wsc", "multirc", "copa", "record", "squad", "drop")],
]


def task_spec(name: str, kind: str) -> TaskSpec:
    cfg = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "task" / f"{name}.yaml"), resolve=True)
    return TaskSpec.from_config(cfg, pipeline=kind)


def original(task: TaskSpec, split: str) -> Path:
    """The real file, else the fixture; BoolQ's training file is not available offline: its validation file serves."""
    file = task.local.files[split]
    for base in (DATA_DIR, FIXTURE_DATA):
        if (base / task.local.folder / file).is_file():
            return base / task.local.folder / file
    if task.name == "boolq" and split == "train":
        return original(task, "validation")
    raise FileNotFoundError(f"{task.local.folder}/{file} is in neither {DATA_DIR} nor {FIXTURE_DATA}")


def write_slice(task: TaskSpec, split: str, source: Path, target: Path) -> None:
    """The first ROWS rows of an original file in its own format (BoolQ's stand-in train: the next ROWS lines)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if task.local.format.endswith("_json"):
        doc = json.loads(source.read_text(encoding="utf-8"))
        if task.local.format == "squad_json":
            doc = {**doc, "data": [{**doc["data"][0], "paragraphs": doc["data"][0]["paragraphs"][:6]}]}
        target.write_text(json.dumps(doc), encoding="utf-8")
        return
    lines = source.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    header = lines[:1] if task.local.format == "tsv" and task.local.columns is None else []
    body = lines[len(header) :]
    start = ROWS if source.name != task.local.files[split] else 0
    keep = 4 if task.local.format == "multirc_jsonl" else ROWS  # a MultiRC line holds a passage's many answers
    target.write_text("".join(header + body[start : start + keep]), encoding="utf-8")


@pytest.fixture
def both(tmp_path):
    """(task, splits read from local files, splits read through the hub path) for a case."""

    def load(name: str, kind: str):
        task = task_spec(name, kind)
        local_dir = tmp_path / "local"
        files = {}
        for split in sources.required_splits(task):
            files[split] = local_dir / task.local.folder / task.local.files[split]
            write_slice(task, split, original(task, split), files[split])
        repo = hub_layout.build(tmp_path / "hub", task.hub_path, task.hub_name, files)
        hub_task = dataclasses.replace(task, hub_path=str(repo))  # the hub path's load_dataset call, on the folder
        return task, sources.load_splits(task, local_dir), sources.load_splits(hub_task, None)

    return load


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_hub_and_local_files_give_the_same_rows_and_subset(both, name, kind):
    task, local, hub = both(name, kind)
    assert set(hub) == set(local) == set(sources.required_splits(task))
    for split in local:
        assert hub[split].column_names == local[split].column_names == task.fields
        assert hub[split].to_list() == local[split].to_list(), f"{name} ({kind}) {split}: rows differ"
    n = min(len(local["train"]), 50)
    subset = regimes.subset_indices(len(hub["train"]), n, SEED)
    assert subset == regimes.subset_indices(len(local["train"]), n, SEED)
    hub_rows, local_rows = hub["train"].select(subset), local["train"].select(subset)
    assert hub_rows.to_list() == local_rows.to_list()
    # the record's subset_content_sha256: the same data reads the same wherever it came from
    assert features.data_fingerprint(hub_rows) == features.data_fingerprint(local_rows)


@pytest.mark.parametrize(("name", "kind"), [c for c in CASES if task_spec(*c).label_names is not None])
def test_label_ids_follow_the_hubs_class_names(name, kind):
    """A task's label_names are the hub's ClassLabel names in the hub's order (or, for a hub column that is not a
    ClassLabel, the values it maps to label ids in that order)."""
    task = task_spec(name, kind)
    hub = hub_layout.features_of(task.hub_path, task.hub_name)
    column = task.hub_fields.get("label", "label")
    if isinstance(hub[column], datasets.ClassLabel):
        assert [n.lower() for n in hub[column].names] == [n.lower() for n in task.label_names]


def test_a_hub_class_order_other_than_the_tasks_is_refused(tmp_path):
    """Label ids follow the task's label_names; a hub whose classes come in another order is named, not remapped."""
    task = task_spec("rte", "encoder")
    files = {s: tmp_path / "local" / s for s in sources.required_splits(task)}
    for split, target in files.items():
        write_slice(task, split, original(task, split), target)
    repo = hub_layout.build(tmp_path / "hub", task.hub_path, task.hub_name, files)
    swapped = dataclasses.replace(task, hub_path=str(repo), label_names=["not_entailment", "entailment"])
    with pytest.raises(DataError, match=r"labels are \['entailment', 'not_entailment'\], the task's label_names "
                       r"\['not_entailment', 'entailment'\]: label ids would differ"):  # fmt: skip
        sources.load_splits(swapped, None)


def test_the_content_hash_ignores_where_a_split_was_loaded_from():
    ds = datasets.Dataset.from_dict({"sentence": ["a", "b"], "label": [0, 1]})
    again = ds.cast(ds.features)  # the same rows with another cache fingerprint in the schema's metadata
    assert features.data_fingerprint(ds) == features.data_fingerprint(again)
    assert features.data_fingerprint(ds) != features.data_fingerprint(ds.select([1, 0]))

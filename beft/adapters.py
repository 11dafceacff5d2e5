"""Trained biases as a shareable peft adapter: a few kilobytes that stock peft loads, instead of a model copy.

A run that trains biases (plus the task head) is stored in peft's BEFT format: every trained ``nn.Linear`` bias becomes
a BEFT weight holding ``trained bias - pre-trained bias`` (peft adds it to the layer's output, and merging adds it to
the layer's bias); the task head, and any other trained module that is not a linear layer (BitFit's LayerNorms), goes
into ``modules_to_save`` whole. Modules are found structurally (the role map and module ownership of each trained
parameter), never by substrings of parameter names.

Merging needs a bias in the base layer. A bias *added* to a bias-free model (LLaMA, GPT-J) exports as an adapter
whose delta is the whole added bias; it cannot be merged into a plain model, and ``merge`` says so.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import BeftConfig, PeftModel, get_peft_model
from peft.tuners.beft import BeftLayer
from peft.utils.other import ModulesToSaveWrapper
from torch import nn
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
)

from beft import atomic, records
from beft.errors import BeftError
from beft.models import loading, targets
from beft.pipelines import pipeline_for
from beft.spec import RunSpec

ADAPTER_DIR = "adapter"  # inside the run folder, next to record.json
META_FILE = "beft.json"  # beft's own metadata (task, labels, model source); stock peft ignores it
META_VERSION = 1
_ADAPTER_NAME = "default"


class AdapterError(BeftError):
    """The trained parameters cannot be written as a BEFT adapter (e.g. weights were trained)."""


class MergeError(BeftError):
    """The adapter cannot be merged into a plain model (a targeted layer has no bias)."""


@dataclass(frozen=True)
class AdapterSpec:
    """What the adapter holds. Paths are module paths in the top-level model."""

    targets: list[str]  # linear layers whose bias delta is a BEFT weight
    modules_to_save: list[str]  # modules stored whole: the task head, trained non-linear modules (LayerNorm)
    task_type: str | None  # peft task type, so that from_pretrained builds the right PeftModel class


def adapter_spec(model: nn.Module, trained: Iterable[nn.Parameter] | None = None) -> AdapterSpec:
    """Which modules become BEFT targets and which are saved whole, from the parameters a run trained.

    Raises AdapterError when a trained parameter outside the head is not a bias (full fine-tuning, rand_uniform):
    such a run has no bias adapter. With no trained bias at all (frozen encoder) the adapter targets the value
    projections with zero deltas, because peft needs at least one target; a zero delta changes nothing.
    """
    trained = list(trained) if trained is not None else [p for p in model.parameters() if p.requires_grad]
    trained_ids = {id(p) for p in trained}
    if trained_ids - {id(p) for p in model.parameters()}:
        raise AdapterError("parameters outside the model were trained (prefix tuning's prefixes): no bias adapter")
    module_names = dict(model.named_modules())
    arch = targets.architecture_of(model)
    head = [name for name in arch.head if name in module_names]
    head_ids = {id(p) for p in targets.head_parameters(model)}
    bias_targets: list[str] = []
    whole: list[str] = []
    for path, module in module_names.items():
        for local, p in module.named_parameters(recurse=False):
            if id(p) not in trained_ids or id(p) in head_ids:
                continue
            if local != "bias":
                raise AdapterError(
                    f"{path}.{local} was trained and is not a bias: a BEFT adapter holds trained biases (plus the head)"
                )
            (bias_targets if isinstance(module, nn.Linear) else whole).append(path)
    if not bias_targets:
        by_id = {id(m): name for name, m in module_names.items()}
        bias_targets = [by_id[id(m)] for m in targets.role_modules(model, "v")]
    return AdapterSpec(bias_targets, head + whole, _task_type(model))


def _task_type(model: nn.Module) -> str | None:
    name = type(model).__name__
    if name in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.values():
        return "SEQ_CLS"
    if name in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values():
        return "CAUSAL_LM"
    return None


def build_peft_model(
    trained: nn.Module, pretrained: nn.Module, spec: AdapterSpec, base_name: str | None = None
) -> PeftModel:
    """Wrap ``pretrained`` (in place) in a BEFT PeftModel that computes what ``trained`` computes.

    Every parameter that is neither a target bias nor in a saved module must equal the pre-trained one, otherwise the
    adapter on the stock base model would not reproduce the run (e.g. a pooler missing from the checkpoint).
    """
    _check_untouched(trained, pretrained, spec)
    config = BeftConfig(
        task_type=spec.task_type,
        target_modules=list(spec.targets),
        modules_to_save=list(spec.modules_to_save) or None,
    )
    peft_model = get_peft_model(pretrained, config)
    if base_name is not None:  # after wrapping: get_peft_model overwrites it with the folder the model came from
        peft_model.peft_config[_ADAPTER_NAME].base_model_name_or_path = base_name
    inner = peft_model.base_model.model
    with torch.no_grad():
        for path in spec.targets:
            layer = inner.get_submodule(path)
            new, old = trained.get_submodule(path).bias, layer.get_base_layer().bias
            delta = layer.beft_bias[_ADAPTER_NAME]
            if new is None:  # an untrained target (frozen encoder): no change
                value = torch.zeros(delta.shape[-1])
            else:  # a bias added to a bias-free layer is its own delta
                value = new.detach().cpu().float() - (0.0 if old is None else old.detach().cpu().float())
            delta.copy_(value.view_as(delta))
        for path in spec.modules_to_save:
            wrapper = inner.get_submodule(path)
            wrapper.modules_to_save[_ADAPTER_NAME].load_state_dict(trained.get_submodule(path).state_dict())
    return peft_model.eval()


def _check_untouched(trained: nn.Module, pretrained: nn.Module, spec: AdapterSpec) -> None:
    saved = tuple(f"{path}." for path in spec.modules_to_save)
    target_biases = {f"{path}.bias" for path in spec.targets}
    base = dict(pretrained.named_parameters())
    for name, p in trained.named_parameters():
        if name in target_biases or name.startswith(saved):
            continue
        if name not in base or not torch.equal(p.detach().cpu(), base[name].detach().cpu()):
            raise AdapterError(
                f"{name} differs from the pre-trained model but is not part of the adapter: "
                "the adapter would not reproduce the trained model"
            )


def merge_blockers(model: nn.Module) -> list[str]:
    """BEFT-targeted layers whose base layer has no bias: their delta has nothing to be added to."""
    prefix = "base_model.model."  # PeftModel -> BeftModel -> the transformers model
    return [
        name.removeprefix(prefix)
        for name, m in model.named_modules()
        if isinstance(m, BeftLayer) and m.get_base_layer().bias is None
    ]


def save_adapter(
    trained: nn.Module,
    pretrained: nn.Module,
    folder: str | Path,
    trained_params: Iterable[nn.Parameter] | None = None,
    base_name: str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the adapter folder (adapter_config.json + adapter_model.safetensors + beft.json); return its summary.

    ``pretrained`` is consumed (wrapped in place). The folder is replaced as a whole: written next to the target and
    renamed, so a reader never sees a half-written adapter.
    """
    spec = adapter_spec(trained, trained_params)
    peft_model = build_peft_model(trained, pretrained, spec, base_name)
    blockers = merge_blockers(peft_model)
    summary_meta = {
        "version": META_VERSION,
        **(meta or {}),
        "base_model": base_name,
        "targets": spec.targets,
        "modules_to_save": spec.modules_to_save,
        "mergeable": not blockers,
        "merge_note": _merge_note(blockers) if blockers else None,
    }
    folder = Path(folder)
    with atomic.folder(folder) as tmp:  # a reader never sees a half-written adapter
        peft_model.save_pretrained(str(tmp), save_embedding_layers=False)  # BEFT never targets embeddings
        (tmp / META_FILE).write_text(json.dumps(summary_meta, indent=2) + "\n")
    return {
        "path": str(folder.resolve()),
        "bytes": folder_bytes(folder),
        "mergeable": not blockers,
        "targets": len(spec.targets),
    }


def folder_bytes(folder: str | Path) -> int:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def _merge_note(blockers: list[str]) -> str:
    shown = ", ".join(blockers[:3]) + (f" and {len(blockers) - 3} more" if len(blockers) > 3 else "")
    return (
        f"cannot merge: {shown} ha{'s' if len(blockers) == 1 else 've'} no bias in the base model (a bias added to a "
        "bias-free model); keep the adapter form and load it with PeftModel.from_pretrained"
    )


def save_run_adapter(spec: RunSpec, model: nn.Module, trained_params: list[nn.Parameter]) -> dict[str, Any]:
    """The adapter of one run (``<run folder>/adapter``), or ``path: None`` with the reason when there is none."""
    method = spec.method["name"]
    folder = spec.folder / ADAPTER_DIR
    shutil.rmtree(folder, ignore_errors=True)  # a forced rerun never leaves a stale adapter
    if not spec.save_adapter:
        return {"path": None, "bytes": None, "reason": "save_adapter=false"}
    if not spec.trains:
        return {"path": None, "bytes": None, "reason": f"method {method} trains nothing"}
    try:
        adapter_spec(model, trained_params)
    except AdapterError as err:
        return {"path": None, "bytes": None, "reason": f"method {method} has no bias adapter: {err}"}
    model_cfg = dict(spec.model)
    pretrained, _, source = pipeline_for(model_cfg).load(model_cfg, spec.task)
    meta = {
        "run": spec.name,
        "method": method,
        "bias_roles": spec.bias["roles"],
        "model": model_cfg,
        "task": spec.config["task"],
        "max_length": spec.data.max_length,
        "source": source,
    }
    # A packaged model is a copy of its hub model: name the hub id, which anyone can load.
    base_name = source if model_cfg.get("path") else model_cfg.get("hub_id", source)
    return save_adapter(model, pretrained, folder, trained_params, base_name, meta)


# --- loading, merging and exporting ---------------------------------------------------------------------------------


def find_adapter(path: str | Path) -> Path:
    """The adapter folder of a run folder (its own ``adapter/``, never a path stored in the record: a copied or moved
    run folder must use what it holds) or the folder itself when it is an adapter."""
    path = Path(path)
    if (path / "adapter_config.json").is_file():
        return _complete(path)
    record = records.read_run(path)
    if record is None:
        raise AdapterError(f"{path} is neither an adapter folder (adapter_config.json) nor a run folder (record.json)")
    if not record.completed:
        raise AdapterError(f"{path}: the run is {record.status!r}, not completed")
    if record.adapter is not None and record.adapter.get("path") is None:
        raise AdapterError(f"{path}: the run has no adapter: {record.adapter.get('reason')}")
    if not (path / ADAPTER_DIR / "adapter_config.json").is_file():
        raise AdapterError(f"{path}: no adapter folder found (expected {path / ADAPTER_DIR}/adapter_config.json)")
    return _complete(path / ADAPTER_DIR)


def _complete(adapter_dir: Path) -> Path:
    """The adapter's weights file is whole (a truncated copy is named before any model loads)."""
    loading.check_weights(str(adapter_dir), fix="copy the adapter again, or rerun its run with force=true")
    return adapter_dir


def read_meta(adapter_dir: str | Path) -> dict[str, Any]:
    path = Path(adapter_dir) / META_FILE
    if not path.is_file():
        raise AdapterError(
            f"{adapter_dir} has no {META_FILE} (not written by beft): load the base model yourself and call "
            "load_adapter(folder, base_model)"
        )
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AdapterError(f"{path} is not valid JSON (truncated?); copy the adapter again") from None


def load_base(adapter_dir: str | Path, base: str | None = None):
    """(pre-trained model with the task's head shape, tokenizer, task) for a beft adapter; ``base`` overrides the
    source recorded in the adapter (a local folder or a hub id)."""
    meta = read_meta(adapter_dir)
    model_cfg = dict(meta["model"])
    if base is not None:
        where = {"path": base} if Path(base).is_dir() else {"path": None, "package": None, "hub_id": base}
        model_cfg = {"kind": model_cfg.get("kind"), "name": model_cfg.get("name"), **where}
    pipeline = pipeline_for(model_cfg)
    task = pipeline.task_spec(meta["task"])
    model, tokenizer, _ = pipeline.load(model_cfg, task)
    return model, tokenizer, task


def load_adapter(adapter_dir: str | Path, base_model: nn.Module) -> PeftModel:
    """Stock peft loading: what a user without beft does."""
    return PeftModel.from_pretrained(base_model, str(adapter_dir)).eval()


def merge(peft_model: PeftModel) -> nn.Module:
    """The plain transformers model with the bias deltas added into the base biases and the saved modules in place.

    Checked before touching anything: peft would raise midway, leaving some layers merged and others not.
    """
    blockers = merge_blockers(peft_model)
    if blockers:
        raise MergeError(_merge_note(blockers))
    # Saved modules are put in place first: peft 0.21's unload copies `.weight` onto them, which fails for a head
    # made of several layers (RoBERTa's classifier).
    inner = peft_model.base_model.model
    for name, module in list(inner.named_modules()):
        if isinstance(module, ModulesToSaveWrapper):
            parent, _, child = name.rpartition(".")
            trained = module.unload_and_optionally_merge_module(merge=True, safe_merge=False, adapter_names=None)
            setattr(inner.get_submodule(parent), child, trained)
    return peft_model.merge_and_unload()


def export(
    path: str | Path,
    adapter_out: str | Path | None = None,
    merged_out: str | Path | None = None,
    base: str | None = None,
    overwrite: bool = False,
) -> dict[str, str]:
    """From a run folder (or an adapter folder): copy the adapter to ``adapter_out`` and/or write the merged model
    (weights, config and tokenizer) to ``merged_out``. The adapter is written first, so it exists even when merging
    is refused. A non-empty output folder is refused unless ``overwrite`` (then it is replaced as a whole)."""
    adapter_dir = find_adapter(path)
    same = adapter_out is not None and Path(adapter_out).resolve() == adapter_dir.resolve()
    for out in (None if same else adapter_out, merged_out):
        _check_new_folder(out, overwrite)
    written: dict[str, str] = {}
    if adapter_out is not None:
        if not same:
            with atomic.folder(adapter_out) as tmp:
                shutil.copytree(adapter_dir, tmp, dirs_exist_ok=True)
        written["adapter"] = str(adapter_out)
    if merged_out is not None:
        model, tokenizer, _ = load_base(adapter_dir, base)
        merged = merge(load_adapter(adapter_dir, model))
        with atomic.folder(merged_out) as tmp:
            merged.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
        written["merged"] = str(merged_out)
    return written


def _check_new_folder(out: str | Path | None, overwrite: bool = False) -> None:
    """Export writes whole new folders: it never mixes its files into (or deletes) a folder that holds others, unless
    told to replace it (``--overwrite``); a file is never replaced by a folder."""
    if out is None or not Path(out).exists():
        return
    if not Path(out).is_dir():
        raise AdapterError(f"{out} is a file; choose a new output folder")
    if any(Path(out).iterdir()) and not overwrite:
        raise AdapterError(
            f"{out} already exists and is not an empty folder; choose a new output folder, or add --overwrite to "
            "replace it as a whole"
        )

"""The trained state of a run that has no bias adapter (full fine-tuning, rand_uniform, bias PEFT, LoRA...).

``<run folder>/model/`` holds ``trainable.safetensors``, the tensors the run trained, and ``beft.json``, the run's
resolved config. A masked tensor (rand_uniform) is stored as the flat indices of its trained entries and their
values, so the file holds the trained entries only. Loading rebuilds the model as the run built it (pre-trained
weights, the seeded head, the method's modules) and puts the trained tensors in place.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file
from torch import nn

from beft import adapters, atomic, records
from beft.data.tasks import TaskSpec
from beft.errors import BeftError
from beft.models.methods import TrainableSet
from beft.pipelines import pipeline_for
from beft.spec import RunSpec

ARTIFACT_DIR = "model"  # inside the run folder, next to record.json
WEIGHTS_FILE = "trainable.safetensors"
META_FILE = "beft.json"
META_VERSION = 1
_INDEX, _VALUES = ".__index__", ".__values__"  # key suffixes of a masked tensor's trained entries


class ArtifactError(BeftError):
    """A run's model artifact is missing or does not fit the model it rebuilds."""


def trained_state(model: nn.Module, trainable: TrainableSet) -> dict[str, torch.Tensor]:
    """name -> trained tensor; a masked tensor as its trained entries' flat indices and values."""
    ids = {id(p) for p in trainable.params}
    state: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        if id(p) not in ids:
            continue
        value = p.detach().cpu().contiguous()
        if (mask := trainable.masks.get(id(p))) is not None:
            index = mask.detach().cpu().reshape(-1).nonzero().squeeze(1)
            state[name + _INDEX], state[name + _VALUES] = index, value.reshape(-1)[index].clone()
        else:
            state[name] = value
    return state


def save_run_artifact(
    spec: RunSpec, model: nn.Module, trainable: TrainableSet, adapter: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Write ``<run folder>/model`` when the run trained something that no bias adapter holds; its summary (path
    relative to the run folder), or None when the adapter holds the run (or saving is off)."""
    folder = spec.folder / ARTIFACT_DIR
    shutil.rmtree(folder, ignore_errors=True)  # a forced rerun never leaves a stale artifact
    has_adapter = adapter is not None and adapter.get("path") is not None
    if has_adapter or not spec.save_adapter or not spec.trains or not pipeline_for(spec.model).saves_model_artifact:
        return None
    state = trained_state(model, trainable)
    meta = {"version": META_VERSION, "run": spec.name, "method": spec.method["name"], "config": dict(spec.config)}
    with atomic.folder(folder) as tmp:  # a reader never sees a half-written artifact
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    size = sum(f.stat().st_size for f in folder.iterdir())
    return {"path": ARTIFACT_DIR, "bytes": size, "tensors": len(trainable.params), "masked": len(trainable.masks)}


def find_artifact(run_folder: str | Path) -> Path:
    """``<run folder>/model`` of a completed run, taken from the folder given (the record's path is relative)."""
    run_folder = Path(run_folder)
    record = records.read_run(run_folder)
    if record is None:
        raise ArtifactError(f"{run_folder} is not a run folder (no readable record.json)")
    if not record.completed:
        raise ArtifactError(f"{run_folder}: the run is {record.status!r}, not completed")
    folder = run_folder / (record.artifact or {}).get("path", ARTIFACT_DIR)
    if not (folder / WEIGHTS_FILE).is_file():
        why = (record.adapter or {}).get("reason") or "it predates model artifacts"
        raise ArtifactError(
            f"{run_folder}: the run has neither a bias adapter nor a model artifact ({folder / WEIGHTS_FILE} is "
            f"missing; {why}): rerun it with force=true to write one"
        )
    return folder


def read_spec(artifact_dir: str | Path) -> RunSpec:
    """The run's settings as it ran (the resolved config stored with the artifact)."""
    meta = json.loads((Path(artifact_dir) / META_FILE).read_text())
    return RunSpec.unchecked(OmegaConf.create(meta["config"]))


def load_artifact(artifact_dir: str | Path) -> tuple[nn.Module, Any, RunSpec]:
    """(the trained model in eval mode, its tokenizer, the run's spec): rebuilt as the run built it, with the
    trained tensors in place. Every stored tensor must find its parameter, of the same shape."""
    from beft.run import build_model  # the one place a run's model is built (beft.run imports this module)

    spec = read_spec(artifact_dir)
    model, tokenizer = build_model(spec)[:2]
    params = dict(model.named_parameters())
    state = load_file(str(Path(artifact_dir) / WEIGHTS_FILE))
    with torch.no_grad():
        for key, value in state.items():
            if key.endswith(_VALUES):
                continue
            name = key.removesuffix(_INDEX)
            if name not in params:
                raise ArtifactError(f"{artifact_dir}: stored tensor {name} is not a parameter of the rebuilt model")
            target = params[name]
            if key.endswith(_INDEX):
                target.view(-1)[value] = state[name + _VALUES].to(target.dtype)
            elif target.shape != value.shape:
                raise ArtifactError(f"{artifact_dir}: {name} has shape {tuple(value.shape)}, the model's is "
                                    f"{tuple(target.shape)}")  # fmt: skip
            else:
                target.copy_(value)
    return model.eval(), tokenizer, spec


@dataclass(frozen=True)
class TrainedRun:
    """Where a run's trained state is (its bias adapter or its model artifact) and the task it was trained on: found
    and checked before anything heavy loads."""

    folder: Path
    from_adapter: bool
    task: TaskSpec
    max_length: int

    def load(self, base: str | None = None) -> tuple[nn.Module, Any]:
        """(the trained model in eval mode, on the GPU when there is one; its tokenizer)."""
        if not self.from_adapter:
            if base is not None:
                raise ArtifactError(f"--base {base}: {self.folder} is a model artifact, which names its own base")
            model, tokenizer, _ = load_artifact(self.folder)
            return _on_device(model), tokenizer
        base_model, tokenizer, _ = adapters.load_base(self.folder, base)
        return adapters.load_adapter(self.folder, _on_device(base_model)), tokenizer


def trained_run(path: str | Path) -> TrainedRun:
    """The trained state of a run folder (or an adapter folder): its bias adapter when it has one, else its model
    artifact. A decoder run is refused: beft.predict labels with an encoder's head."""
    path = Path(path)
    record = None if (path / "adapter_config.json").is_file() else records.read_run(path)
    if record is not None and record.completed and (record.adapter or {}).get("path") is None:
        _check_encoder(path, ((record.config or {}).get("model") or {}).get("kind", "encoder"))
        spec = read_spec(folder := find_artifact(path))
        return TrainedRun(folder, False, spec.task, spec.data.max_length)
    adapter_dir = adapters.find_adapter(path)
    meta = adapters.read_meta(adapter_dir)
    _check_encoder(adapter_dir, meta["model"].get("kind", "encoder"))
    return TrainedRun(adapter_dir, True, TaskSpec.from_config(meta["task"]), meta.get("max_length", 128))


def _check_encoder(where: Path, kind: str) -> None:
    if kind != "encoder":
        raise ArtifactError(
            f"{where} is a {kind} run: beft.predict labels texts with an encoder's head; load a decoder adapter with "
            "PeftModel.from_pretrained and score its prompts (README, Decoders)"
        )


def _on_device(model: nn.Module) -> nn.Module:
    return model.cuda() if torch.cuda.is_available() else model

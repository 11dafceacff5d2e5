"""The paper's names of models, tasks and methods -> this suite's config names, read from conf/ where conf/ has them.

The names are conf/paper.yaml's; each conf file is read on its own with OmegaConf (no Hydra composition). A model is
named in the paper by its hub id (conf/model/<name>.yaml ``hub_id``); a task column names a conf/task config and the
evaluation split it reports (MNLI-m and MNLI-mm are the matched and mismatched splits of one run).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from omegaconf import OmegaConf

from beft import CONF_DIR
from beft.data.tasks import TaskSpec

BIASES = ("v", "q", "k")  # the attention biases BEFT compares (paper §3), in the paper's order


@cache
def _paper() -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / "paper.yaml"))  # type: ignore[return-value]


@cache
def _configs(group: str) -> dict[str, dict[str, Any]]:
    """conf/<group>/*.yaml by config name, each as plain data."""
    out = {}
    for path in sorted((CONF_DIR / group).glob("*.yaml")):
        cfg = OmegaConf.to_container(OmegaConf.load(path))
        out[cfg["name"]] = cfg
    return out


def paper_models() -> dict[str, str]:
    """The paper's model names (hub ids) -> conf/model names, for the models the paper ran."""
    models = _configs("model")
    return {models[name]["hub_id"]: name for name in _paper()["models"]}


def paper_tasks() -> dict[str, tuple[str, str | None]]:
    """The paper's task columns -> (conf/task name, the evaluation split the column reports; None: the only one)."""
    return {column: (entry["task"], entry["split"]) for column, entry in _paper()["tasks"].items()}


def paper_task(task: str) -> str | None:
    """The paper's column of a task that has one split (None for MNLI, whose two columns are its two splits)."""
    return next((column for column, (name, split) in paper_tasks().items() if name == task and split is None), None)


def main_column(task: str) -> str:
    """``<split>/<metric>`` of the task's main score as an encoder reports it (accuracy for a task not in conf/)."""
    cfg = _configs("task").get(task)
    if cfg is None:
        return "validation/accuracy"
    spec = TaskSpec.from_config(cfg)
    return f"{spec.main_split}/{spec.main_metric}"


def config_method(paper_method: str) -> str:
    return _paper()["methods"].get(paper_method, paper_method)


def takes_bias(method: str) -> bool:
    """Whether runs of ``method`` are one per bias kind (their label names it: ``beft-v``, ``bias_lora-q``)."""
    return method == "beft" or method.startswith("bias_")


def run_label(method: str, bias: str) -> str:
    """The run label (conf/method ``label``) of a method and the paper's bias (``b_v``; ``n/a`` for other methods)."""
    bias = bias.removeprefix("b_")
    return f"{method}-{bias}" if takes_bias(method) else method


def layout(table: str) -> tuple[list[str], list[str], str]:
    """The fields of a paper table's rows and of its columns, and the label of a row or column that has none
    (conf/paper.yaml ``layouts``)."""
    layouts = _paper()["layouts"]
    chosen = layouts.get(table, layouts["default"])
    return list(chosen["rows"]), list(chosen["columns"]), chosen.get("unnamed", "·")


def label(field: str, value: str) -> str:
    """How the paper prints a row or column value (conf/paper.yaml ``labels``); a value without one as is."""
    return _paper()["labels"].get(field, {}).get(value, value)


def model_kind(model: str) -> str | None:
    """A conf/model config's kind (``encoder``, ``decoder``) from its defaults list; None for an unknown model."""
    cfg = _configs("model").get(model)
    if cfg is None:
        return None
    return next(
        (entry["kind"] for entry in cfg.get("defaults", []) if isinstance(entry, dict) and "kind" in entry), None
    )

"""The paper's names of models, tasks and methods -> this suite's config names, read from conf/ where conf/ has them.

Each conf file is read on its own with OmegaConf (no Hydra composition). A model is named in the paper by its hub id
(conf/model/<name>.yaml ``hub_id``; ``in_paper: false`` marks the offline models the paper did not run). A task's
columns in the paper are ``paper_columns`` of conf/task/<name>.yaml: column -> the evaluation split it reports (null:
the task's one split; MNLI-m and MNLI-mm are the matched and mismatched splits of one run). Methods: METHODS.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from beft.data.tasks import TaskSpec

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
# The paper's method names that differ from conf/method's; every other one (lora, prefix, icl, zero_shot, vera, dora,
# rand_uniform and the bias PEFTs bias_lora, bias_vera, bias_vera1d, bias_dora, bias_pissa, bias_balora) is the same.
METHODS = {"bias_ft": "beft", "beft": "beft", "added_bias_ft": "beft", "all_biases": "bitfit", "full_ft": "full"}
BIASES = ("v", "q", "k")  # the attention biases BEFT compares (paper §3), in the paper's order


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
    return {cfg["hub_id"]: name for name, cfg in _configs("model").items() if cfg["in_paper"]}


def paper_tasks() -> dict[str, tuple[str, str | None]]:
    """The paper's task columns -> (conf/task name, the evaluation split the column reports; None: the only one)."""
    tasks = _configs("task").items()
    return {column: (name, split) for name, cfg in tasks for column, split in cfg["paper_columns"].items()}


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
    return METHODS.get(paper_method, paper_method)


def takes_bias(method: str) -> bool:
    """Whether runs of ``method`` are one per bias kind (their label names it: ``beft-v``, ``bias_lora-q``)."""
    return method == "beft" or method.startswith("bias_")


def run_label(method: str, bias: str) -> str:
    """The run label (conf/method ``label``) of a method and the paper's bias (``b_v``; ``n/a`` for other methods)."""
    bias = bias.removeprefix("b_")
    return f"{method}-{bias}" if takes_bias(method) else method

"""TaskSpec: what a task is, read from its config (conf/task/<name>.yaml); code holds no per-task facts.

A task that both pipelines run (SST-2, RTE, CB, WiC) describes its encoder framing at the top level and its decoder
(prompt) framing in a ``decoder:`` block whose keys replace the top-level ones (docs/experiments.md §2.2: the decoders
read RTE from SuperGLUE and report CB's accuracy). ``TaskSpec.from_config(cfg, pipeline="decoder")`` applies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LocalFiles:
    """The original release files of a task inside the data folder (the layout of ../shared/data)."""

    folder: str
    format: str  # "tsv" | "jsonl"
    files: dict[str, str]  # split -> file name
    fields: dict[str, str]  # field -> column of the file
    columns: list[str] | None = None  # column names when the file has no header row
    split_columns: dict[str, list[str] | None] = field(default_factory=dict)  # split -> its own ``columns``

    def columns_of(self, split: str) -> list[str] | None:
        """The column names of ``split``'s file (None: it has a header row); CoLA's test file has a header."""
        return self.split_columns.get(split, self.columns)


@dataclass(frozen=True)
class Leaderboard:
    """The benchmark's submission files of a task's test splits (docs/usage.md, Leaderboard files)."""

    files: dict[str, list[str]]  # test split -> its submission files (.tsv: GLUE's format, .jsonl: SuperGLUE's)
    id_column: str  # the example-id column of the test file (local) and of the hub split
    labels: dict[str, Any] | None  # predicted label name -> the value the benchmark expects; None = regression


@dataclass(frozen=True)
class TaskSpec:
    name: str
    hub_path: str
    hub_name: str | None
    text_fields: list[str]
    label_names: list[str] | None  # None = regression
    metrics: list[str]
    main_metric: str
    eval_splits: dict[str, str]  # record key -> split
    local: LocalFiles | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    kind: str | None = None  # classification | regression | generation; None = from label_names (older configs)
    train_size: int | None = None  # rows of the official training split (checked before any data is loaded)
    regimes: list[str] | None = None  # regimes with a schedule; None = not declared (older configs)
    pipelines: tuple[str, ...] = ("encoder",)  # model kinds that run the task (encoder, decoder)
    template: str | None = None  # decoder prompt template (beft/data/templates.py, docs/templates.md)
    list_fields: tuple[str, ...] = ()  # fields holding a list of strings (candidate entities, gold answers)
    hub_fields: dict[str, str] = field(default_factory=dict)  # field -> hub column (dotted) where the names differ
    leaderboard: Leaderboard | None = None  # submission files of the test splits (unlabeled rows)

    @property
    def test_splits(self) -> list[str]:
        """The test splits: their rows may lack a label (read as -1) and carry the benchmark's example id."""
        return list(self.leaderboard.files) if self.leaderboard else []

    @property
    def is_regression(self) -> bool:
        return self.task_kind == "regression"

    @property
    def has_labels(self) -> bool:
        """Rows carry an integer (or float) ``label``; ReCoRD, SQuAD and DROP carry gold ``answers`` instead."""
        return self.label_names is not None or self.is_regression

    @property
    def task_kind(self) -> str:
        return self.kind or ("regression" if self.label_names is None else "classification")

    @property
    def num_labels(self) -> int:
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def main_split(self) -> str:
        """The record key whose main metric is the run's score (MNLI: matched)."""
        return next(iter(self.eval_splits))

    @property
    def fields(self) -> list[str]:
        """Every field of a row: the text fields, the list fields, then ``label`` when the task has labels."""
        return [*self.text_fields, *self.list_fields, *(["label"] if self.has_labels else [])]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], pipeline: str = "encoder") -> TaskSpec:
        """The task as ``pipeline`` (a model kind) runs it; for decoders, the ``decoder`` block replaces keys."""
        if pipeline == "decoder" and cfg.get("decoder"):
            cfg = {**cfg, **cfg["decoder"]}
        local = cfg.get("local")
        return cls(
            name=cfg["name"],
            hub_path=cfg["hub"]["path"],
            hub_name=cfg["hub"].get("name"),
            text_fields=list(cfg["text_fields"]),
            label_names=None if cfg.get("label_names") is None else [str(x) for x in cfg["label_names"]],
            metrics=list(cfg["metrics"]),
            main_metric=cfg["main_metric"],
            eval_splits=dict(cfg["eval_splits"]),
            local=None
            if local is None
            else LocalFiles(
                folder=local["folder"],
                format=local["format"],
                files=dict(local["files"]),
                fields=dict(local["fields"]),
                columns=None if local.get("columns") is None else list(local["columns"]),
                split_columns={k: v and list(v) for k, v in (local.get("split_columns") or {}).items()},
            ),
            kind=cfg.get("kind"),
            train_size=cfg.get("train_size"),
            regimes=None if cfg.get("regimes") is None else list(cfg["regimes"]),
            pipelines=tuple(cfg.get("pipelines") or ("encoder",)),
            template=cfg.get("template"),
            list_fields=tuple(cfg.get("list_fields") or ()),
            hub_fields=dict(cfg["hub"].get("fields") or {}),
            leaderboard=_leaderboard(cfg.get("leaderboard")),
        )


def _leaderboard(cfg: Mapping[str, Any] | None) -> Leaderboard | None:
    if not cfg:
        return None
    labels = cfg.get("labels")
    return Leaderboard(
        files={split: [names] if isinstance(names, str) else list(names) for split, names in cfg["files"].items()},
        id_column=cfg["id_column"],
        labels=None if labels is None else {str(k): v for k, v in labels.items()},
    )

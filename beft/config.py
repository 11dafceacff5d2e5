"""Checks of a composed run config, done before any data or model is loaded.

Hydra already rejects unknown group choices (``model=foo``) with the list of valid ones; this covers values.
"""

from __future__ import annotations

from numbers import Real
from pathlib import Path

from omegaconf import DictConfig

from beft.data import sources
from beft.data.features import PADDING_MODES
from beft.data.tasks import TaskSpec
from beft.errors import ConfigError
from beft.models import loading, methods, targets
from beft.training import metrics


def _positive(value, name: str, integer: bool = False) -> None:
    kind = int if integer else Real
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        raise ConfigError(f"{name}={value!r} must be a positive {'integer' if integer else 'number'}")


def check(cfg: DictConfig) -> TaskSpec:
    """Raise ConfigError naming the bad value (and the valid choices); return the task spec."""
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int):
        raise ConfigError(f"seed={cfg.seed!r} must be an integer")
    args = cfg.trainer.args
    _positive(args.learning_rate, "trainer.args.learning_rate")
    _positive(args.num_train_epochs, "trainer.args.num_train_epochs")
    _positive(args.per_device_train_batch_size, "trainer.args.per_device_train_batch_size", integer=True)
    _positive(args.per_device_eval_batch_size, "trainer.args.per_device_eval_batch_size", integer=True)
    _positive(cfg.data.max_length, "data.max_length", integer=True)
    if cfg.data.num_train is not None:
        _positive(cfg.data.num_train, "data.num_train", integer=True)
    if cfg.data.padding not in PADDING_MODES:
        raise ConfigError(f"data.padding={cfg.data.padding!r} is not valid; choose one of {list(PADDING_MODES)}")
    if cfg.method.trainable not in methods.METHODS:
        raise ConfigError(f"method.trainable={cfg.method.trainable!r}; valid: {sorted(methods.METHODS)}")
    roles = cfg.bias.roles
    if roles != "all" and (not roles or any(r not in targets.ATTENTION_ROLES for r in roles)):
        raise ConfigError(f"bias.roles={roles!r}; valid: 'all' or a list of {list(targets.ATTENTION_ROLES)}")
    task = TaskSpec.from_config(cfg.task)
    unknown = [m for m in task.metrics if m not in metrics.METRICS]
    if unknown or task.main_metric not in task.metrics:
        raise ConfigError(
            f"task {task.name}: metrics {task.metrics} / main_metric {task.main_metric!r}; "
            f"valid metrics: {sorted(metrics.METRICS)}, and main_metric must be one of the task's metrics"
        )
    if cfg.data.dir is not None:
        for split in sources.required_splits(task):
            sources.local_file(task, Path(cfg.data.dir), split)
    loading.resolve_source(cfg.model)
    return task

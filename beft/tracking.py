"""Experiment tracking (``logger=wandb``): one wandb run per job, grouped by sweep, named and tagged by the run.

The run is started here (the Trainer's WandbCallback then logs into it) and always finished when the job ends, so
the jobs of a sweep that share a process never log into each other. ``WANDB_MODE=offline`` writes it under the run
folder to sync later.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def run_tags(cfg: DictConfig) -> list[str]:
    bias = cfg.bias.name if cfg.method.trainable in ("bias", "bias_reparam") else "none"
    tags = [f"model={cfg.model.name}", f"task={cfg.task.name}", f"regime={cfg.regime.name}"]
    return [*tags, f"method={cfg.method.name}", f"bias={bias}", f"seed={cfg.seed}", *cfg.logger.get("tags", [])]


def run_group(cfg: DictConfig) -> str:
    """The sweep a job belongs to: logger.group, else the experiment (paper table), else model/task/regime."""
    default = f"{cfg.model.name}/{cfg.task.name}/{cfg.regime.name}"
    return cfg.logger.get("group") or cfg.get("experiment_name") or default


@contextmanager
def track(cfg: DictConfig, folder: Path) -> Iterator[dict[str, Any] | None]:
    """Yields a dict for the record (run id, group, tags, mode), or None without a tracker; ``summary`` is logged."""
    if cfg.logger.report_to != "wandb":
        yield None
        return
    import wandb

    folder.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=cfg.logger.project,
        entity=cfg.logger.get("entity"),
        group=run_group(cfg),
        name=cfg.run_name,
        tags=run_tags(cfg),
        config=OmegaConf.to_container(cfg, resolve=True),
        dir=str(folder),
        reinit="finish_previous",
    )
    info: dict[str, Any] = {"backend": "wandb", "id": run.id, "group": run.group, "tags": list(run.tags)}
    info["mode"], info["dir"], info["summary"] = run.settings.mode, run.dir, {}
    exit_code = 1
    try:
        yield info
        exit_code = 0
    finally:
        run.summary.update(info.pop("summary"))
        run.finish(exit_code=exit_code)

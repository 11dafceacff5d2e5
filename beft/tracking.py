"""Experiment tracking (``logger=wandb``): one wandb run per job, grouped by sweep, named and tagged by the run.

The run is started here (the Trainer's WandbCallback then logs into it) and always finished when the job ends, so
the jobs of a sweep that share a process never log into each other. ``WANDB_MODE=offline`` writes it under the run
folder to sync later.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from beft.spec import RunSpec


def run_tags(spec: RunSpec) -> list[str]:
    tags = [f"model={spec.model['name']}", f"task={spec.task.name}", f"regime={spec.regime}"]
    method = [f"method={spec.method['name']}", f"bias={spec.bias_name or 'none'}", f"seed={spec.seed}"]
    return [*tags, *method, *spec.logger.tags]


def run_group(spec: RunSpec) -> str:
    """The sweep a job belongs to: logger.group, else the experiment (paper table), else model/task/regime."""
    return spec.logger.group or spec.experiment or f"{spec.model['name']}/{spec.task.name}/{spec.regime}"


@contextmanager
def track(spec: RunSpec) -> Iterator[dict[str, Any] | None]:
    """Yields a dict for the record (run id, group, tags, mode), or None without a tracker; ``summary`` is logged."""
    if spec.logger.report_to != "wandb":
        yield None
        return
    import wandb

    folder = spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=spec.logger.project,
        entity=spec.logger.entity,
        group=run_group(spec),
        name=spec.name,
        tags=run_tags(spec),
        config=dict(spec.config),
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

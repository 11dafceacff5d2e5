"""``python -m beft.rank model=... task=... regime=... seed=...``: which bias kind changes most (METHOD.md 3).

1. Fisher at the pre-trained point (before any fine-tuning), over the regime's training subset;
2. the BitFit run (all biases, the task's schedule): an ordinary run whose record is reused when it exists;
3. magnitude and magnitude+angle scores from that record's ``bias_change``;
4. a ranking record (atomic JSON) and one heat-map per approach, in <model>/<task>/<regime>/ranking/seed=<n>/.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from beft import config, importance, launchers, records, variants
from beft.cli import guarded
from beft.data.tasks import TaskSpec
from beft.errors import BeftError
from beft.report import plots
from beft.run import prepare, run, run_folder

log = logging.getLogger("beft.rank")
variants.register_resolver()
launchers.quiet_schema_matching()  # conf/hydra/launcher/submitit_local.yaml (beft/launchers.py)


def rank_folder(cfg: DictConfig) -> Path:
    return Path(cfg.results_dir) / f"{cfg.rank.name}{variants.suffix(variants.current())}"


def fisher(cfg: DictConfig, task) -> dict[str, list[float]]:
    """Per-layer empirical Fisher of every bias at the pre-trained point (a fresh, seeded model and head)."""
    prep = prepare(cfg, task)
    loader = DataLoader(
        prep.train_ds,
        batch_size=cfg.rank.fisher_batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(cfg.seed),
        collate_fn=prep.collate,
    )
    return importance.fisher_scores(prep.model, loader, cfg.rank.max_grad_norm, prep.loss)


def rank(cfg: DictConfig) -> dict[str, Any]:
    """Rank the bias kinds of one (model, task, regime, seed); returns the ranking record."""
    task = config.check(cfg)
    if cfg.method.trainable != "all_biases":
        raise BeftError(f"beft.rank fine-tunes all biases (method=bitfit); got method={cfg.method.name!r}")
    folder = rank_folder(cfg)
    with records.run_lock(folder):  # one job per ranking; the BitFit run takes its own run's lock
        if not cfg.force and records.is_completed(folder, records.RANKING_FILE):  # also when another job just did it
            log.info("skipping %s: completed ranking exists (force=true reruns it)", folder)
            return records.read_record(folder, records.RANKING_FILE)
        return _rank_locked(cfg, task, folder)


def _bitfit(cfg: DictConfig) -> dict[str, Any]:
    """The BitFit run (reused when completed). Its failure (e.g. a NaN loss) becomes a one-line BeftError naming the
    run and its record, which says ``failed`` and why."""
    try:
        bitfit = run(cfg)
    except BeftError:
        raise
    except Exception as err:
        raise BeftError(
            f"the BitFit run {cfg.run_name} failed ({type(err).__name__}: {err}); its record "
            f"{run_folder(cfg) / records.RECORD_FILE} says status failed; fix the cause and rerun"
        ) from err
    if bitfit.get("status") != records.COMPLETED or "bias_change" not in bitfit:
        raise BeftError(
            f"the BitFit run {cfg.run_name} is {bitfit.get('status')!r} or has no bias_change; rerun it with force=true"
        )
    return bitfit


def _rank_locked(cfg: DictConfig, task: TaskSpec, folder: Path) -> dict[str, Any]:
    """Fisher, the BitFit run, scores and heat-maps; the ranking record says ``completed`` or ``failed`` and why.
    An interruption (SIGTERM, Ctrl-C, a requeue) writes no record, so the same command redoes it."""
    t0 = time.perf_counter()
    record: dict[str, Any] | None = {
        "schema": records.SCHEMA_VERSION,
        "status": "running",
        "run": {
            "model": cfg.model.name,
            "task": task.name,
            "regime": cfg.regime.name,
            "seed": cfg.seed,
            "variant": variants.current(),
        },
        "bitfit_run": cfg.run_name,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "environment": records.environment(),
    }
    try:
        fisher_layers = fisher(cfg, task)
        bitfit = _bitfit(cfg)
        angle = cfg.rank.angle_over_90
        approaches = {
            "angle": importance.summarise(importance.layer_scores(bitfit["bias_change"], "angle", angle)),
            "magnitude": importance.summarise(importance.layer_scores(bitfit["bias_change"], "magnitude")),
            "fisher": importance.summarise(fisher_layers),
        }
        title = f"{cfg.model.name} {task.name} {cfg.regime.name} seed {cfg.seed}"
        heatmaps = {
            name: str(plots.heatmap(summary, name, title, folder / f"heatmap_{name}.png"))
            for name, summary in approaches.items()
        }
        record.update(
            status=records.COMPLETED,
            target=approaches["angle"]["target"],
            approaches=approaches,
            heatmaps=heatmaps,
            bitfit_score=bitfit["score"],
        )
    except Exception as err:
        record.update(status=records.FAILED, error=f"{type(err).__name__}: {err}")
        raise
    except BaseException:
        log.error("%s interrupted: no ranking record written; rerun the same command to redo it", folder)
        record = None
        raise
    finally:
        if record is not None:
            record["wall_s"] = round(time.perf_counter() - t0, 3)
            records.write_record(folder, record, records.RANKING_FILE)
    return record


@hydra.main(version_base="1.3", config_path="../conf", config_name="rank")
def main(cfg: DictConfig) -> None:
    record = guarded(rank, cfg, log)
    if record is None:
        return
    lines = [f"\n{cfg.rank.name}: target bias b_{record['target']} (magnitude+angle)"]
    for name, summary in record["approaches"].items():
        means = ", ".join(f"b_{r}={summary['mean'][r]:.4g}" for r in summary["ranking_qkv"])
        lines.append(f"  {name:9s} ranking among q/k/v: {means} -> b_{summary['target']}")
    lines.append(f"ranking record: {rank_folder(cfg) / records.RANKING_FILE}")
    lines += [f"heat-map: {path}" for path in record["heatmaps"].values()]
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""``python -m beft.rank model=... task=... regime=... seed=...``: which bias kind changes most (docs/method.md §3).

1. Fisher at the pre-trained point (before any fine-tuning), over the regime's training subset;
2. the BitFit run (all biases, the task's schedule): an ordinary run whose record is reused when it exists;
3. magnitude and magnitude+angle scores from that record's ``bias_change``;
4. a ranking record (atomic JSON) and one heat-map per approach, in <model>/<task>/<regime>/ranking/seed=<n>/.
"""

from __future__ import annotations

import logging
import time

import hydra
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from beft import importance, records, sweeps
from beft.errors import BeftError
from beft.records import RankingRecord, RunId, RunRecord
from beft.report import plots
from beft.run import prepare, run
from beft.spec import RunSpec
from beft.sweeps import faults
from beft.sweeps.guard import guarded

log = logging.getLogger("beft.rank")
sweeps.setup()  # the beft_variant resolver of the run folders; quiet schema matching (submitit_local.yaml)


def fisher(spec: RunSpec) -> dict[str, list[float]]:
    """Per-layer empirical Fisher of every bias at the pre-trained point (a fresh, seeded model and head)."""
    assert spec.rank is not None
    prep = prepare(spec)
    loader = DataLoader(
        prep.data.train,
        batch_size=spec.rank.fisher_batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(spec.seed),
        collate_fn=prep.data.collate,
    )
    return importance.fisher_scores(prep.model, loader, spec.rank.max_grad_norm, prep.data.loss)


def rank(spec: RunSpec) -> RankingRecord:
    """Rank the bias kinds of one (model, task, regime, seed); returns the ranking record."""
    if spec.method["trainable"] != "all_biases":
        raise BeftError(f"beft.rank fine-tunes all biases (method=bitfit); got method={spec.method['name']!r}")
    folder = spec.rank_folder
    if (broken := records.unreadable(folder, "rank")) is not None:
        log.warning("%s cannot be read (truncated or not JSON): the ranking is redone and the file replaced", broken)
    with records.run_lock(folder):  # one job per ranking; the BitFit run takes its own run's lock
        if not spec.force and (done := records.completed_record(folder, "rank")) is not None:  # also: another job
            log.info("skipping %s: completed ranking exists (force=true reruns it)", folder)
            return done  # type: ignore[return-value]
        return _rank_locked(spec)


def _bitfit(spec: RunSpec) -> RunRecord:
    """The BitFit run (reused when completed). Its failure (e.g. a NaN loss) becomes a one-line BeftError naming the
    run and its record, which says ``failed`` and why."""
    try:
        bitfit = run(spec)
    except BeftError:
        raise
    except Exception as err:
        raise BeftError(
            f"the BitFit run {spec.name} failed ({type(err).__name__}: {err}); its record "
            f"{spec.folder / RunRecord.FILE} says status failed; fix the cause and rerun"
        ) from err
    if not bitfit.completed or bitfit.bias_change is None:
        raise BeftError(
            f"the BitFit run {spec.name} is {bitfit.status!r} or has no bias_change; rerun it with force=true"
        )
    return bitfit


def _rank_locked(spec: RunSpec) -> RankingRecord:
    """Fisher, the BitFit run, scores and heat-maps; the ranking record says ``completed`` or ``failed`` and why.
    An interruption (SIGTERM, Ctrl-C, a requeue) writes no record, so the same command redoes it."""
    t0, folder = time.perf_counter(), spec.rank_folder
    record: RankingRecord | None = RankingRecord(
        status=records.RUNNING,
        run=RunId(
            model=spec.model["name"], task=spec.task.name, regime=spec.regime, seed=spec.seed, variant=spec.variant
        ),  # fmt: skip
        bitfit_run=spec.name,
        config=dict(spec.config),
        environment=records.environment(),
    )
    try:
        _score(spec, record)
        record.status = records.COMPLETED
    except Exception as err:
        record.status, record.error = records.FAILED, f"{type(err).__name__}: {err}"
        raise
    except BaseException:
        log.error("%s interrupted: no ranking record written; rerun the same command to redo it", folder)
        record = None
        raise
    finally:
        if record is not None:
            record.wall_s = round(time.perf_counter() - t0, 3)
            records.write(folder, record)
    return record


def _score(spec: RunSpec, record: RankingRecord) -> None:
    """The three approaches' scores (docs/method.md §3) and one heat-map each."""
    fisher_layers = fisher(spec)
    bitfit = _bitfit(spec)
    approaches = {}
    if all(row["norm0"] > 0 for row in bitfit.bias_change):
        angle = importance.layer_scores(bitfit.bias_change, "angle", spec.rank.angle_over_90)
        approaches["angle"] = importance.summarise(angle)
    else:  # the angle to a zero vector is undefined (docs/method.md §3.3)
        log.warning("no magnitude+angle score: some fine-tuned biases started at zero (added biases, model.add_bias)")
    approaches["magnitude"] = importance.summarise(importance.layer_scores(bitfit.bias_change, "magnitude"))
    approaches["fisher"] = importance.summarise(fisher_layers)
    title = f"{spec.model['name']} {spec.task.name} {spec.regime} seed {spec.seed}"
    record.heatmaps = {
        name: str(plots.heatmap(summary, name, title, spec.rank_folder / f"heatmap_{name}.png"))
        for name, summary in approaches.items()
    }
    record.target = approaches["angle"]["target"] if "angle" in approaches else None
    record.approaches = approaches
    record.bitfit_score = bitfit.score


def rank_from_config(cfg: DictConfig) -> tuple[RunSpec, RankingRecord]:
    spec = RunSpec.from_config(cfg)  # validated here, before any data or weights load
    return spec, rank(spec)


@hydra.main(version_base="1.3", config_path="../conf", config_name="rank")
def main(cfg: DictConfig):
    result = guarded(rank_from_config, cfg, log)
    if not isinstance(result, tuple):  # skipped (None) or failed in a sweep (FailedJob: the sweep's summary lists it)
        return result
    spec, record = result
    target = f"b_{record.target} (magnitude+angle)" if record.target else "none (no magnitude+angle score)"
    lines = [f"\n{spec.rank.name}: target bias {target}"]
    for name, summary in record.approaches.items():
        means = ", ".join(f"b_{r}={summary['mean'][r]:.4g}" for r in summary["ranking_qkv"])
        lines.append(f"  {name:9s} ranking among q/k/v: {means} -> b_{summary['target']}")
    lines.append(f"ranking record: {spec.rank_folder / RankingRecord.FILE}")
    lines += [f"heat-map: {path}" for path in record.heatmaps.values()]
    print("\n".join(lines))


if __name__ == "__main__":
    faults.main_with_one_line_errors(main)  # Hydra's own errors: one line, exit code 2

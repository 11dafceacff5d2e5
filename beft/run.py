"""One fine-tuning run: a validated ``RunSpec`` in, a ``RunRecord`` out. Plain functions, testable without Hydra.

skip if completed -> lock the run folder -> data (splits, regime subset) -> model + method -> the model kind's
pipeline frames the data and fits -> record (written atomically; a failure writes a ``failed`` record with the reason,
never a partial one; an interruption writes none, so the same command redoes the run).
"""

from __future__ import annotations

import hashlib
import json
import logging
import resource
import shutil
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from transformers import set_seed

from beft import adapters, artifacts, importance, predictions, records, tracking
from beft.data import features, regimes, sources
from beft.models import methods, targets
from beft.pipelines import FitSettings, Pipeline, PreparedData, pipeline_for
from beft.records import RunId, RunRecord, Score
from beft.spec import RunSpec
from beft.sweeps import faults

log = logging.getLogger(__name__)


def run(spec: RunSpec) -> RunRecord:
    """Run (or skip) the configured fine-tuning and return its record."""
    folder = spec.folder
    if (broken := records.unreadable(folder)) is not None:
        log.warning("%s cannot be read (truncated or not JSON): the run is redone and the file replaced", broken)
    if not spec.force and (done := records.completed_record(folder)) is not None:
        log.info("skipping %s: completed record exists (force=true reruns it)", folder)
        return done  # type: ignore[return-value]
    if spec.selects_bias:
        from beft import auto  # beft.auto ranks through beft.rank, which imports this module

        spec = auto.choose(spec)
    with records.run_lock(folder):  # RunLockedError when another live job runs it; released even on SIGKILL
        if not spec.force and (done := records.completed_record(folder)) is not None:  # finished while we waited
            log.info("skipping %s: completed record exists (force=true reruns it)", folder)
            return done  # type: ignore[return-value]
        return _run_locked(spec)


def _run_locked(spec: RunSpec) -> RunRecord:
    """Train and write the record: ``completed``, or ``failed`` with the reason. An interruption (SIGTERM, Ctrl-C,
    submitit's requeue exit) writes none, like SIGKILL, so the same command redoes the run."""
    started, t0 = records.now(), time.perf_counter()
    record: RunRecord | None = _base_record(spec)
    kept = records.completed_record(spec.folder) if spec.force else None  # a failed forced rerun must not lose it
    try:
        with tracking.track(spec) as tracked:
            _train(spec, record)
            if tracked is not None:
                tracked["summary"] = {"score": record.final_score, "trainable": record.params["trainable"]}
                record.tracking = dict(tracked)
        record.status = records.COMPLETED
    except Exception as err:
        record.status, record.error = records.FAILED, f"{type(err).__name__}: {err}"
        raise
    except BaseException as err:
        level = (
            logging.INFO if isinstance(err, (KeyboardInterrupt, faults.Terminated)) else logging.ERROR
        )  # guard says it
        log.log(
            level, "%s interrupted (%s): no record written; rerun the same command to redo it", spec.folder, _why(err)
        )
        record = None
        raise
    finally:
        shutil.rmtree(spec.folder / "trainer", ignore_errors=True)
        if record is not None:
            record.time = {"started": started, "finished": records.now(), "wall_s": round(time.perf_counter() - t0, 3)}
            record.memory = _peak_memory()
            failed_rerun = kept is not None and record.status == records.FAILED
            written = records.write(spec.folder, record, records.ATTEMPT_FILE if failed_rerun else None)
            if record.status == records.COMPLETED:  # an earlier forced rerun's failure no longer applies
                (spec.folder / records.ATTEMPT_FILE).unlink(missing_ok=True)
            if failed_rerun:
                log.warning("the forced rerun failed; the completed record and adapter stay, its failure: %s", written)
    return record


def _why(err: BaseException) -> str:
    """What stopped a run, for the log: Ctrl-C's KeyboardInterrupt has no message of its own."""
    return str(err) or ("Ctrl-C" if isinstance(err, KeyboardInterrupt) else type(err).__name__)


@dataclass
class Prepared:
    """Everything a run needs before training: the splits, the regime subset, the model with its trainable set and
    the data as the model's pipeline frames it."""

    pipeline: Pipeline
    splits: dict[str, Any]
    indices: list[int]
    model: torch.nn.Module
    tokenizer: Any
    source: str
    trainable: methods.TrainableSet
    data: PreparedData
    pretrained_total: int

    @property
    def inner(self) -> torch.nn.Module:
        """The transformers model, where the role map applies (prefix tuning wraps it in peft's PeftModel)."""
        return self.model.get_base_model() if self.trainable.wrapper is not None else self.model


def prepare(spec: RunSpec) -> Prepared:
    """Load the splits, draw the regime subset, load the model (seeded head) and apply the method; frame the data."""
    pipeline = pipeline_for(spec.model)
    splits = sources.load_splits(spec.task, spec.data.dir, train=spec.reads_train_split)
    indices = regimes.subset_indices(len(splits["train"]), spec.data.num_train, spec.seed) if "train" in splits else []
    built = build_model(spec)
    data = pipeline.prepare_data(spec, splits, indices, built.tokenizer)
    return Prepared(pipeline, splits, indices, *built[:4], data, built.pretrained_total)


class Built(NamedTuple):
    model: torch.nn.Module
    tokenizer: Any
    source: str
    trainable: methods.TrainableSet
    pretrained_total: int  # parameters before any addition (the paper's denominator)


def build_model(spec: RunSpec) -> Built:
    """The pre-trained model with the seeded head, any added biases and the method applied: what a run trains and
    what a saved model artifact is loaded into (beft/artifacts.py)."""
    set_seed(spec.seed)  # the task head's initialisation depends on it
    model, tokenizer, source = pipeline_for(spec.model).load(spec.model, spec.task)
    pretrained_total = methods.count_parameters(model)
    adds = targets.roles_to_add(spec.method["trainable"], spec.bias["roles"]) if spec.model.get("add_bias") else []
    if added := targets.add_biases(model, adds):
        log.info("added zero-initialised biases to the %s projections (model.add_bias)", added)
    trainable = methods.apply_method(model, dict(spec.method), dict(spec.bias), seed=spec.seed)
    model = trainable.wrapper or model  # prefix tuning trains and evaluates through peft's wrapper
    return Built(model, tokenizer, source, trainable, pretrained_total)


def _train(spec: RunSpec, record: RunRecord) -> None:
    prep = prepare(spec)
    before = importance.snapshot(prep.inner, prep.trainable.params)
    settings = FitSettings(
        trainer_args=spec.trainer_args,
        output_dir=spec.folder / "trainer",
        seed=spec.trainer_seed,
        max_length=spec.data.max_length,
        report_to=spec.logger.report_to,
        run_name=spec.name,
        zero_grad_roles=_checked_roles(spec, prep.inner),
    )
    history, train_metrics = prep.pipeline.fit(prep.model, prep.tokenizer, prep.data, spec.task, settings)
    record.score = _score(history, spec)
    record.final = {k: v for k, v in history[-1].items() if k in spec.task.eval_splits}
    record.epochs = history
    record.params = _params(prep)
    record.data = _data_summary(spec, prep)
    record.model_source = prep.source
    record.train_runtime_s = train_metrics.get("train_runtime")
    record.bias_change = importance.bias_change(before, prep.inner)
    record.warnings = train_metrics.get("warnings", [])  # e.g. a bias role with zero gradient (docs/method.md §4.1)
    rows = prep.pipeline.prediction_rows(spec.task, prep.data, train_metrics.pop("outputs", {}))
    record.predictions = {split: predictions.write(spec.folder, split, values) for split, values in rows.items()}
    # last: a forced rerun replaces the adapter (or model artifact) only once everything else succeeded
    record.adapter = adapters.save_run_adapter(spec, prep.inner, prep.trainable.params)
    record.artifact = artifacts.save_run_artifact(spec, prep.model, prep.trainable, record.adapter)


def _params(prep: Prepared) -> dict[str, Any]:
    trainable, total = prep.trainable.count(), methods.count_parameters(prep.model)
    return {
        "trainable": trainable,
        "total": total,
        "percent": 100.0 * trainable / total,
        "pretrained_total": prep.pretrained_total,  # the paper's denominator: the model before any addition
        "permille": 1000.0 * trainable / prep.pretrained_total,  # decoder tables print per-mille
        "trainable_tensors": targets.parameter_names(prep.model, prep.trainable.params),
        **prep.trainable.info,  # bias PEFT: variant, reshape, per-layer count and the paper's Params/Saving
    }


def _data_summary(spec: RunSpec, prep: Prepared) -> dict[str, Any]:
    train = prep.splits.get("train")
    task = spec.task
    return {
        "source": spec.data.dir or f"hub:{task.hub_path}/{task.hub_name}",
        "train_rows": None if train is None else len(train),
        "num_train": len(prep.indices),
        "subset_sha256": hashlib.sha256(json.dumps(prep.indices).encode()).hexdigest(),
        "subset_content_sha256": None if train is None else features.data_fingerprint(train.select(prep.indices)),
        "eval_rows": {k: len(v) for k, v in prep.data.eval.items()},
    }


def _checked_roles(spec: RunSpec, model: torch.nn.Module) -> dict[str, list] | None:
    """The bias roles a BEFT run trains directly (role -> bias tensors): checked for zero gradient on step one."""
    roles = spec.bias["roles"]
    if spec.method["trainable"] != "bias" or isinstance(roles, str):
        return None
    return {role: targets.role_biases(model, role) for role in roles}


def _score(history: list[dict[str, Any]], spec: RunSpec) -> Score:
    """The final epoch's main metric (reported, docs/experiments.md §A1) and the best epoch (diagnostic only)."""
    split, metric = spec.task.main_split, spec.task.main_metric
    values = [(e["epoch"], e[split][metric]) for e in history if split in e]
    best_epoch, best = max(values, key=lambda x: x[1])
    return Score(metric=metric, split=split, final=values[-1][1], best=best, best_epoch=best_epoch)


def _base_record(spec: RunSpec) -> RunRecord:
    return RunRecord(
        status=records.RUNNING,
        run=RunId(
            name=spec.name,
            model=spec.model["name"],
            task=spec.task.name,
            regime=spec.regime,
            method=spec.method["name"],
            bias=spec.bias_name,
            label=spec.method["label"],
            seed=spec.seed,
            variant=spec.variant,
        ),
        seeds=_seeds(spec),
        device="cuda" if torch.cuda.is_available() else "cpu",
        overrides=spec.overrides,
        config=dict(spec.config),
        environment=records.environment(),
        auto=None if spec.auto is None else dict(spec.auto),
    )


def _seeds(spec: RunSpec) -> dict[str, Any]:
    """Every random source of a run and the seed it draws from: one ``seed`` drives them all (records of one seed
    are paired and a rerun is identical on CPU)."""
    data_seed = spec.trainer_args.get("data_seed")
    return {
        "seed": spec.seed,
        "subset": f"numpy.random.RandomState({spec.seed}).permutation(train_rows)[:num_train]",
        "torch_python_numpy": spec.seed,  # transformers.set_seed before the model loads: the task head's init
        "trainer": spec.trainer_seed,  # TrainingArguments.seed: set_seed again when the Trainer is built (dropout)
        "trainer_shuffle": spec.trainer_seed if data_seed is None else data_seed,  # the Trainer's sampler
        "eval_subset": f"numpy.random.RandomState({spec.seed}).permutation(eval_rows)[:num_eval]"
        if spec.data.num_eval is not None
        else None,
        "demonstrations": spec.seed if spec.method.get("num_demos") else None,  # ICL draws (docs/experiments.md §6.6)
        "method": spec.seed if spec.method["trainable"] in ("random", "bias_reparam") else None,  # mask / factor init
        "full_determinism": bool(spec.trainer_args.get("full_determinism", False)),
    }


def _peak_memory() -> dict[str, Any]:
    """Process peak RSS (CPU, includes the loaded model and data); CUDA allocator peak when on a GPU."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {"peak_rss_mb": round(rss, 1), "cuda_peak_mb": cuda}

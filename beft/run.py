"""One fine-tuning run: composed config in, result record out. Plain functions, testable without Hydra.

check config -> skip if completed -> lock the run folder -> data (splits, regime subset, cached features) -> model +
method -> Trainer -> record (written atomically; a failure writes a ``failed`` record with the reason, never a partial
one; an interruption writes none, so the same command redoes the run).
"""

from __future__ import annotations

import hashlib
import json
import logging
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from transformers import DataCollatorWithPadding, set_seed

from beft import adapters, config, importance, records, tracking, variants
from beft.data import features, prompts, regimes, sources
from beft.data.tasks import TaskSpec
from beft.models import loading, methods, targets
from beft.training import decoder, trainer

log = logging.getLogger(__name__)


def run_folder(cfg: DictConfig) -> Path:
    return Path(cfg.results_dir) / f"{cfg.run_name}{variants.suffix(variants.current())}"


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run (or skip) the configured fine-tuning and return its record."""
    task = config.check(cfg)
    folder = run_folder(cfg)
    if not cfg.force and records.is_completed(folder):
        log.info("skipping %s: completed record exists (force=true reruns it)", folder)
        return records.read_record(folder)
    with records.run_lock(folder):  # RunLockedError when another live job runs it; released even on SIGKILL
        if not cfg.force and records.is_completed(folder):  # that job finished between our check and the lock
            log.info("skipping %s: completed record exists (force=true reruns it)", folder)
            return records.read_record(folder)
        return _run_locked(cfg, task, folder)


def _run_locked(cfg: DictConfig, task: TaskSpec, folder: Path) -> dict[str, Any]:
    """Train and write the record: ``completed``, or ``failed`` with the reason. An interruption (SIGTERM, Ctrl-C,
    submitit's requeue exit) writes none, like SIGKILL, so the same command redoes the run."""
    started, t0 = _now(), time.perf_counter()
    record: dict[str, Any] | None = _base_record(cfg, task)
    try:
        with tracking.track(cfg, folder) as tracked:
            record.update(_train(cfg, task, folder))
            if tracked is not None:
                tracked["summary"] = {"score": record["score"]["final"], "trainable": record["params"]["trainable"]}
                record["tracking"] = dict(tracked)
        record["status"] = records.COMPLETED
    except Exception as err:
        record.update(status=records.FAILED, error=f"{type(err).__name__}: {err}")
        raise
    except BaseException as err:
        log.error("%s interrupted (%s): no record written; rerun the same command to redo it", folder, err or type(err))
        record = None
        raise
    finally:
        shutil.rmtree(folder / "trainer", ignore_errors=True)
        if record is not None:
            record["time"] = {
                "started": started,
                "finished": _now(),
                "wall_s": round(time.perf_counter() - t0, 3),
            }
            record["memory"] = _peak_memory()
            records.write_record(folder, record)
    return record


@dataclass
class Prepared:
    """Everything a run needs before training: the data subset, its features, the model with its trainable set.

    Decoder runs hold prompt rows (``beft.data.prompts``) as features; ``train_ds`` is None when the method trains
    nothing (zero-shot, in-context learning). ``collate`` and ``loss`` batch training rows and compute the training
    objective (the Fisher pass of ``beft.rank`` uses them).
    """

    splits: dict[str, Any]
    indices: list[int]
    model: Any
    tokenizer: Any
    source: str
    trainable: methods.TrainableSet
    train_ds: Any
    eval_ds: dict[str, Any]
    pretrained_total: int
    collate: Callable[[list[dict]], dict[str, torch.Tensor]]
    loss: Callable[[Any, dict[str, torch.Tensor]], torch.Tensor]


def _is_decoder(cfg: DictConfig) -> bool:
    return cfg.model.get("kind", "encoder") == "decoder"


def prepare(cfg: DictConfig, task: TaskSpec) -> Prepared:
    """Load the splits, draw the regime subset, load the model (seeded head) and apply the method; tokenise (cached)."""
    trains = cfg.method.trainable != "none"
    need_train = trains or bool(cfg.method.get("num_demos"))  # zero-shot reads no training data
    splits = sources.load_splits(task, cfg.data.dir, train=need_train)
    indices = regimes.subset_indices(len(splits["train"]), cfg.data.num_train, cfg.seed) if need_train else []

    set_seed(cfg.seed)  # the task head's initialisation depends on it
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model, tokenizer, source = loading.load_model(model_cfg, task)
    pretrained_total = methods.count_parameters(model)
    method_cfg = OmegaConf.to_container(cfg.method, resolve=True)
    bias_cfg = OmegaConf.to_container(cfg.bias, resolve=True)
    adds = model_cfg.get("add_bias") and method_cfg["trainable"] in ("bias", "bias_reparam")
    if adds and (added := targets.add_biases(model, bias_cfg["roles"])):
        log.info("added zero-initialised biases to the %s projections (model.add_bias)", added)
    trainable = methods.apply_method(model, method_cfg, bias_cfg, seed=cfg.seed)
    model = trainable.wrapper or model  # prefix tuning trains and evaluates through peft's wrapper

    if _is_decoder(cfg):
        return _prepare_decoder(cfg, task, splits, indices, model, tokenizer, source, trainable, pretrained_total)

    def featurise(ds):
        return features.tokenize(
            ds, task.text_fields, tokenizer, cfg.data.max_length, cfg.data.padding, cfg.data.cache_dir
        )

    train_ds = featurise(splits["train"]).select(indices)
    eval_ds = {key: featurise(splits[split]) for key, split in task.eval_splits.items()}
    return Prepared(splits, indices, model, tokenizer, source, trainable, train_ds, eval_ds, pretrained_total,
                    DataCollatorWithPadding(tokenizer), lambda m, batch: m(**batch).loss)  # fmt: skip


def _prepare_decoder(cfg, task, splits, indices, model, tokenizer, source, trainable, pretrained_total) -> Prepared:
    """Prompt rows: the regime's training subset, and evaluation subsets of at most ``data.num_eval`` examples
    (``RandomState(seed).permutation(N)[:num_eval]``, EXPERIMENTS.md 6.2), with demonstrations for ICL."""

    def encode(ds):
        return prompts.encode_split(ds, task.template, tokenizer, cfg.data.max_length, cfg.data.cache_dir)

    def eval_subset(ds):
        n = len(ds) if cfg.data.get("num_eval") is None else min(len(ds), cfg.data.num_eval)
        return ds.select(regimes.subset_indices(len(ds), n, cfg.seed))

    # only the regime's subset is encoded: the whole split would be ~100k rows (ReCoRD: x ~14 candidates each)
    train_ds = encode(splits["train"].select(indices)) if cfg.method.trainable != "none" else None
    if train_ds is not None and (n := sum(1 not in gold for gold in train_ds["gold"])):
        # no gold text to train on (a DROP answer without spans, number or date; a ReCoRD answer no entity matches)
        log.warning("%d of %d training examples have no gold candidate and are left out", n, len(train_ds))
        train_ds = train_ds.filter(lambda row: 1 in row["gold"])
    num_demos = int(cfg.method.get("num_demos") or 0)
    eval_ds = {}
    for key, split in task.eval_splits.items():
        ds = eval_subset(splits[split])
        eval_ds[key] = (
            prompts.icl_split(ds, splits["train"], task.template, tokenizer, cfg.data.max_length, num_demos, cfg.seed)
            if num_demos
            else encode(ds)
        )
    objective = decoder.OBJECTIVES[task.task_kind]
    return Prepared(splits, indices, model, tokenizer, source, trainable, train_ds, eval_ds, pretrained_total,
                    decoder.CandidateCollator(tokenizer.pad_token_id, gold_only=objective != "classification"),
                    lambda m, batch: decoder.objective_loss(m, batch, objective))  # fmt: skip


def _train(cfg: DictConfig, task: TaskSpec, folder: Path) -> dict[str, Any]:
    prep = prepare(cfg, task)
    splits, indices, model, tokenizer, source = prep.splits, prep.indices, prep.model, prep.tokenizer, prep.source
    trainable, train_ds, eval_ds = prep.trainable, prep.train_ds, prep.eval_ds
    inner = model.get_base_model() if trainable.wrapper is not None else model  # where the role map applies
    before = importance.snapshot(inner, trainable.params)
    common = dict(
        output_dir=folder / "trainer",
        seed=_trainer_seed(cfg),
        report_to=cfg.logger.report_to,
        run_name=cfg.run_name,
        zero_grad_roles=_checked_roles(cfg, inner),
    )
    args = OmegaConf.to_container(cfg.trainer.args, resolve=True)
    if _is_decoder(cfg):
        history, train_metrics = decoder.fit(
            model, tokenizer, train_ds, eval_ds, task.task_kind, args, max_length=cfg.data.max_length, **common
        )
    else:
        history, train_metrics = trainer.fit(model, tokenizer, train_ds, eval_ds, task, args, **common)
    adapter = adapters.save_run_adapter(cfg, task, inner, trainable.params, folder)
    total = methods.count_parameters(model)
    return {
        "score": _score(history, task),
        "final": {k: v for k, v in history[-1].items() if k in task.eval_splits},
        "epochs": history,
        "params": {
            "trainable": trainable.count(),
            "total": total,
            "percent": 100.0 * trainable.count() / total,
            "pretrained_total": prep.pretrained_total,  # the paper's denominator: the model before any addition
            "permille": 1000.0 * trainable.count() / prep.pretrained_total,  # decoder tables print per-mille
            "trainable_tensors": targets.parameter_names(model, trainable.params),
            **trainable.info,  # bias PEFT: variant, reshape, per-layer count and the paper's Params/Saving
        },
        "data": {
            "source": cfg.data.dir or f"hub:{task.hub_path}/{task.hub_name}",
            "train_rows": len(splits["train"]) if "train" in splits else None,
            "num_train": len(indices),
            "subset_sha256": hashlib.sha256(json.dumps(indices).encode()).hexdigest(),
            "subset_content_sha256": features.data_fingerprint(splits["train"].select(indices))
            if "train" in splits
            else None,
            "eval_rows": {k: len(v) for k, v in eval_ds.items()},
        },
        "model_source": source,
        "adapter": adapter,  # {"path", "bytes", ...}, or path None and the reason
        "train_runtime_s": train_metrics.get("train_runtime"),
        "bias_change": importance.bias_change(before, inner),
        "warnings": train_metrics.get("warnings", []),  # e.g. a bias role with zero gradient (b_k, METHOD.md 4.1)
    }


def _checked_roles(cfg: DictConfig, model) -> dict[str, list] | None:
    """The bias roles a BEFT run trains directly (role -> bias tensors): checked for zero gradient on step one."""
    roles = cfg.bias.roles
    if cfg.method.trainable != "bias" or isinstance(roles, str):
        return None
    return {role: targets.role_biases(model, role) for role in roles}


def _score(history: list[dict[str, Any]], task: TaskSpec) -> dict[str, Any]:
    """The final epoch's main metric (reported, EXPERIMENTS.md A1) and the best epoch (diagnostic only)."""
    split, metric = task.main_split, task.main_metric
    values = [(e["epoch"], e[split][metric]) for e in history if split in e]
    best_epoch, best = max(values, key=lambda x: x[1])
    return {"metric": metric, "split": split, "final": values[-1][1], "best": best, "best_epoch": best_epoch}


def _base_record(cfg: DictConfig, task: TaskSpec) -> dict[str, Any]:
    return {
        "schema": records.SCHEMA_VERSION,
        "status": "running",
        "run": {
            "name": cfg.run_name,
            "model": cfg.model.name,
            "task": task.name,
            "regime": cfg.regime.name,
            "method": cfg.method.name,
            "bias": cfg.bias.name if cfg.method.trainable in ("bias", "bias_reparam") else None,
            "label": cfg.method.label,
            "seed": cfg.seed,
            "variant": variants.current(),
        },
        "seeds": _seeds(cfg),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "overrides": _overrides(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "environment": records.environment(),
    }


def _seeds(cfg: DictConfig) -> dict[str, Any]:
    """Every random source of a run and the seed it draws from: one ``seed`` drives them all (records of one seed
    are paired and a rerun is identical on CPU)."""
    args = cfg.trainer.args
    data_seed = args.get("data_seed")
    trainer_seed = _trainer_seed(cfg)
    return {
        "seed": cfg.seed,
        "subset": f"numpy.random.RandomState({cfg.seed}).permutation(train_rows)[:num_train]",
        "torch_python_numpy": cfg.seed,  # transformers.set_seed before the model loads: the task head's init
        "trainer": trainer_seed,  # TrainingArguments.seed: set_seed again when the Trainer is built (dropout)
        "trainer_shuffle": trainer_seed if data_seed is None else data_seed,  # the Trainer's sampler (data_seed)
        "eval_subset": f"numpy.random.RandomState({cfg.seed}).permutation(eval_rows)[:num_eval]"
        if cfg.data.get("num_eval") is not None
        else None,
        "demonstrations": cfg.seed if cfg.method.get("num_demos") else None,  # ICL draws (EXPERIMENTS.md 6.6)
        "method": cfg.seed if cfg.method.trainable in ("random", "bias_reparam") else None,  # mask / factor init
        "full_determinism": bool(args.get("full_determinism", False)),
    }


def _trainer_seed(cfg: DictConfig) -> int:
    """``trainer.seed`` (the decoders' fixed 42), else the run's seed."""
    return cfg.seed if cfg.trainer.get("seed") is None else int(cfg.trainer.seed)


def _overrides() -> list[str] | None:
    """The command-line overrides of this job (Hydra runs); None when called without Hydra."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else None


def _peak_memory() -> dict[str, Any]:
    """Process peak RSS (CPU, includes the loaded model and data); CUDA allocator peak when on a GPU."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {"peak_rss_mb": round(rss, 1), "cuda_peak_mb": cuda}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

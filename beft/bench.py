"""``python -m beft.bench`` (``make bench``): what a training step, a run and a sweep job cost, per method.

Researchers choose a method by what a sweep costs, so every figure is printed absolute and as a ratio to full
fine-tuning, measured in one process on the same model and the same batch:

* **steps**: the median time of a training step (forward, backward, gradient clipping, AdamW step) of full
  fine-tuning, all biases (BitFit), b_v, b_q and b_k, and of evaluation (forward only, no gradients). Methods run
  interleaved, one step each per round, so that load from other processes on a shared machine hits all of them alike.
  Each step is also split into forward / backward / optimizer, which is the profile that explains the ratios.
* **memory**: the peak tensor memory of two training steps with a fresh optimizer, beyond the loaded model. On a GPU
  this is the CUDA allocator's peak minus what was allocated before; on a CPU, where torch keeps no allocator
  statistics, it is counted exactly by a dispatch mode that follows every tensor storage each aten op creates
  until it is freed (the same definition without the allocator's rounding and caching).
* **end to end**: real ``python -m beft.train`` jobs (b_v, low regime, SST-2 and RTE) with ``data.padding=dynamic``
  and ``max_length`` (the reference's fixed 128 tokens). They run a shortened schedule (``--epochs``, 1 by default:
  the full training subset once, plus the evaluation); full-schedule times are extrapolated and labelled estimates.
* **per-job overhead**: job wall time minus the Trainer's ``train_runtime`` (interpreter start, imports, data load and
  tokenisation, model load, Trainer set-up, record), with a cold (empty) and a warm feature cache.

Results go to ``results/bench/<machine>.json`` and ``<machine>.md`` (written atomically), with pass/fail against the
targets of the performance issue.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from beft import config, records

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"

# name -> (label, overrides of conf/train.yaml): the method configs are read from conf/, never restated here.
METHODS: dict[str, tuple[str, list[str]]] = {
    "full": ("full fine-tuning", ["method=full"]),
    "all_biases": ("all biases (BitFit)", ["method=bitfit"]),
    "b_v": ("b_v", ["method=beft", "bias=v"]),
    "b_q": ("b_q", ["method=beft", "bias=q"]),
    "b_k": ("b_k", ["method=beft", "bias=k"]),
}

# (key, what, limit, "<=" or ">="): the targets on MiniLM.
TARGETS = (
    ("bv_step_ratio", "b_v step time / full step time", 0.62, "<="),
    ("bv_memory_ratio", "b_v peak training memory / full", 0.5, "<="),
    ("sst2_dynamic_speedup", "SST-2 low job, fixed-128 time / dynamic time", 2.0, ">="),
    ("warm_overhead_fraction", "per-job overhead (warm cache) / RTE-low job", 0.10, "<="),
)
FULL_EPOCHS = {"rte": 30, "sst2": 16}  # low-regime epochs (conf/schedule/encoder/<task>/low.yaml), for estimates


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------------------------


def compose_train(*overrides: str) -> DictConfig:
    """conf/train.yaml composed as ``python -m beft.train`` would, so that the bench measures the real settings."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@dataclass
class StepSetup:
    """One row of the step table: what is trained and how (training), or a forward pass only (evaluation)."""

    name: str
    label: str
    params: list[nn.Parameter]
    lr: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-6
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    train: bool = True

    def optimizer(self) -> torch.optim.Optimizer:
        """torch AdamW with the trainer config's settings (``optim: adamw_torch``), as the Trainer builds it."""
        return torch.optim.AdamW(
            self.params, lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay
        )


def method_setups(model: nn.Module, base_overrides: Sequence[str]) -> list[StepSetup]:
    """The training rows, each from its composed config (method, bias, learning rate, optimizer settings)."""
    from beft.models import methods

    setups = []
    for name, (label, overrides) in METHODS.items():
        cfg = compose_train(*base_overrides, *overrides)
        args = cfg.trainer.args
        trainable = methods.apply_method(
            model,
            OmegaConf.to_container(cfg.method, resolve=True),
            OmegaConf.to_container(cfg.bias, resolve=True),
            seed=cfg.seed,
        )
        setups.append(
            StepSetup(
                name,
                label,
                trainable.params,
                lr=float(args.learning_rate),
                betas=(float(args.adam_beta1), float(args.adam_beta2)),
                eps=float(args.adam_epsilon),
                weight_decay=float(args.weight_decay),
                max_grad_norm=float(args.max_grad_norm),
            )
        )
    return setups


EVAL = StepSetup("eval", "evaluation (forward, no gradients)", [], train=False)


# --------------------------------------------------------------------------------------------------------------
# Steps: time and memory
# --------------------------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _select(model: nn.Module, params: Sequence[nn.Parameter]) -> None:
    """Make exactly ``params`` trainable: switching rows without reloading the model."""
    keep = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[precision])


def _run_step(
    model: nn.Module,
    batch: Mapping[str, torch.Tensor],
    setup: StepSetup,
    optimizer: torch.optim.Optimizer | None,
    precision: str,
    clock: Callable[[], float],
) -> dict[str, float]:
    """One training step (forward, backward, clip, AdamW, zero) or one evaluation forward; phase times in s."""
    device = next(model.parameters()).device
    t0 = clock()
    if not setup.train:
        model.eval()
        with torch.inference_mode(), _autocast(device, precision):
            model(**batch)
        t1 = clock()
        model.train()
        return {"total": t1 - t0, "forward": t1 - t0}
    with _autocast(device, precision):
        loss = model(**batch).loss
    t1 = clock()
    loss.backward()
    t2 = clock()
    torch.nn.utils.clip_grad_norm_(setup.params, setup.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    t3 = clock()
    return {"total": t3 - t0, "forward": t1 - t0, "backward": t2 - t1, "optimizer": t3 - t2}


def time_steps(
    model: nn.Module,
    batch: Mapping[str, torch.Tensor],
    setups: Sequence[StepSetup],
    steps: int,
    warmup: int,
    precision: str = "fp32",
) -> dict[str, dict[str, list[float]]]:
    """Per row, the time of each of ``steps`` steps after ``warmup`` (s), split into phases.

    Rows are interleaved (one step of each per round) so that a slow spell of a shared machine is spread over all
    rows instead of inflating one; the model is built once and only ``requires_grad`` changes between rows.
    """
    device = next(model.parameters()).device

    def clock() -> float:
        _sync(device)
        return time.perf_counter()

    model.train()
    optimizers = {s.name: s.optimizer() if s.train else None for s in setups}
    times: dict[str, dict[str, list[float]]] = {s.name: {} for s in setups}
    for round_ in range(warmup + steps):
        for s in setups:
            _select(model, s.params)
            phases = _run_step(model, batch, s, optimizers[s.name], precision, clock)
            if round_ >= warmup:
                for phase, seconds in phases.items():
                    times[s.name].setdefault(phase, []).append(seconds)
    _select(model, [])
    return times


class TensorMemory(TorchDispatchMode):
    """Live bytes of the tensor storages created while active, and their peak (CPU or any device).

    Every aten op's outputs pass through ``__torch_dispatch__``; an output whose storage is none of the op's inputs'
    (not a view, not in place) is a new allocation, counted until Python's weak reference to the storage says it was
    freed. Tensors that existed before (the model's parameters, the batch) are never counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage()._cdata for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor) and not t.is_meta:
                self._track(t.untyped_storage(), inputs)
        return out

    def _track(self, storage: torch.UntypedStorage, inputs: set[int]) -> None:
        key = storage._cdata
        if key in inputs and key not in self._sizes:
            return
        size = storage.nbytes()
        if key in self._sizes:  # seen before: only a resize (``out=`` ops) changes what it holds
            self.live += size - self._sizes[key]
        else:
            self.live += size
            weakref.finalize(storage, self._release, key)
        self._sizes[key] = size
        self.peak = max(self.peak, self.live)

    def _release(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)


def peak_memory(
    model: nn.Module, batch: Mapping[str, torch.Tensor], setup: StepSetup, precision: str = "fp32", steps: int = 2
) -> int:
    """Peak tensor bytes beyond the loaded model over ``steps`` steps with a fresh optimizer (its state included)."""
    device = next(model.parameters()).device
    model.train()  # dropout on, as in training (it decides which attention kernel runs)
    _select(model, setup.params)
    model.zero_grad(set_to_none=True)
    optimizer = setup.optimizer() if setup.train else None
    clock = time.perf_counter
    if device.type == "cuda":
        _sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(steps):
            _run_step(model, batch, setup, optimizer, precision, clock)
        _sync(device)
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        with TensorMemory() as tracker:
            for _ in range(steps):
                _run_step(model, batch, setup, optimizer, precision, clock)
        peak = tracker.peak
    del optimizer
    _select(model, [])
    return int(peak)


def memory_method(device: torch.device) -> str:
    if device.type == "cuda":
        return (
            "CUDA allocator: torch.cuda.max_memory_allocated() during 2 steps with a fresh optimizer, minus "
            "torch.cuda.memory_allocated() before them (the loaded model)"
        )
    return (
        "torch dispatch-mode tensor accounting (beft.bench.TensorMemory), in the bench process: peak bytes of live "
        "tensor storage allocated by aten ops during 2 steps with a fresh optimizer (activations, gradients, "
        "optimizer state, temporaries); the loaded model and the batch are not counted; no allocator rounding"
    )


# --------------------------------------------------------------------------------------------------------------
# End-to-end jobs
# --------------------------------------------------------------------------------------------------------------


def run_job(
    task: str,
    padding: str,
    workdir: Path,
    cache_dir: Path,
    overrides: Sequence[str],
    tag: str,
) -> dict[str, Any]:
    """One real ``python -m beft.train`` job (b_v, low regime), timed from launch to exit; its record's figures."""
    results_dir = workdir / f"runs-{tag}"
    cmd = [
        sys.executable,
        "-m",
        "beft.train",
        f"task={task}",
        "regime=low",
        "method=beft",
        "bias=v",
        f"data.padding={padding}",
        "trainer.args.disable_tqdm=true",
        f"results_dir={results_dir}",
        f"data.cache_dir={cache_dir}",
        "force=true",
        *overrides,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), "TOKENIZERS_PARALLELISM": "false"}
    load = os.getloadavg()[0]
    cpu0 = _children_cpu_s()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    cpu = _children_cpu_s() - cpu0
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(cmd[2:])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    found = [json.loads(p.read_text()) for p in results_dir.rglob(records.RECORD_FILE)]
    if len(found) != 1 or found[0].get("status") != records.COMPLETED:
        raise BenchError(f"{' '.join(cmd[2:])} left no completed record:\n{proc.stderr[-3000:]}")
    (record,) = found
    train_s = float(record["train_runtime_s"])
    return {
        "task": task,
        "padding": padding,
        "epochs": len(record["epochs"]),
        "num_train": record["data"]["num_train"],
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),  # user + system CPU time of the job: less sensitive to other processes than wall
        "train_runtime_s": round(train_s, 2),
        "overhead_s": round(wall - train_s, 2),
        "startup_s": round(wall - record["time"]["wall_s"], 2),  # interpreter, imports, Hydra, exit
        "setup_s": round(record["time"]["wall_s"] - train_s, 2),  # data, tokenise/cache, model, Trainer, record
        "score": record["score"]["final"],
        "peak_rss_mb": record["memory"]["peak_rss_mb"],
        "loadavg_1min_before": round(load, 2),
    }


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def warm_cache(task: str, padding: str, cache_dir: Path, overrides: Sequence[str]) -> None:
    """Tokenise a task's splits into ``cache_dir`` exactly as a run does, so that timed jobs start warm."""
    from transformers import AutoTokenizer

    from beft.data import features, sources
    from beft.data.tasks import TaskSpec
    from beft.models import loading

    cfg = compose_train(f"task={task}", f"data.padding={padding}", *overrides)
    spec = TaskSpec.from_config(cfg.task)
    tokenizer = AutoTokenizer.from_pretrained(loading.resolve_source(cfg.model))
    for split in sources.load_splits(spec, cfg.data.dir).values():
        features.tokenize(split, spec.text_fields, tokenizer, cfg.data.max_length, padding, cache_dir)


def end_to_end(
    epochs: int, workdir: Path, overrides: Sequence[str], log: Callable[[str], None]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The jobs, then the per-job overhead.

    First a one-step RTE job on an empty feature cache (the cold overhead: it tokenises the whole task), then, on the
    warm cache, RTE and SST-2 with each padding mode for ``epochs`` epochs of the full training subset with the
    evaluation after each; the warm RTE dynamic job gives the warm overhead.
    """
    cache = workdir / "cache"

    def job(task: str, padding: str, tag: str, cache_state: str, extra: Sequence[str]) -> dict[str, Any]:
        log(f"  job {tag}: {task} low, padding={padding}, {' '.join(extra)}, {cache_state} cache ...")
        result = run_job(task, padding, workdir, cache, [*extra, *overrides], tag) | {"cache": cache_state}
        log(
            f"    {result['wall_s']:.1f} s (train {result['train_runtime_s']:.1f} s, "
            f"overhead {result['overhead_s']:.1f} s)"
        )
        return result

    cold = job("rte", "dynamic", "rte-cold", "cold", ["+trainer.args.max_steps=1", "trainer.args.num_train_epochs=1"])
    jobs = []
    for task, padding in (("rte", "dynamic"), ("rte", "max_length"), ("sst2", "dynamic"), ("sst2", "max_length")):
        warm_cache(task, padding, cache, overrides)
        job_ = job(task, padding, f"{task}-{padding}", "warm", [f"trainer.args.num_train_epochs={epochs}"])
        job_["full_schedule_epochs"] = FULL_EPOCHS[task]
        job_["full_schedule_estimate_s"] = round(
            job_["overhead_s"] + FULL_EPOCHS[task] * job_["train_runtime_s"] / epochs, 1
        )
        jobs.append(job_)
    warm = jobs[0]
    overhead = {
        "cold_s": cold["overhead_s"],
        "cold_startup_s": cold["startup_s"],
        "cold_setup_s": cold["setup_s"],
        "warm_s": warm["overhead_s"],
        "warm_startup_s": warm["startup_s"],
        "warm_setup_s": warm["setup_s"],
        "rte_low_job_estimate_s": warm["full_schedule_estimate_s"],
        "warm_fraction": round(warm["overhead_s"] / warm["full_schedule_estimate_s"], 4),
        "cold_fraction": round(cold["overhead_s"] / warm["full_schedule_estimate_s"], 4),
        "cold_job": cold,
    }
    return jobs, overhead


# --------------------------------------------------------------------------------------------------------------
# Machine, report
# --------------------------------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info(device: torch.device, precision: str) -> dict[str, Any]:
    cores = os.cpu_count() or 0
    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_cores": cores,
        "torch_threads": torch.get_num_threads(),
        "device": device.type,
        "precision": precision,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        machine = f"cuda-{_slug(info['gpu'])}"
    else:
        machine = f"cpu-{cores}core-{_slug(info['cpu_model'])}"
    info["machine"] = machine + ("" if precision == "fp32" else f"-{precision}")
    return info


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise_steps(
    setups: Sequence[StepSetup], times: Mapping[str, Mapping[str, list[float]]], memory: Mapping[str, int]
) -> list[dict[str, Any]]:
    full = _median(times["full"]["total"]) if "full" in times else None
    full_mem = memory.get("full")
    rows = []
    for s in setups:
        med = {phase: round(_median(v), 5) for phase, v in times[s.name].items()}
        rows.append(
            {
                "name": s.name,
                "label": s.label,
                "trainable": sum(p.numel() for p in s.params),
                "median_s": med["total"],
                "min_s": round(min(times[s.name]["total"]), 5),
                "phases_median_s": {k: v for k, v in med.items() if k != "total"},
                "times_s": [round(t, 5) for t in times[s.name]["total"]],
                "ratio_to_full": round(_median(times[s.name]["total"]) / full, 4) if full else None,
                "peak_mb": round(memory[s.name] / 2**20, 2) if s.name in memory else None,
                "memory_ratio_to_full": round(memory[s.name] / full_mem, 4) if full_mem and s.name in memory else None,
            }
        )
    return rows


def evaluate_targets(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    steps = {r["name"]: r for r in result["steps"]}
    values: dict[str, float | None] = {
        "bv_step_ratio": steps.get("b_v", {}).get("ratio_to_full"),
        "bv_memory_ratio": steps.get("b_v", {}).get("memory_ratio_to_full"),
        "sst2_dynamic_speedup": None,
        "warm_overhead_fraction": None,
    }
    jobs = {(j["task"], j["padding"]): j for j in result.get("end_to_end", []) if j["cache"] == "warm"}
    if ("sst2", "dynamic") in jobs and ("sst2", "max_length") in jobs:
        values["sst2_dynamic_speedup"] = round(
            jobs[("sst2", "max_length")]["wall_s"] / jobs[("sst2", "dynamic")]["wall_s"], 3
        )  # wall time: what a user waits for
    if result.get("overhead"):
        values["warm_overhead_fraction"] = result["overhead"]["warm_fraction"]
    out = []
    for key, what, limit, op in TARGETS:
        value = values[key]
        passed = None if value is None else (value <= limit if op == "<=" else value >= limit)
        out.append({"key": key, "what": what, "value": value, "target": f"{op} {limit}", "pass": passed})
    return out


def markdown(result: Mapping[str, Any]) -> str:
    m, s = result["machine"], result["settings"]
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    lines = [
        f"# Benchmark: {m['machine']}",
        "",
        f"{result['created']}; CPU {m['cpu_model']} ({m['cpu_cores']} cores, torch threads {m['torch_threads']}){gpu}; "
        f"torch {result['versions']['torch']}, transformers {result['versions']['transformers']}; "
        f"git {str(result['versions'].get('git_commit'))[:10]}"
        f"{' (dirty)' if result['versions'].get('git_dirty') else ''}. Load average (1 min) at start "
        f"{result['loadavg'][0]}, at end {result['loadavg'][1]} (other processes share this machine when > 0).",
        "",
        f"## Training step: {s['model']}, batch {s['batch_shape'][0]} x {s['batch_shape'][1]} tokens "
        f"({s['batch_source']}), {s['precision']}",
        "",
        f"Median of {s['steps']} steps after {s['warmup']} warm-up rounds; rows interleaved. The ratio of the "
        "fastest steps (x full, min) shows how much of the median ratio is noise from other processes. Memory: "
        f"{result['memory_method']}.",
        "",
        "| row | trainable | step (s), median | x full | x full, min | forward / backward / optimizer (s) "
        "| peak memory (MiB) | x full |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    full_min = next((r["min_s"] for r in result["steps"] if r["name"] == "full"), None)
    for r in result["steps"]:
        ph = r["phases_median_s"]
        phases = " / ".join(f"{ph[k]:.4f}" for k in ("forward", "backward", "optimizer") if k in ph)
        mem = "–" if r["peak_mb"] is None else f"{r['peak_mb']:.1f}"
        mem_ratio = "–" if r["memory_ratio_to_full"] is None else f"{r['memory_ratio_to_full']:.3f}"
        min_ratio = f"{r['min_s'] / full_min:.3f}" if full_min else "–"
        lines.append(
            f"| {r['label']} | {r['trainable']:,} | {r['median_s']:.4f} | {r['ratio_to_full']:.3f} | {min_ratio} "
            f"| {phases} | {mem} | {mem_ratio} |"
        )
    if result.get("end_to_end"):
        e = result["end_to_end"][0]["epochs"]
        lines += [
            "",
            f"## End to end: `python -m beft.train` b_v, low regime, **{e} epoch(s)** measured",
            "",
            "Job = launch to exit. Train = the Trainer's train_runtime (training + evaluation after each epoch). "
            "Overhead = job - train. The full-schedule column is an **estimate**: overhead + epochs x train / "
            f"{e}.",
            "",
            "| task | padding | cache | job (s) | job CPU time (s) | train (s) | overhead (s) | final acc. | "
            "peak RSS (MiB) | load before | full schedule, estimate (s) |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for j in result["end_to_end"]:
            lines.append(
                f"| {j['task']} | {j['padding']} | {j['cache']} | {j['wall_s']:.1f} | {j['cpu_s']:.1f} | "
                f"{j['train_runtime_s']:.1f} | {j['overhead_s']:.1f} | {j['score']:.3f} | {j['peak_rss_mb']:.0f} | "
                f"{j['loadavg_1min_before']} | {j['full_schedule_estimate_s']:.0f} ({j['full_schedule_epochs']} ep.) |"
            )
        if "sst2_dynamic_speedup_cpu" in result:
            lines += [
                "",
                f"SST-2 fixed-128 / dynamic: {result['sst2_dynamic_speedup_wall']:.2f}x in wall time, "
                f"{result['sst2_dynamic_speedup_cpu']:.2f}x in CPU time (CPU time counts only what the job itself ran, "
                "so it is the better estimate where other processes share the machine).",
            ]
        o = result["overhead"]
        lines += [
            "",
            f"Per-job overhead of an RTE-low job: cold cache {o['cold_s']:.1f} s (start-up {o['cold_startup_s']:.1f}"
            f" + set-up {o['cold_setup_s']:.1f}), warm cache {o['warm_s']:.1f} s (start-up {o['warm_startup_s']:.1f}"
            f" + set-up {o['warm_setup_s']:.1f}); RTE-low job (30 epochs, estimate) {o['rte_low_job_estimate_s']:.0f}"
            f" s: warm {100 * o['warm_fraction']:.1f} %, cold {100 * o['cold_fraction']:.1f} %.",
        ]
    lines += ["", "## Targets", "", "| target | measured | limit | result |", "|---|---:|---|---|"]
    for t in result["targets"]:
        verdict = {True: "pass", False: "FAIL", None: "not measured"}[t["pass"]]
        value = "–" if t["value"] is None else f"{t['value']:.3f}"
        lines.append(f"| {t['what']} | {value} | {t['target']} | {verdict} |")
    lines.append("")
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    """Temporary file in the same folder, fsync, rename: a killed bench leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------------------


def step_batch(cfg: DictConfig, tokenizer, device: torch.device) -> tuple[dict[str, torch.Tensor], str]:
    """The first training batch of the task's subset (seed ``cfg.seed``), padded as ``cfg.data.padding`` says."""
    from transformers import DataCollatorWithPadding

    from beft.data import features, regimes, sources
    from beft.data.tasks import TaskSpec

    spec = TaskSpec.from_config(cfg.task)
    train = sources.load_splits(spec, cfg.data.dir)["train"]
    size = int(cfg.trainer.args.per_device_train_batch_size)
    rows = regimes.subset_indices(len(train), cfg.data.num_train, cfg.seed)[:size]
    feats = features.tokenize(
        train.select(rows), spec.text_fields, tokenizer, cfg.data.max_length, cfg.data.padding, None
    )
    batch = DataCollatorWithPadding(tokenizer)([feats[i] for i in range(len(feats))])
    batch = {("labels" if k == "label" else k): v.to(device) for k, v in batch.items()}
    return (
        batch,
        f"first {size} rows of the {spec.name} {cfg.regime.name}-regime subset, seed {cfg.seed}, "
        f"{cfg.data.padding} padding",
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m beft.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/train.yaml, e.g. model.path=/x")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed warm-up rounds")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of each end-to-end job")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="autocast for the step table")
    parser.add_argument("--trainer", default=None, help="trainer config of the end-to-end jobs (e.g. gpu)")
    parser.add_argument("--skip-e2e", action="store_true", help="steps and memory only")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench")
    args = parser.parse_args(argv)

    from transformers import logging as hf_logging

    from beft.data.tasks import TaskSpec
    from beft.models import loading

    hf_logging.set_verbosity_error()
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    overrides = [*args.overrides, *([f"trainer={args.trainer}"] if args.trainer else [])]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.enable_cudnn_sdp(False)  # as beft.training.trainer.fit does (per-shape plan builds)
    machine = machine_info(device, args.precision)

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.1f} s] {msg}", flush=True)

    log(f"bench on {machine['machine']} ({machine['cpu_model']}, {machine['torch_threads']} torch threads)")
    cfg = compose_train("task=rte", "regime=low", *overrides)
    config.check(cfg)  # bad input: one line naming the value, before any model or data is loaded
    torch.manual_seed(cfg.seed)
    model, tokenizer, source = loading.load_encoder(cfg.model, TaskSpec.from_config(cfg.task))
    model.to(device)
    batch, batch_source = step_batch(cfg, tokenizer, device)
    setups = [*method_setups(model, ["task=rte", "regime=low", *overrides]), EVAL]
    log(f"steps: {', '.join(s.name for s in setups)} on a batch of {tuple(batch['input_ids'].shape)}")
    times = time_steps(model, batch, setups, args.steps, args.warmup, args.precision)
    log("memory ...")
    memory = {s.name: peak_memory(model, batch, s, args.precision, steps=2 if s.train else 1) for s in setups}

    from beft.records import environment

    env = environment()
    result: dict[str, Any] = {
        "machine": machine,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            **env["packages"],
            "python": env["python"],
            "git_commit": env["git_commit"],
            "git_dirty": env["git_dirty"],
        },
        "settings": {
            "model": cfg.model.name,
            "model_source": source,
            "batch_shape": list(batch["input_ids"].shape),
            "batch_source": batch_source,
            "steps": args.steps,
            "warmup": args.warmup,
            "precision": args.precision,
            "optimizer": "torch.optim.AdamW (trainer config: betas, eps, weight decay), clip_grad_norm_ max_grad_norm",
            "overrides": overrides,
        },
        "memory_method": memory_method(device),
        "steps": summarise_steps(setups, times, memory),
    }
    for r in result["steps"]:
        log(
            f"  {r['label']:36s} {r['median_s']:.4f} s  x{r['ratio_to_full']:.3f}   "
            f"{r['peak_mb']:.1f} MiB  x{r['memory_ratio_to_full']:.3f}"
        )
    del model, setups
    if not args.skip_e2e:
        workdir = Path(tempfile.mkdtemp(prefix="beft-bench-"))
        try:
            result["end_to_end"], result["overhead"] = end_to_end(args.epochs, workdir, overrides, log)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    jobs = {(j["task"], j["padding"]): j for j in result.get("end_to_end", [])}
    if ("sst2", "dynamic") in jobs and ("sst2", "max_length") in jobs:
        dyn, fixed = jobs[("sst2", "dynamic")], jobs[("sst2", "max_length")]
        result["sst2_dynamic_speedup_wall"] = round(fixed["wall_s"] / dyn["wall_s"], 3)
        result["sst2_dynamic_speedup_cpu"] = round(fixed["cpu_s"] / dyn["cpu_s"], 3)
    result["loadavg"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    result["targets"] = evaluate_targets(result)
    result["bench_wall_s"] = round(time.perf_counter() - t_start, 1)
    stem = args.out / machine["machine"]
    write_atomic(stem.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    summary = markdown(result)
    write_atomic(stem.with_suffix(".md"), summary)
    print("\n" + summary)
    log(f"wrote {stem}.json and {stem}.md")
    return result


def cli(argv: Sequence[str] | None = None) -> None:
    """``main`` with clean failures: bad input (a value, a config choice) exits 2 with one line, a failed job 1."""
    from hydra.errors import HydraException

    from beft.errors import BeftError

    try:
        main(argv)
    except (BeftError, HydraException) as err:
        print(f"beft.bench: {err}", file=sys.stderr)
        sys.exit(2)
    except BenchError as err:
        print(f"beft.bench: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cli()

"""The decoder section: candidate scoring per candidate vs with the shared prefix (``decoder.shared_prefix``).

One model (conf/bench.yaml ``decoder.overrides``, SmolLM2 by default), loaded once; per task, the first training batch
and the first evaluation batch of the run's own subsets (real prompts from the task files), each batched both ways.
A training step is the classification objective's forward and backward and an AdamW step of the trained biases; an
evaluation step scores every candidate without gradients. The two ways run interleaved, one step each per round, so
that load from other processes hits both alike; the ratios are per-candidate time / shared-prefix time. Memory is
the peak of one training step, measured as the step table measures it (``beft.bench.memory``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from beft.bench import memory, settings
from beft.bench.steps import sync

WAYS = {"per_candidate": False, "shared_prefix": True}  # name -> decoder.shared_prefix


def _rows(spec, tokenizer) -> dict[str, list[dict]]:
    """The first training batch and the first evaluation batch of the run's subsets, as prompt rows."""
    from beft.data import prompts, regimes, sources

    data, task = spec.data, spec.task
    splits = sources.load_splits(task, data.dir)
    train_size = int(spec.trainer_args["per_device_train_batch_size"])
    eval_size = int(spec.trainer_args["per_device_eval_batch_size"])
    train = splits["train"].select(regimes.subset_indices(len(splits["train"]), data.num_train, spec.seed)[:train_size])
    split = splits[next(iter(task.eval_splits.values()))]
    evals = split.select(regimes.eval_indices(len(split), data.num_eval, spec.seed)[:eval_size])

    def encode(ds):
        bos = spec.model.get("bos_token_id")
        rows = prompts.encode_split(ds, task.template, tokenizer, data.max_length, data.cache_dir, bos)
        return [rows[i] for i in range(len(rows))]

    return {"train": encode(train), "eval": encode(evals)}


def _to(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def _train_step(model: nn.Module, batch, optimizer: torch.optim.Optimizer) -> None:
    from beft.training import decoder

    decoder.objective_loss(model, batch, "classification").backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _eval_step(model: nn.Module, batch) -> torch.Tensor:
    """As a run's evaluation scores candidates (``decoder.evaluate_candidates``): eval mode, no gradients."""
    from beft.training import decoder

    model.eval()
    try:
        with torch.no_grad():
            return decoder.candidate_scores(model, batch)
    finally:
        model.train()


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def _peak(model: nn.Module, fn: Callable[[], Any], device: torch.device) -> int:
    """Peak tensor bytes of ``fn`` beyond what exists before it (CUDA allocator, or exact accounting on a CPU)."""
    if device.type == "cuda":
        sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        sync(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    with memory.TensorMemory() as tracker:
        fn()
    return int(tracker.peak)


def measure_task(task: str, steps: int, warmup: int, device: torch.device, log) -> dict[str, Any]:
    """One task's rows: median step times both ways, their ratios, peak memory and the scores' largest difference."""
    from beft.models import loading, methods, targets
    from beft.training import decoder

    spec = settings.train_spec(f"task={task}", *settings.load().decoder.overrides, checked=True)
    torch.manual_seed(spec.seed)
    model, tokenizer, source = loading.load_decoder(spec.model)
    if spec.model.get("add_bias"):
        targets.add_biases(model, spec.bias["roles"])
    params = methods.apply_method(model, dict(spec.method), dict(spec.bias), seed=spec.seed).params
    model.to(device).train()
    rows = _rows(spec, tokenizer)
    batches = {
        (split, way): _to(decoder.collator(tokenizer.pad_token_id, False, shared)(rows[split]), device)
        for split in rows
        for way, shared in WAYS.items()
    }
    optimizer = torch.optim.AdamW(params, lr=0.0)  # timing only: lr 0 leaves the weights as loaded
    runs = {
        "train": lambda b: _train_step(model, b, optimizer),
        "eval": lambda b: _eval_step(model, b),
    }
    times: dict[tuple[str, str], list[float]] = {key: [] for key in batches}
    for round_ in range(warmup + steps):
        for split, way in batches:
            seconds = _timed(lambda s=split, w=way: runs[s](batches[(s, w)]), device)
            if round_ >= warmup:
                times[(split, way)].append(seconds)
    peaks = {way: _peak(model, lambda w=way: runs["train"](batches[("train", w)]), device) for way in WAYS}
    model.eval()
    scores = {way: _eval_step(model, batches[("eval", way)]) for way in WAYS}
    median = {key: statistics.median(v) for key, v in times.items()}
    result = {
        "task": task,
        "model": spec.model["name"],
        "model_source": source,
        "train_batch": _shape(rows["train"], batches, "train"),
        "eval_batch": _shape(rows["eval"], batches, "eval"),
        "median_s": {f"{split}_{way}": round(v, 4) for (split, way), v in median.items()},
        "train_speedup": median[("train", "per_candidate")] / median[("train", "shared_prefix")],
        "eval_speedup": median[("eval", "per_candidate")] / median[("eval", "shared_prefix")],
        "train_peak_mb": {way: round(b / 2**20, 1) for way, b in peaks.items()},
        "max_score_difference": float((scores["per_candidate"] - scores["shared_prefix"]).abs().max()),
    }
    log(
        f"  decoder {task}: train x{result['train_speedup']:.2f}, eval x{result['eval_speedup']:.2f}, "
        f"peak {result['train_peak_mb']} MiB, scores differ by {result['max_score_difference']:.1e}"
    )
    return result


def _shape(rows: Sequence[Mapping[str, Any]], batches, split: str) -> dict[str, Any]:
    return {
        "examples": len(rows),
        "candidates": sum(len(r["input_ids"]) for r in rows),
        "per_candidate_tokens": list(batches[(split, "per_candidate")]["input_ids"].shape),
        "shared_prefix_tokens": list(batches[(split, "shared_prefix")]["input_ids"].shape),
    }


def measure(steps: int, warmup: int, device: torch.device, log) -> dict[str, Any]:
    """The decoder section of a result: settings and one row per task of conf/bench.yaml ``decoder.tasks``."""
    cfg = settings.load().decoder
    log(f"decoder: {', '.join(cfg.tasks)} per candidate vs shared prefix ({steps} steps after {warmup} warm-up)")
    return {
        "steps": steps,
        "warmup": warmup,
        "overrides": list(cfg.overrides),
        "tasks": [measure_task(t, steps, warmup, device, log) for t in cfg.tasks],
    }


def task_value(task: str, key: str) -> Callable[[Mapping[str, Any]], float | None]:
    """A target's measure: ``key`` of ``task``'s decoder row (None when the section did not run)."""

    def value(result: Mapping[str, Any]) -> float | None:
        rows = {r["task"]: r for r in (result.get("decoder") or {}).get("tasks", [])}
        return rows.get(task, {}).get(key)

    return value


def markdown(section: Mapping[str, Any]) -> list[str]:
    lines = [
        "",
        f"## Decoder candidate scoring: per candidate vs shared prefix ({section['tasks'][0]['model']})",
        "",
        f"Overrides {' '.join(section['overrides'])}; the first training and evaluation batch of each task's own "
        f"subsets; median of {section['steps']} steps after {section['warmup']} warm-up rounds, interleaved. Train = "
        "classification objective forward + backward + AdamW step; eval = every candidate's score, no gradients. "
        "Speed-up = per-candidate time / shared-prefix time. Peak memory: one training step.",
        "",
        "| task | examples (candidates) | tokens per batch, per candidate / shared | train (s) per cand. / shared "
        "| train speed-up | eval (s) per cand. / shared | eval speed-up | peak MiB per cand. / shared "
        "| max score diff. |",
        "|---|---:|---|---|---:|---|---:|---|---:|",
    ]
    for r in section["tasks"]:
        tb, m, p = r["train_batch"], r["median_s"], r["train_peak_mb"]
        lines.append(
            f"| {r['task']} | {tb['examples']} ({tb['candidates']}) | "
            f"{'x'.join(map(str, tb['per_candidate_tokens']))} / {'x'.join(map(str, tb['shared_prefix_tokens']))} | "
            f"{m['train_per_candidate']:.3f} / {m['train_shared_prefix']:.3f} | {r['train_speedup']:.2f} | "
            f"{m['eval_per_candidate']:.3f} / {m['eval_shared_prefix']:.3f} | {r['eval_speedup']:.2f} | "
            f"{p['per_candidate']:.0f} / {p['shared_prefix']:.0f} | {r['max_score_difference']:.1e} |"
        )
    return lines

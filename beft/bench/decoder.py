"""The decoder section: candidate scoring per candidate vs with the shared prefix (``decoder.shared_prefix``).

One model (conf/bench.yaml ``decoder.overrides``, SmolLM2 by default), loaded once; per task, three batches of the
run's own subsets (real prompts from the task files), each batched both ways:

- ``step``: the examples of one optimizer step (micro-batch x gradient accumulation) as one batch, the training step
  the targets are about (the work a step does, whatever the split);
- ``micro``: a run's micro-batch, the first examples of the step, when the run splits the step (CB: 8 of 1);
- ``eval``: the first evaluation batch.

A training step is the classification objective's forward and backward and an AdamW step of the trained biases; an
evaluation step scores every candidate without gradients. Beside each, the same model runs the same token ids as a
plain causal batch (no block mask, no packing): per-candidate plain time / shared-prefix plain time is the speed-up
that running fewer tokens alone allows on this machine (``bound``), against which the measured one can be read. The
ways run interleaved, one step each per round, so that load from other processes hits all alike. Memory is the peak
of one ``step`` training step, measured as the step table measures it (``beft.bench.memory``).
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
TRAINING = ("step", "micro")  # the batches that time a training step; ``eval`` times evaluation


def _rows(spec, tokenizer) -> dict[str, list[dict]]:
    """One optimizer step's training examples, a run's micro-batch of them and the first evaluation batch, as prompt
    rows prepared by the run's own pipeline (``micro`` only when the run splits the step into micro-batches)."""
    from beft.data import regimes, sources
    from beft.pipelines import PIPELINES

    args = spec.trainer_args
    splits = sources.load_splits(spec.task, spec.data.dir)
    micro = int(args["per_device_train_batch_size"])
    step = micro * int(args.get("gradient_accumulation_steps", 1))
    indices = regimes.subset_indices(len(splits["train"]), spec.data.num_train, spec.seed)[:step]
    data = PIPELINES["decoder"].prepare_data(spec, splits, indices, tokenizer)
    evals = next(iter(data.eval.values()))
    rows = {
        "step": [data.train[i] for i in range(len(data.train))],
        "eval": [evals[i] for i in range(min(len(evals), int(args["per_device_eval_batch_size"])))],
    }
    if micro < step:
        rows["micro"] = rows["step"][:micro]
    return rows


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


def _plain_step(model: nn.Module, ids: torch.Tensor, train: bool) -> None:
    """The same token ids as one plain causal batch: what the tokens alone cost, with nothing of either way's masks."""
    if not train:
        model.eval()
    try:
        with torch.set_grad_enabled(train):
            logits = model(input_ids=ids, use_cache=False, logits_to_keep=1).logits
            if train:
                logits.float().logsumexp(-1).sum().backward()
    finally:
        model.train()
    model.zero_grad(set_to_none=True)


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


def _load(task: str, device: torch.device):
    """The section's spec, model (trained biases as the run's method selects them), tokenizer, weights' source and
    the trained parameters."""
    from beft.models import loading, methods, targets

    spec = settings.train_spec(f"task={task}", *settings.load().decoder.overrides, checked=True)
    torch.manual_seed(spec.seed)
    model, tokenizer, source = loading.load_decoder(spec.model)
    if spec.model.get("add_bias"):
        targets.add_biases(model, spec.bias["roles"])
    params = methods.apply_method(model, dict(spec.method), dict(spec.bias), seed=spec.seed).params
    return spec, model.to(device).train(), tokenizer, source, params


def _median_times(steps: dict[tuple[str, str], Callable[[], Any]], rounds: int, warmup: int, device) -> dict:
    """Median seconds of every step, run interleaved (one each per round) after ``warmup`` untimed rounds."""
    times: dict[tuple[str, str], list[float]] = {key: [] for key in steps}
    for round_ in range(warmup + rounds):
        for key, fn in steps.items():
            seconds = _timed(fn, device)
            if round_ >= warmup:
                times[key].append(seconds)
    return {key: statistics.median(v) for key, v in times.items()}


def measure_task(task: str, steps: int, warmup: int, device: torch.device, log) -> dict[str, Any]:
    """One task's row: per batch, median step times both ways (and plain), the speed-ups and their bound; peak
    memory of a training step and the scores' largest difference."""
    from beft.training import decoder

    spec, model, tokenizer, source, params = _load(task, device)
    rows = _rows(spec, tokenizer)
    batches = {
        (name, way): _to(decoder.collator(tokenizer.pad_token_id, False, shared)(rows[name]), device)
        for name in rows
        for way, shared in WAYS.items()
    }
    optimizer = torch.optim.AdamW(params, lr=0.0)  # timing only: lr 0 leaves the weights as loaded

    def run(name: str, way: str) -> Callable[[], Any]:
        batch = batches[(name, way)]
        return (
            (lambda: _train_step(model, batch, optimizer)) if name in TRAINING else (lambda: _eval_step(model, batch))
        )

    def plain(name: str, way: str) -> Callable[[], Any]:
        return lambda: _plain_step(model, batches[(name, way)]["input_ids"], name in TRAINING)

    timed = {key: run(*key) for key in batches} | {(n, f"plain_{w}"): plain(n, w) for n, w in batches}
    median = _median_times(timed, steps, warmup, device)
    peaks = {way: _peak(model, run("step", way), device) for way in WAYS}
    scores = {way: _eval_step(model, batches[("eval", way)]) for way in WAYS}
    result = {
        "task": task,
        "model": spec.model["name"],
        "model_source": source,
        "batches": {name: _batch_row(name, rows[name], batches, median) for name in rows},
        "train_peak_mb": {way: round(b / 2**20, 1) for way, b in peaks.items()},
        "max_score_difference": float((scores["per_candidate"] - scores["shared_prefix"]).abs().max()),
    }
    result["train_speedup"] = result["batches"]["step"]["speedup"]
    result["eval_speedup"] = result["batches"]["eval"]["speedup"]
    speedups = ", ".join(f"{n} x{b['speedup']:.2f} (bound x{b['bound']:.2f})" for n, b in result["batches"].items())
    log(f"  decoder {task}: {speedups}; peak {result['train_peak_mb']} MiB, scores differ by "
        f"{result['max_score_difference']:.1e}")  # fmt: skip
    return result


def _batch_row(name: str, rows: Sequence[Mapping[str, Any]], batches, median) -> dict[str, Any]:
    seconds = {way: median[(name, way)] for way in WAYS} | {f"plain_{w}": median[(name, f"plain_{w}")] for w in WAYS}
    return {
        "examples": len(rows),
        "candidates": sum(len(r["input_ids"]) for r in rows),
        "tokens": {way: list(batches[(name, way)]["input_ids"].shape) for way in WAYS},
        "median_s": {k: round(v, 4) for k, v in seconds.items()},
        "speedup": seconds["per_candidate"] / seconds["shared_prefix"],
        "bound": seconds["plain_per_candidate"] / seconds["plain_shared_prefix"],
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


BATCH_LABELS = {"step": "train, one optimizer step", "micro": "train, a run's micro-batch", "eval": "evaluation"}


def markdown(section: Mapping[str, Any]) -> list[str]:
    lines = [
        "",
        f"## Decoder candidate scoring: per candidate vs shared prefix ({section['tasks'][0]['model']})",
        "",
        f"Overrides {' '.join(section['overrides'])}; batches of each task's own subsets: one optimizer step's "
        "training examples as one batch, a run's micro-batch of them where the run splits the step, and the first "
        f"evaluation batch. Median of {section['steps']} steps after {section['warmup']} warm-up rounds, interleaved. "
        "Train = classification objective forward + backward + AdamW step; evaluation = every candidate's score, no "
        "gradients. Speed-up = per-candidate time / shared-prefix time; bound = the same ratio for the same token ids "
        "run as plain causal batches (what running fewer tokens alone gives on this machine).",
        "",
        "| task | batch | examples (candidates) | tokens, per candidate / shared | seconds, per candidate / shared "
        "| speed-up | bound |",
        "|---|---|---:|---|---|---:|---:|",
    ]
    for r in section["tasks"]:
        for name, b in r["batches"].items():
            tokens, m = b["tokens"], b["median_s"]
            lines.append(
                f"| {r['task']} | {BATCH_LABELS[name]} | {b['examples']} ({b['candidates']}) | "
                f"{'x'.join(map(str, tokens['per_candidate']))} / {'x'.join(map(str, tokens['shared_prefix']))} | "
                f"{m['per_candidate']:.3f} / {m['shared_prefix']:.3f} | {b['speedup']:.2f} | {b['bound']:.2f} |"
            )
    lines += ["", "| task | peak MiB of an optimizer step's batch, per candidate / shared | max score difference |",
              "|---|---|---:|"]  # fmt: skip
    for r in section["tasks"]:
        p = r["train_peak_mb"]
        lines.append(f"| {r['task']} | {p['per_candidate']:.0f} / {p['shared_prefix']:.0f} | "
                     f"{r['max_score_difference']:.1e} |")  # fmt: skip
    return lines

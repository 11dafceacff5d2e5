"""The results: step rows, padding speed-ups, the targets of conf/bench.yaml, Markdown, and the written files.

``results/bench/<machine>.json`` holds every figure; ``<machine>.md`` is rendered from that JSON alone, so a
committed JSON can always be rendered again.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from beft import atomic
from beft.bench import decoder, settings
from beft.bench.steps import StepSetup
from beft.errors import ConfigError


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise_steps(
    setups: Sequence[StepSetup], times: Mapping[str, Mapping[str, list[float]]], memory: Mapping[str, int]
) -> list[dict[str, Any]]:
    """One row per setup: median and fastest step, phases, trainable parameters, peak memory, ratios to full."""
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


def padding_speedups(jobs: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """SST-2 fixed-128 over dynamic padding, in wall and in CPU time ({} without both jobs)."""
    by = {(j["task"], j["padding"]): j for j in jobs}
    if ("sst2", "dynamic") not in by or ("sst2", "max_length") not in by:
        return {}
    dyn, fixed = by[("sst2", "dynamic")], by[("sst2", "max_length")]
    return {
        "sst2_dynamic_speedup_wall": round(fixed["wall_s"] / dyn["wall_s"], 3),
        "sst2_dynamic_speedup_cpu": round(fixed["cpu_s"] / dyn["cpu_s"], 3),
    }


def _step_value(name: str, key: str) -> Callable[[Mapping[str, Any]], float | None]:
    return lambda result: {r["name"]: r for r in result.get("steps", [])}.get(name, {}).get(key)


def _sst2_speedup(result: Mapping[str, Any]) -> float | None:
    warm = [j for j in result.get("end_to_end", []) if j["cache"] == "warm"]
    return padding_speedups(warm).get("sst2_dynamic_speedup_wall")  # wall time: what a user waits for


def _warm_overhead(result: Mapping[str, Any]) -> float | None:
    return result["overhead"]["warm_fraction"] if result.get("overhead") else None


# target key (conf/bench.yaml) -> how a result measures it (None: not measured)
MEASURES: dict[str, Callable[[Mapping[str, Any]], float | None]] = {
    "bv_step_ratio": _step_value("b_v", "ratio_to_full"),
    "bv_memory_ratio": _step_value("b_v", "memory_ratio_to_full"),
    "sst2_dynamic_speedup": _sst2_speedup,
    "warm_overhead_fraction": _warm_overhead,
    "decoder_cb_train_speedup": decoder.task_value("cb", "train_speedup"),
    "decoder_sst2_train_speedup": decoder.task_value("sst2", "train_speedup"),
    "decoder_cb_eval_speedup": decoder.task_value("cb", "eval_speedup"),
    "decoder_sst2_eval_speedup": decoder.task_value("sst2", "eval_speedup"),
}


def evaluate_targets(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target of conf/bench.yaml with its measured value and pass (True / False / None: not measured)."""
    out = []
    for t in settings.targets():
        if t.key not in MEASURES:
            raise ConfigError(f"{settings.BENCH_CONF}: targets.{t.key} is not measured; valid: {list(MEASURES)}")
        value = MEASURES[t.key](result)
        passed = None if value is None else t.passes(value)
        out.append({"key": t.key, "what": t.what, "value": value, "target": f"{t.op} {t.limit}", "pass": passed})
    return out


def _header(result: Mapping[str, Any]) -> list[str]:
    m, s, v = result["machine"], result["settings"], result["versions"]
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    return [
        f"# Benchmark: {m['machine']}",
        "",
        f"{result['created']}; CPU {m['cpu_model']} ({m['cpu_cores']} cores, torch threads {m['torch_threads']}){gpu}; "
        f"torch {v['torch']}, transformers {v['transformers']}; git {str(v.get('git_commit'))[:10]}"
        f"{' (dirty)' if v.get('git_dirty') else ''}. Load average (1 min) at start "
        f"{result['loadavg'][0]}, at end {result['loadavg'][1]} (other processes share this machine when > 0).",
        "",
        f"## Training step: {s['model']}, batch {s['batch_shape'][0]} x {s['batch_shape'][1]} tokens "
        f"({s['batch_source']}), {s['precision']}",
        "",
        f"Median of {s['steps']} steps after {s['warmup']} warm-up rounds; rows interleaved. The ratio of the "
        "fastest steps (x full, min) shows how much of the median ratio is noise from other processes. Memory: "
        f"{result['memory_method']}.",
        "",
    ]


def _short_header(result: Mapping[str, Any]) -> list[str]:
    """The header of a result without the step table (``--decoder-only``)."""
    m, v = result["machine"], result["versions"]
    return [
        f"# Benchmark: {m['machine']} (decoder section only)",
        "",
        f"{result['created']}; CPU {m['cpu_model']} ({m['cpu_cores']} cores, torch threads {m['torch_threads']}); "
        f"torch {v['torch']}, transformers {v['transformers']}; git {str(v.get('git_commit'))[:10]}"
        f"{' (dirty)' if v.get('git_dirty') else ''}. Load average (1 min) at start {result['loadavg'][0]}, at end "
        f"{result['loadavg'][1]} (other processes share this machine when > 0).",
    ]


def _step_table(steps: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [
        "| row | trainable | step (s), median | x full | x full, min | forward / backward / optimizer (s) "
        "| peak memory (MiB) | x full |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    full_min = next((r["min_s"] for r in steps if r["name"] == "full"), None)
    for r in steps:
        ph = r["phases_median_s"]
        phases = " / ".join(f"{ph[k]:.4f}" for k in ("forward", "backward", "optimizer") if k in ph)
        mem = "–" if r["peak_mb"] is None else f"{r['peak_mb']:.1f}"
        mem_ratio = "–" if r["memory_ratio_to_full"] is None else f"{r['memory_ratio_to_full']:.3f}"
        min_ratio = f"{r['min_s'] / full_min:.3f}" if full_min else "–"
        lines.append(
            f"| {r['label']} | {r['trainable']:,} | {r['median_s']:.4f} | {r['ratio_to_full']:.3f} | {min_ratio} "
            f"| {phases} | {mem} | {mem_ratio} |"
        )
    return lines


def _job_table(jobs: Sequence[Mapping[str, Any]]) -> list[str]:
    e = jobs[0]["epochs"]
    lines = [
        "",
        f"## End to end: `python -m beft.train` b_v, low regime, **{e} epoch(s)** measured",
        "",
        "Job = launch to exit. Train = the Trainer's train_runtime (training + evaluation after each epoch). "
        f"Overhead = job - train. The full-schedule column is an **estimate**: overhead + epochs x train / {e}.",
        "",
        "| task | padding | cache | job (s) | job CPU time (s) | train (s) | overhead (s) | final acc. | "
        "peak RSS (MiB) | load before | full schedule, estimate (s) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for j in jobs:
        lines.append(
            f"| {j['task']} | {j['padding']} | {j['cache']} | {j['wall_s']:.1f} | {j['cpu_s']:.1f} | "
            f"{j['train_runtime_s']:.1f} | {j['overhead_s']:.1f} | {j['score']:.3f} | {j['peak_rss_mb']:.0f} | "
            f"{j['loadavg_1min_before']} | {j['full_schedule_estimate_s']:.0f} ({j['full_schedule_epochs']} ep.) |"
        )
    return lines


def _end_to_end(result: Mapping[str, Any]) -> list[str]:
    lines = _job_table(result["end_to_end"])
    if "sst2_dynamic_speedup_cpu" in result:
        lines += [
            "",
            f"SST-2 fixed-128 / dynamic: {result['sst2_dynamic_speedup_wall']:.2f}x in wall time, "
            f"{result['sst2_dynamic_speedup_cpu']:.2f}x in CPU time (CPU time counts only what the job itself ran, "
            "so it is the better estimate where other processes share the machine).",
        ]
    o = result["overhead"]
    epochs = result["end_to_end"][0]["full_schedule_epochs"]  # the warm job the overhead is a fraction of
    return [
        *lines,
        "",
        f"Per-job overhead of an RTE-low job: cold cache {o['cold_s']:.1f} s (start-up {o['cold_startup_s']:.1f}"
        f" + set-up {o['cold_setup_s']:.1f}), warm cache {o['warm_s']:.1f} s (start-up {o['warm_startup_s']:.1f}"
        f" + set-up {o['warm_setup_s']:.1f}); RTE-low job ({epochs} epochs, estimate) {o['rte_low_job_estimate_s']:.0f}"
        f" s: warm {100 * o['warm_fraction']:.1f} %, cold {100 * o['cold_fraction']:.1f} %.",
    ]


def _targets(targets: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["", "## Targets", "", "| target | measured | limit | result |", "|---|---:|---|---|"]
    for t in targets:
        verdict = {True: "pass", False: "FAIL", None: "not measured"}[t["pass"]]
        value = "–" if t["value"] is None else f"{t['value']:.3f}"
        lines.append(f"| {t['what']} | {value} | {t['target']} | {verdict} |")
    return lines


def markdown(result: Mapping[str, Any]) -> str:
    """The results as a Markdown page (from the JSON alone)."""
    lines = [*_header(result), *_step_table(result["steps"])] if "steps" in result else _short_header(result)
    if result.get("end_to_end"):
        lines += _end_to_end(result)
    if result.get("decoder"):
        lines += decoder.markdown(result["decoder"])
    return "\n".join([*lines, *_targets(result["targets"]), ""])


def write_results(out: Path, result: Mapping[str, Any]) -> tuple[Path, Path, str]:
    """``<out>/<machine>.json`` and ``.md`` (``<machine>-decoder`` for the decoder section alone), each written
    atomically; returns both paths and the Markdown."""
    stem = Path(out) / (result["machine"]["machine"] + ("" if "steps" in result else "-decoder"))
    summary = markdown(result)
    json_path = atomic.write_text(stem.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    md_path = atomic.write_text(stem.with_suffix(".md"), summary)
    return json_path, md_path, summary

"""End-to-end jobs: real ``python -m beft.train`` runs timed from launch to exit, and the per-job overhead."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from beft import records
from beft.bench import settings

PADDINGS = ("dynamic", "max_length")  # data.padding: per batch, or the reference's fixed max_length tokens
OVERHEAD_TASK = "rte"  # the cold job and the job the overhead is a fraction of
TASKS = (OVERHEAD_TASK, "sst2")  # sst2: the short sentences the padding target is about
COLD_EXTRA = ("+trainer.args.max_steps=1", "trainer.args.num_train_epochs=1")  # one step: the overhead, little else


class BenchError(RuntimeError):
    """A job failed or left no completed record."""


def job_command(task: str, padding: str, results_dir: Path, cache_dir: Path, overrides: Sequence[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "beft.train",
        f"task={task}",
        *settings.load().job_overrides,
        f"data.padding={padding}",
        "trainer.args.disable_tqdm=true",
        f"results_dir={results_dir}",
        f"data.cache_dir={cache_dir}",
        "force=true",
        *overrides,
    ]


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
    cmd = job_command(task, padding, results_dir, cache_dir, overrides)
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), "TOKENIZERS_PARALLELISM": "false"}
    load = os.getloadavg()[0]
    cpu0 = _children_cpu_s()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=settings.REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    cpu = _children_cpu_s() - cpu0
    what = " ".join(cmd[2:])
    if proc.returncode != 0:
        raise BenchError(f"{what} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    rec = job_record(results_dir, what, proc.stderr)
    return {"task": task, "padding": padding, **job_figures(rec, wall, cpu), "loadavg_1min_before": round(load, 2)}


def job_record(results_dir: Path, what: str, stderr: str = "") -> records.RunRecord:
    """The job's one completed run record (BenchError otherwise)."""
    found = [rec for _, rec in records.iter_runs(results_dir)]
    if len(found) != 1 or not found[0].completed:
        raise BenchError(f"{what} left no completed record:\n{stderr[-3000:]}")
    return found[0]


def job_figures(rec: records.RunRecord, wall: float, cpu: float) -> dict[str, Any]:
    """A job's figures from its wall and CPU time (s) and its record: where the time went."""
    train_s = float(rec.train_runtime_s)
    run_wall = rec.time["wall_s"]  # the run inside the job: from the entry point to the record
    return {
        "epochs": len(rec.epochs),
        "num_train": rec.data["num_train"],
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),  # user + system CPU time of the job: less sensitive to other processes than wall
        "train_runtime_s": round(train_s, 2),
        "overhead_s": round(wall - train_s, 2),
        "startup_s": round(wall - run_wall, 2),  # interpreter, imports, Hydra, exit
        "setup_s": round(run_wall - train_s, 2),  # data, tokenise/cache, model, Trainer, record
        "score": rec.score.final,
        "peak_rss_mb": rec.memory["peak_rss_mb"],
    }


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def warm_cache(task: str, padding: str, cache_dir: Path, overrides: Sequence[str]) -> None:
    """Tokenise a task's splits into ``cache_dir`` exactly as a run does, so that timed jobs start warm."""
    from transformers import AutoTokenizer

    from beft.data import features, sources
    from beft.models import loading

    spec = settings.train_spec(f"task={task}", f"data.padding={padding}", *overrides)
    tokenizer = AutoTokenizer.from_pretrained(loading.resolve_source(spec.model))
    for split in sources.load_splits(spec.task, spec.data.dir).values():
        features.tokenize(split, spec.task.text_fields, tokenizer, spec.data.max_length, padding, cache_dir)


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

    cold = job(OVERHEAD_TASK, "dynamic", f"{OVERHEAD_TASK}-cold", "cold", COLD_EXTRA)
    jobs = []
    for task in TASKS:
        full_epochs = settings.full_schedule_epochs(task, overrides)
        for padding in PADDINGS:
            warm_cache(task, padding, cache, overrides)
            job_ = job(task, padding, f"{task}-{padding}", "warm", [f"trainer.args.num_train_epochs={epochs}"])
            job_["full_schedule_epochs"] = full_epochs
            estimate = job_["overhead_s"] + full_epochs * job_["train_runtime_s"] / epochs
            job_["full_schedule_estimate_s"] = round(estimate, 1)
            jobs.append(job_)
    return jobs, overhead(cold, jobs[0])


def overhead(cold: dict[str, Any], warm: dict[str, Any]) -> dict[str, Any]:
    """The per-job overhead, cold and warm, and as a fraction of the warm job's full-schedule estimate."""
    return {
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

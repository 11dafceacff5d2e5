"""The command line: ``python -m beft.bench [--steps N] [--epochs N] [--skip-e2e] ... [Hydra overrides]``."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

import beft.bench
from beft import records
from beft.bench import decoder, jobs, machine, memory, report, settings, steps


def parser() -> argparse.ArgumentParser:
    defaults = settings.load()
    p = argparse.ArgumentParser(prog="python -m beft.bench", description=beft.bench.__doc__.split("\n\n")[0])
    p.add_argument("overrides", nargs="*", help="Hydra overrides of conf/train.yaml, e.g. model.path=/x")
    p.add_argument("--steps", type=int, default=defaults.steps, help="timed steps per row (median)")
    p.add_argument("--warmup", type=int, default=defaults.warmup, help="untimed warm-up rounds")
    p.add_argument("--epochs", type=int, default=defaults.epochs, help="epochs of each end-to-end job")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="autocast for the step table")
    p.add_argument("--trainer", default=None, help="trainer config of the end-to-end jobs (e.g. gpu)")
    p.add_argument("--skip-e2e", action="store_true", help="steps and memory only")
    p.add_argument("--skip-decoder", action="store_true", help="no decoder section")
    p.add_argument(
        "--decoder-only", action="store_true", help="the decoder section alone, written to <machine>-decoder.{json,md}"
    )
    p.add_argument("--out", type=Path, default=settings.REPO / "results" / "bench")
    return p


def measure_steps(
    args: argparse.Namespace, overrides: Sequence[str], device: torch.device, log: Callable[[str], None]
) -> dict[str, Any]:
    """The step table and memory on the configured batch: the result's ``settings``, ``memory_method``, ``steps``."""
    from beft.models import loading

    base = [*settings.load().step_overrides, *overrides]
    spec = settings.train_spec(*base, checked=True)  # bad input: one line, before any model or data is loaded
    torch.manual_seed(spec.seed)
    model, tokenizer, source = loading.load_encoder(spec.model, spec.task)
    model.to(device)
    batch, batch_source = steps.step_batch(spec, tokenizer, device)
    setups = [*steps.method_setups(model, base), steps.EVAL]
    log(f"steps: {', '.join(s.name for s in setups)} on a batch of {tuple(batch['input_ids'].shape)}")
    times = steps.time_steps(model, batch, setups, args.steps, args.warmup, args.precision)
    log("memory ...")
    peaks = {
        s.name: memory.peak_memory(model, batch, s, args.precision, steps=memory.TRAIN_STEPS if s.train else 1)
        for s in setups
    }
    return {
        "settings": {
            "model": spec.model["name"],
            "model_source": source,
            "batch_shape": list(batch["input_ids"].shape),
            "batch_source": batch_source,
            "steps": args.steps,
            "warmup": args.warmup,
            "precision": args.precision,
            "optimizer": f"AdamW optim={setups[0].optim} (betas, eps, weight decay), clip max_grad_norm",
            "overrides": list(overrides),
        },
        "memory_method": memory.memory_method(device),
        "steps": report.summarise_steps(setups, times, peaks),
    }


def _versions() -> dict[str, Any]:
    env = records.environment()
    return {**env["packages"], "python": env["python"], "git_commit": env["git_commit"], "git_dirty": env["git_dirty"]}


def _end_to_end(epochs: int, overrides: Sequence[str], log: Callable[[str], None]) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="beft-bench-"))
    try:
        end_to_end, overhead = jobs.end_to_end(epochs, workdir, overrides, log)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"end_to_end": end_to_end, "overhead": overhead}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    from transformers import logging as hf_logging

    hf_logging.set_verbosity_error()
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    overrides = [*args.overrides, *([f"trainer={args.trainer}"] if args.trainer else [])]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.enable_cudnn_sdp(False)  # as beft.training.trainer.fit does (per-shape plan builds)
    info = machine.machine_info(device, args.precision)

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.1f} s] {msg}", flush=True)

    log(f"bench on {info['machine']} ({info['cpu_model']}, {info['torch_threads']} torch threads)")
    measured = {} if args.decoder_only else measure_steps(args, overrides, device, log)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result: dict[str, Any] = {"machine": info, "created": created, "versions": _versions(), **measured}
    for r in result.get("steps", []):
        log(
            f"  {r['label']:36s} {r['median_s']:.4f} s  x{r['ratio_to_full']:.3f}   "
            f"{r['peak_mb']:.1f} MiB  x{r['memory_ratio_to_full']:.3f}"
        )
    if not (args.skip_e2e or args.decoder_only):
        result |= _end_to_end(args.epochs, overrides, log)
    if not args.skip_decoder:
        cfg = settings.load().decoder
        result["decoder"] = decoder.measure(int(cfg.steps), int(cfg.warmup), device, log)
    result |= report.padding_speedups(result.get("end_to_end", []))
    result["loadavg"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    result["targets"] = report.evaluate_targets(result)
    result["bench_wall_s"] = round(time.perf_counter() - t_start, 1)
    json_path, md_path, summary = report.write_results(args.out, result)
    print("\n" + summary)
    log(f"wrote {json_path} and {md_path}")
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
    except jobs.BenchError as err:
        print(f"beft.bench: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cli()

"""``python -m beft.bench`` (``make bench``): what a training step, a run and a sweep job cost, per method.

Researchers choose a method by what a sweep costs, so every figure is printed absolute and as a ratio to full
fine-tuning, measured in one process on the same model and the same batch:

* **steps** (``steps.py``): the median time of a training step (forward, backward, gradient clipping, AdamW step) of
  full fine-tuning, all biases (BitFit), b_v, b_q and b_k, and of evaluation (forward only, no gradients). Methods
  run interleaved, one step each per round, so that load from other processes on a shared machine hits all of them
  alike. Each step is also split into forward / backward / optimizer, which is the profile that explains the ratios.
* **memory** (``memory.py``): the peak tensor memory of two training steps with a fresh optimizer, beyond the loaded
  model. On a GPU this is the CUDA allocator's peak minus what was allocated before; on a CPU, where torch keeps no
  allocator statistics, it is counted exactly by a dispatch mode that follows every tensor storage each aten op
  creates until it is freed (the same definition without the allocator's rounding and caching).
* **end to end** (``jobs.py``): real ``python -m beft.train`` jobs (b_v, low regime, SST-2 and RTE) with
  ``data.padding=dynamic`` and ``max_length`` (the reference's fixed 128 tokens). They run a shortened schedule
  (``--epochs``, 1 by default: the full training subset once, plus the evaluation); full-schedule times are
  extrapolated from the epochs the composed config schedules and labelled estimates.
* **per-job overhead** (``jobs.py``): job wall time minus the Trainer's ``train_runtime`` (interpreter start,
  imports, data load and tokenisation, model load, Trainer set-up, record), with a cold (empty) and a warm feature
  cache.

``machine.py`` names the machine, ``report.py`` summarises, checks the targets of ``conf/bench.yaml`` and writes
``results/bench/<machine>.json`` and ``<machine>.md`` (atomically); ``settings.py`` reads the configs and
``__main__.py`` is the command line.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """``beft.bench.main`` / ``beft.bench.cli``, imported on first use (``python -m`` runs ``__main__`` itself)."""
    if name in ("main", "cli"):
        from beft.bench import __main__ as command

        return getattr(command, name)
    raise AttributeError(f"module 'beft.bench' has no attribute {name!r}")

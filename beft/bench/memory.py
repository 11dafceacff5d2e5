"""Peak training memory beyond the loaded model: the CUDA allocator's peak, or exact tensor accounting on a CPU."""

from __future__ import annotations

import time
import weakref
from collections.abc import Mapping

import torch
from torch import nn
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from beft.bench.steps import StepSetup, run_step, select_trainable, sync

TRAIN_STEPS = 2  # the second step holds the optimizer state the first one created


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
    model: nn.Module,
    batch: Mapping[str, torch.Tensor],
    setup: StepSetup,
    precision: str = "fp32",
    steps: int = TRAIN_STEPS,
) -> int:
    """Peak tensor bytes beyond the loaded model over ``steps`` steps with a fresh optimizer (its state included)."""
    device = next(model.parameters()).device
    model.train()  # dropout on, as in training (it decides which attention kernel runs)
    select_trainable(model, setup.params)
    model.zero_grad(set_to_none=True)
    optimizer = setup.optimizer() if setup.train else None
    clock = time.perf_counter
    if device.type == "cuda":
        sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(steps):
            run_step(model, batch, setup, optimizer, precision, clock)
        sync(device)
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        with TensorMemory() as tracker:
            for _ in range(steps):
                run_step(model, batch, setup, optimizer, precision, clock)
        peak = tracker.peak
    del optimizer
    select_trainable(model, [])
    return int(peak)


def memory_method(device: torch.device) -> str:
    """How ``peak_memory`` measured, in words, for the results."""
    if device.type == "cuda":
        return (
            "CUDA allocator: torch.cuda.max_memory_allocated() during 2 steps with a fresh optimizer, minus "
            "torch.cuda.memory_allocated() before them (the loaded model)"
        )
    return (
        "torch dispatch-mode tensor accounting (beft.bench.memory.TensorMemory), in the bench process: peak bytes of "
        "live tensor storage allocated by aten ops during 2 steps with a fresh optimizer (activations, gradients, "
        "optimizer state, temporaries); the loaded model and the batch are not counted; no allocator rounding"
    )

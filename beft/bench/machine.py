"""The machine's fingerprint: what the bench ran on, and the name of its results file."""

from __future__ import annotations

import contextlib
import os
import platform
import re
from pathlib import Path
from typing import Any

import torch


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info(device: torch.device, precision: str) -> dict[str, Any]:
    """CPU, cores, torch threads, GPU; ``machine`` names the results file (precision appended unless fp32)."""
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
        machine = f"cuda-{slug(info['gpu'])}"
    else:
        machine = f"cpu-{cores}core-{slug(info['cpu_model'])}"
    info["machine"] = machine + ("" if precision == "fp32" else f"-{precision}")
    return info

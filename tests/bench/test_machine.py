"""The machine's name: it names the results file, so it must be stable and file-safe."""

from __future__ import annotations

import re

import torch

from beft.bench import machine


def test_a_cpu_machine_is_named_by_cores_and_model():
    info = machine.machine_info(torch.device("cpu"), "fp32")
    assert info["device"] == "cpu" and info["cpu_cores"] >= 1
    assert info["machine"] == f"cpu-{info['cpu_cores']}core-{machine.slug(info['cpu_model'])}"
    assert re.fullmatch(r"[a-z0-9-]+", info["machine"])
    assert machine.machine_info(torch.device("cpu"), "bf16")["machine"] == info["machine"] + "-bf16"


def test_slug():
    assert machine.slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"

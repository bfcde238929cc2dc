"""A one-line description of the hardware a run used, for reports."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

__all__ = ["cpu_name", "describe"]


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo where there is one) and the number of logical cores."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model or 'unknown CPU'}, {os.cpu_count()} cores"


def describe(device: torch.device | str) -> str:
    """``"NVIDIA H100 80GB HBM3 (cuda:0)"`` for a CUDA device, ``"CPU: <model>, <n> cores"`` otherwise."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"{torch.cuda.get_device_name(index)} (cuda:{index})"
    return f"CPU: {cpu_name()}"

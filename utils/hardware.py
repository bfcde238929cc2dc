"""A one-line description of the hardware a run used, for reports."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

__all__ = ["cpu_name", "describe", "resolve_device"]


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo where there is one) and the number of logical cores."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text(errors="replace").splitlines() if cpuinfo.is_file() else []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                 platform.processor() or platform.machine())
    return f"{model or 'unknown CPU'}, {os.cpu_count()} cores"


def describe(device: torch.device | str) -> str:
    """``"NVIDIA H100 80GB HBM3 (cuda:0)"`` for a CUDA device, ``"CPU: <model>, <n> cores"`` otherwise."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"{torch.cuda.get_device_name(index)} (cuda:{index})"
    return f"CPU: {cpu_name()}"


def resolve_device(name: str, option: str = "--device") -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available) as a device; else a one-line ``ValueError``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {name!r}: use cpu, cuda, cuda:N or auto") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{option} cuda requested but CUDA is not available")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {name!r}: use cpu, cuda, cuda:N or auto")
    return device

"""The machine a figure was measured on: CPU model, vector ISA, cores, Python.

Latency and int8-against-fp32 speed ratios depend on the CPU's vector units, so every report and
benchmark prints them next to its numbers. Read from ``/proc/cpuinfo`` (Linux); elsewhere the
CPU is named by :mod:`platform` and the flags are empty.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class CpuInfo:
    """The first processor's entries in ``/proc/cpuinfo`` (empty where there is none).

    Attributes:
        model: ``model name``.
        vendor: ``vendor_id``, e.g. ``GenuineIntel`` or ``AuthenticAMD``.
        flags: ``flags``: the instruction-set extensions, e.g. ``avx2``, ``avx512_vnni``.
        mhz: The highest ``cpu MHz`` of any processor (0.0 when not listed).
        family: ``cpu family`` (0 when not listed): with ``model_number``, the microarchitecture
            where a VM hides the model name (``AMD EPYC``): see :func:`cpu_core`.
        model_number: ``model``, the number (0 when not listed).
    """

    model: str = ""
    vendor: str = ""
    flags: frozenset[str] = frozenset()
    mhz: float = 0.0
    family: int = 0
    model_number: int = 0


def cpu_info(path: Path = CPUINFO) -> CpuInfo:
    """Parses ``/proc/cpuinfo``; an unreadable or missing file gives an empty :class:`CpuInfo`."""
    try:
        text = path.read_text()
    except OSError:
        return CpuInfo()
    first: dict[str, str] = {}
    mhz = 0.0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        first.setdefault(key, value)
        if key == "cpu MHz":
            try:
                mhz = max(mhz, float(value))
            except ValueError:
                pass
    flags = frozenset(first.get("flags", "").split())

    def number(key: str) -> int:
        value = first.get(key, "")
        return int(value) if value.isdigit() else 0

    return CpuInfo(
        first.get("model name", ""),
        first.get("vendor_id", ""),
        flags,
        mhz,
        number("cpu family"),
        number("model"),
    )


def cpu_core(info: CpuInfo) -> str:
    """AMD's core generation ("Zen 2", "Zen 3", ...) from ``cpu family`` / ``model`` ("" for other
    vendors or unknown families). Cloud VMs name the CPU just ``AMD EPYC``, while the generations
    differ in what matters here (Zen 2 has one vector-integer-multiply pipe, Zen 4 AVX-512 VNNI)."""
    if info.vendor != "AuthenticAMD":
        return ""
    if info.family == 0x17:
        return "Zen 2" if info.model_number >= 0x30 else "Zen / Zen+"
    if info.family == 0x19:
        return "Zen 4" if "avx512f" in info.flags else "Zen 3"
    if info.family == 0x1A:
        return "Zen 5"
    return ""


def cpu_isa(flags: set[str] | frozenset[str]) -> str:
    """The widest x86 vector ISA among /proc/cpuinfo ``flags`` ("" when none is known, e.g. ARM)."""
    if "avx512_vnni" in flags:
        return "AVX-512 VNNI + AMX" if "amx_int8" in flags else "AVX-512 VNNI"
    for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX")):
        if flag in flags:
            return name
    return ""


def machine() -> dict[str, Any]:
    """CPU model with its widest vector ISA (int8 and fp32 speed ratios depend on it), core count
    and Python version, so latency and training figures can be read in context."""
    info = cpu_info()
    cpu, isa = info.model or platform.processor() or platform.machine(), cpu_isa(info.flags)
    core = cpu_core(info)
    if core and core not in cpu:
        cpu = f"{cpu} {core}"
    return {
        "cpu": f"{cpu} ({isa})" if isa else cpu,
        "isa": isa,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }

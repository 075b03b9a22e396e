"""The machine line: CPU model, vendor, flags and clock from /proc/cpuinfo, and the widest vector ISA."""

from __future__ import annotations

from pathlib import Path

from export.report.machine import CpuInfo, cpu_info, cpu_isa, machine

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
cpu MHz\t\t: 1900.000
flags\t\t: fpu sse4_2 avx avx2 avx512f avx512_vnni amx_int8
vmx flags\t: vnmi

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
cpu MHz\t\t: 3800.500
flags\t\t: fpu sse4_2 avx avx2 avx512f avx512_vnni amx_int8
"""


def test_cpu_info_reads_the_first_processor_and_the_highest_clock(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    info = cpu_info(path)
    assert (info.model, info.vendor, info.mhz) == ("Intel(R) Xeon(R) Platinum 8480+", "GenuineIntel", 3800.5), info
    assert info.flags == {"fpu", "sse4_2", "avx", "avx2", "avx512f", "avx512_vnni", "amx_int8"}, info.flags
    assert cpu_info(tmp_path / "missing") == CpuInfo()


def test_machine_names_the_widest_vector_isa() -> None:
    """Speed ratios are only read with the CPU's ISA next to them: report.md and BENCHMARKS print it."""
    cases = {
        frozenset({"sse4_2", "avx", "avx2"}): "AVX2",
        frozenset({"avx2", "avx512f"}): "AVX-512",
        frozenset({"avx2", "avx512f", "avx512_vnni"}): "AVX-512 VNNI",
        frozenset({"avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8"}): "AVX-512 VNNI + AMX",
        frozenset({"fp", "asimd"}): "",
    }
    for flags, want in cases.items():
        assert cpu_isa(flags) == want, (sorted(flags), cpu_isa(flags), want)
    m = machine()
    assert m["isa"] in m["cpu"], m

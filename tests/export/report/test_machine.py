"""The machine line: CPU model, vendor, flags and clock from /proc/cpuinfo, and the widest vector ISA."""

from __future__ import annotations

from pathlib import Path

from export.report.machine import CpuInfo, cpu_core, cpu_info, cpu_isa, machine

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
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
    assert (info.family, info.model_number) == (6, 143), info
    assert info.flags == {"fpu", "sse4_2", "avx", "avx2", "avx512f", "avx512_vnni", "amx_int8"}, info.flags
    assert cpu_info(tmp_path / "missing") == CpuInfo()


def test_cpu_core_names_amd_generations_from_family_and_model() -> None:
    """A VM's ``model name`` is often just "AMD EPYC"; the family / model numbers tell Zen 2 (one
    vector-integer-multiply pipe: half the int8 rate the AVX2 flag suggests) from Zen 3 and Zen 4."""
    avx2, avx512 = frozenset({"avx2"}), frozenset({"avx2", "avx512f", "avx512_vnni"})
    cases = [
        (CpuInfo(vendor="AuthenticAMD", family=23, model_number=49, flags=avx2), "Zen 2"),
        (CpuInfo(vendor="AuthenticAMD", family=23, model_number=1, flags=avx2), "Zen / Zen+"),
        (CpuInfo(vendor="AuthenticAMD", family=25, model_number=1, flags=avx2), "Zen 3"),
        (CpuInfo(vendor="AuthenticAMD", family=25, model_number=17, flags=avx512), "Zen 4"),
        (CpuInfo(vendor="AuthenticAMD", family=26, model_number=2, flags=avx512), "Zen 5"),
        (CpuInfo(vendor="GenuineIntel", family=6, model_number=143, flags=avx512), ""),
        (CpuInfo(), ""),
    ]
    for info, want in cases:
        assert cpu_core(info) == want, (info, cpu_core(info), want)


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

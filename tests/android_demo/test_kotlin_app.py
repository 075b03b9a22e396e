"""The demo app's Kotlin (android_demo/app/src/main and androidTest) compiles, warnings as errors,
at the app's Kotlin language level (2.1), against the real Java core, an ``R`` class generated from
the app's own resources, and stubs of the Android, LiteRT, ONNX Runtime and androidx.test APIs it
calls (tests/android_demo/api_stubs). The compiler comes from ``scripts/kotlin_compiler.sh``
(PyPI's kotlin-jupyter-kernel wheel: no Kotlin distribution or Maven is reachable here)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.builders import REPO, missing_tools, unavailable

APP = REPO / "android_demo" / "app"
STUBS = Path(__file__).parent / "api_stubs"
KOTLIN_VERSION = "2.1"  # gradle/libs.versions.toml pins Kotlin 2.1.21


@pytest.fixture(scope="module")
def kotlin_jars() -> tuple[Path, Path]:
    """(the compiler's fat jar, kotlin-stdlib) from scripts/kotlin_compiler.sh's directory."""
    home = os.environ.get("KIT_KOTLIN_HOME") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "bert-mobile-kit"
        / "kotlin-jupyter-kernel-0.19.0.944"
    )
    compilers = sorted(Path(home).glob("jars/kotlin-jupyter-kernel-*-all.jar"))
    stdlibs = sorted(Path(home).glob("jars/kotlin-stdlib-*.jar"))
    missing = missing_tools("javac", "java")
    if compilers and stdlibs and not missing:
        return compilers[-1], stdlibs[-1]
    what = f"{', '.join(missing)} (JDK 17)" if missing else f"a Kotlin compiler in {home}"
    return unavailable(what, "run `bash scripts/kotlin_compiler.sh` (from PyPI, ~80 MB; scripts/test.sh does)")


def generated_r(res: Path) -> str:
    """``R.java`` as aapt would declare it for the resources the app has (values are arbitrary)."""
    kinds: dict[str, set[str]] = {"layout": set(), "id": set(), "string": set()}
    for layout in res.glob("layout/*.xml"):
        kinds["layout"].add(layout.stem)
        kinds["id"].update(re.findall(r'android:id="@\+id/(\w+)"', layout.read_text(encoding="utf-8")))
    for values in res.glob("values/*.xml"):
        kinds["string"].update(re.findall(r'<string name="(\w+)"', values.read_text(encoding="utf-8")))
    lines, value = ["package dev.bertmobilekit.demo;", "public final class R {"], 0x7F000000
    for kind, names in kinds.items():
        lines.append(f"  public static final class {kind} {{")
        for name in sorted(names):
            value += 1
            lines.append(f"    public static final int {name} = {value};")
        lines.append("  }")
    return "\n".join([*lines, "}", ""])


def compile_app(kotlin_jars: tuple[Path, Path], tmp_path: Path, sources: list[Path]) -> subprocess.CompletedProcess:
    compiler, stdlib = kotlin_jars
    gen = tmp_path / "gen" / "dev" / "bertmobilekit" / "demo" / "R.java"
    gen.parent.mkdir(parents=True)
    gen.write_text(generated_r(APP / "src" / "main" / "res"))
    java = tmp_path / "java"
    javac = subprocess.run(
        ["javac", "--release", "17", "-nowarn", "-d", str(java), str(gen),
         *map(str, sorted(STUBS.rglob("*.java"))), *map(str, sorted((REPO / "android_demo/core/src/main").rglob("*.java")))],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert javac.returncode == 0, javac.stdout + javac.stderr
    return subprocess.run(
        ["java", "-Xss4m", "-cp", str(compiler), "org.jetbrains.kotlin.cli.jvm.K2JVMCompiler",
         "-no-stdlib", "-no-reflect", "-jvm-target", "17", "-language-version", KOTLIN_VERSION,
         "-api-version", KOTLIN_VERSION, "-Werror", "-cp", f"{stdlib}{os.pathsep}{java}",
         "-d", str(tmp_path / "kotlin"), *map(str, sources)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.slow
def test_app_kotlin_compiles_against_the_core_and_the_api_stubs(kotlin_jars: tuple[Path, Path], tmp_path: Path) -> None:
    sources = sorted(APP.glob("src/*/java/**/*.kt"))
    assert {p.parent.parent.parent.parent.parent.name for p in sources} == {"main", "androidTest"}, sources
    run = compile_app(kotlin_jars, tmp_path, sources)
    assert run.returncode == 0, f"kotlinc exited {run.returncode}:\n{run.stdout}{run.stderr}"
    compiled = {p.stem for p in (tmp_path / "kotlin").rglob("*.class")}
    expected = {"MainActivity", "LiteRtBackend", "OnnxBackend", "AssetBundleSource", "AppEnginesKt", "BundleSelfTest"}
    assert expected <= compiled, f"classes {sorted(compiled)} lack {sorted(expected - compiled)}"


@pytest.mark.slow
def test_a_kotlin_error_fails_the_compile(kotlin_jars: tuple[Path, Path], tmp_path: Path) -> None:
    """The check can fail: LiteRtBackend calling an Interpreter method LiteRT does not have."""
    broken = tmp_path / "LiteRtBackend.kt"
    text = (APP / "src/main/java/dev/bertmobilekit/demo/LiteRtBackend.kt").read_text(encoding="utf-8")
    broken.write_text(text.replace("interpreter.runSignature(", "interpreter.runSignatures("), encoding="utf-8")
    others = [p for p in sorted(APP.glob("src/main/java/**/*.kt")) if p.name != broken.name]
    run = compile_app(kotlin_jars, tmp_path, [*others, broken])
    assert run.returncode != 0 and "runSignatures" in run.stdout + run.stderr, run.stdout + run.stderr

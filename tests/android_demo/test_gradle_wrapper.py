"""The Android demo's Gradle project is self-contained: the committed wrapper (``gradlew`` + its jar)
is Gradle's own for the pinned version, the pinned Gradle lies inside the ranges AGP and the Kotlin
Gradle plugin document, and the wrapper really fetches, unpacks and starts the pinned distribution.

No Gradle distribution is reachable where the kit is developed, so the last test serves the
wrapper a stand-in ``gradle-<version>-bin.zip`` over ``file://`` whose launcher only echoes its
arguments: everything up to Gradle itself (the wrapper script, the jar, its download, unpacking and
launch) runs for real."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tomllib
import zipfile
from pathlib import Path


from tests.builders import REPO, missing_tools, unavailable

APP = REPO / "android_demo"
PROPERTIES = APP / "gradle" / "wrapper" / "gradle-wrapper.properties"
WRAPPER_JAR = APP / "gradle" / "wrapper" / "gradle-wrapper.jar"
# The Gradle 8.10.2 wrapper jar, taken from React Native's project template (npm
# @react-native-community/template 0.76.9, whose wrapper is Gradle 8.10.2's; 0.77/0.78 with Gradle
# 8.12 commit the same bytes). Gradle publishes it as services.gradle.org/distributions/
# gradle-8.10.2-wrapper.jar.sha256 — compare there when online (android_demo/README.md).
WRAPPER_SHA256 = {"8.10.2": "2db75c40782f5e8ba1fc278a5574bab070adccb2d21ca5a6e5ed840888448046"}


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def pinned_gradle() -> str:
    match = re.search(r"^distributionUrl=.*/gradle-([0-9.]+)-bin\.zip$", PROPERTIES.read_text(), re.M)
    assert match, f"{PROPERTIES}: no distributionUrl ending in gradle-<version>-bin.zip"
    return match.group(1)


def test_wrapper_files_are_committed_and_are_gradles_own() -> None:
    missing = [p.name for p in (APP / "gradlew", APP / "gradlew.bat", WRAPPER_JAR) if not p.is_file()]
    assert not missing, f"android_demo lacks {missing}: a clone would not build with ./gradlew"
    assert os.access(APP / "gradlew", os.X_OK), "android_demo/gradlew is not executable (git update-index --chmod=+x)"
    version = pinned_gradle()
    assert version in WRAPPER_SHA256, f"no known wrapper checksum for Gradle {version}; known: {sorted(WRAPPER_SHA256)}"
    digest = hashlib.sha256(WRAPPER_JAR.read_bytes()).hexdigest()
    assert digest == WRAPPER_SHA256[version], (
        f"{WRAPPER_JAR.name} sha256 {digest} is not Gradle {version}'s wrapper jar ({WRAPPER_SHA256[version]})"
    )
    assert "org.gradle.wrapper.GradleWrapperMain" in (APP / "gradlew").read_text()


def test_pinned_versions_lie_inside_the_documented_ranges() -> None:
    versions = tomllib.loads((APP / "gradle" / "libs.versions.toml").read_text())["versions"]
    gradle, agp, kotlin = version_tuple(pinned_gradle()), version_tuple(versions["agp"]), version_tuple(versions["kotlin"])
    # AGP 8.7 needs Gradle >= 8.9 (developer.android.com, AGP release notes' compatibility table).
    assert agp[:2] == (8, 7) and gradle >= (8, 9), f"AGP {agp} with Gradle {gradle}: AGP 8.7 needs Gradle >= 8.9"
    # KGP 2.1.20-2.1.21: Gradle 7.6.3-8.12.1, AGP 7.3.1-8.7.2 (kotlinlang.org, Configure a Gradle project).
    assert (2, 1, 20) <= kotlin <= (2, 1, 21), f"Kotlin {kotlin}: the ranges below are KGP 2.1.20-2.1.21's"
    assert (7, 6, 3) <= gradle <= (8, 12, 1), f"Gradle {gradle} is outside KGP 2.1.2x's documented 7.6.3-8.12.1"
    assert (7, 3, 1) <= agp <= (8, 7, 2), f"AGP {agp} is outside KGP 2.1.2x's documented 7.3.1-8.7.2"


def test_wrapper_fetches_unpacks_and_starts_the_pinned_distribution(tmp_path: Path) -> None:
    missing = missing_tools("javac", "jar", "java", "sh")
    if missing:
        unavailable(f"{', '.join(missing)} (JDK 17)", "apt-get install -y openjdk-17-jdk-headless")
    version = pinned_gradle()
    # A stand-in distribution: gradle-<v>/lib/gradle-launcher-<v>.jar whose GradleMain echoes its args.
    source = tmp_path / "src" / "org" / "gradle" / "launcher" / "GradleMain.java"
    source.parent.mkdir(parents=True)
    source.write_text(
        "package org.gradle.launcher;\npublic class GradleMain { public static void main(String[] a) {"
        ' System.out.println("stand-in gradle started: " + String.join(" ", a)); } }\n'
    )
    classes = tmp_path / "classes"
    subprocess.run(["javac", "--release", "8", "-nowarn", "-d", str(classes), str(source)], check=True, capture_output=True)
    launcher = tmp_path / f"gradle-launcher-{version}.jar"
    subprocess.run(["jar", "cf", str(launcher), "-C", str(classes), "."], check=True, capture_output=True)
    distribution = tmp_path / "served" / f"gradle-{version}-bin.zip"
    distribution.parent.mkdir()
    with zipfile.ZipFile(distribution, "w") as z:  # directory entries first, as Gradle's own zips have
        z.writestr(f"gradle-{version}/", "")
        z.writestr(f"gradle-{version}/lib/", "")
        z.write(launcher, f"gradle-{version}/lib/{launcher.name}")

    project = tmp_path / "project"
    (project / "gradle").mkdir(parents=True)
    shutil.copy2(APP / "gradlew", project / "gradlew")
    shutil.copytree(APP / "gradle" / "wrapper", project / "gradle" / "wrapper")
    properties = project / "gradle" / "wrapper" / "gradle-wrapper.properties"
    url = distribution.as_uri().replace(":", "\\:", 1)
    properties.write_text(re.sub(r"(?m)^distributionUrl=.*$", lambda _: f"distributionUrl={url}", properties.read_text()))

    env = {**os.environ, "GRADLE_USER_HOME": str(tmp_path / "gradle-home")}
    run = subprocess.run(
        ["sh", "gradlew", "--version"], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 0, f"gradlew exited {run.returncode}:\n{out}"
    assert f"gradle-{version}-bin.zip" in out and "stand-in gradle started: --version" in out, out
    dists = tmp_path / "gradle-home" / "wrapper" / "dists" / f"gradle-{version}-bin"
    unpacked = [p.name for p in dists.glob("*/*") if p.is_dir()]
    assert unpacked == [f"gradle-{version}"], f"unpacked into {dists}: {unpacked}"

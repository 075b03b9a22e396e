"""``python -m export`` as a user runs it: bad input is one clear line and exit code 2; flags reach the config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "USE_TF": "0", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "export", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--train", "nope.csv"], "data file nope.csv does not exist"),
        (["--set", "finetune.epochs=-1"], "finetune.epochs=-1.0 is invalid; allowed: > 0"),
        (["--set", "data.nosuch=1"], "unknown config key data.nosuch"),
        (
            ["--model", "no-such-org/no-such-model", "--train", "t.csv"],
            "'no-such-org/no-such-model' is not a local folder and not in the Hugging Face cache, and the hub is "
            "switched off (HF_HUB_OFFLINE",
        ),
        (["--model", "fold", "--train", "t.csv"], "model folder fold has no config.json"),
        (["--model", "./gone/model", "--train", "t.csv"], "model folder ./gone/model does not exist"),
        (["--train", "t.csv", "--out", "t.csv"], "output path t.csv is a file"),
        (["--on-gate-fail", "maybe"], "error: verify.on_gate_fail='maybe' is invalid; allowed: fail, skip"),
    ],
)
def test_bad_input_exits_2_with_one_clear_error(tmp_path: Path, args: list[str], needle: str) -> None:
    """One line on stderr, before torch is imported (so in well under a second: no torch warnings)."""
    (tmp_path / "t.csv").write_text("text,label\n" + "good,1\nbad,0\n" * 20)
    (tmp_path / "fold").mkdir()
    proc = run_cli("--out", "o", *args, cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert needle in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().count("\n") == 0, f"more than the error line:\n{proc.stderr[-2000:]}"
    assert not (tmp_path / "o").exists()


def test_input_errors_come_before_torch_is_imported(tmp_path: Path) -> None:
    code = (
        "import sys; from export.__main__ import main; rc = main(['--train', 'missing.csv']); "
        "print(rc, sorted(m for m in ('torch', 'transformers', 'onnxruntime') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["2", "[]"], (proc.stdout, proc.stderr[-2000:])


def test_an_offline_or_unreachable_hub_fails_a_hub_id_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from export import preflight
    from export.errors import ModelLoadError

    monkeypatch.setattr(preflight, "_cached", lambda repo_id: False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="'org/name' is not a local folder.*hub is switched off"):
        preflight.check_model_source("org/name", "model.name_or_path")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(preflight, "hub_unreachable", lambda: "huggingface.co:443: Name or service not known")
    with pytest.raises(ModelLoadError, match=r"hub cannot be reached \(huggingface.co:443: Name or service"):
        preflight.check_model_source("org/name", "model.name_or_path")
    monkeypatch.setattr(preflight, "_cached", lambda repo_id: True)
    preflight.check_model_source("org/name", "model.name_or_path")  # in the cache: fine offline


def test_the_hub_probe_is_skipped_behind_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    from export import preflight

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setattr(preflight.socket, "create_connection", lambda *a, **k: (_ for _ in ()).throw(OSError("x")))
    assert preflight.hub_unreachable() is None


def test_no_resume_flag_reaches_the_config() -> None:
    from export.__main__ import build_config, parse_args

    assert build_config(parse_args(["--no-resume"])).resume is False
    cfg = build_config(parse_args([]))
    assert cfg.resume is True and cfg.checkpoint_dir == Path("out.checkpoints")


DEPENDENCY_CHATTER = ("Warning", "W0000", "I0000", "INFO: Created TensorFlow Lite", "torchao", "TracerWarning")


@pytest.mark.slow
def test_the_console_shows_the_kit_and_the_log_gets_the_dependencies(
    tiny_bert_dir: Path, sst2_path: Path, tmp_path: Path
) -> None:
    """A whole (tiny) run: the console has the kit's stage lines, bars and table, no dependency
    warning; out/logs/run.log has what the dependencies printed, and the report links it."""
    args = [
        "--model", str(tiny_bert_dir), "--train", str(sst2_path), "--out", "out",
        "--set", "data.max_train_samples=200", "--set", "data.max_eval_samples=100", "--set", "data.max_length=32",
        "--set", "finetune.epochs=1", "--set", "distill.epochs=1", "--set", "verify.latency_samples=3",
        "--set", "verify.max_drop=50", "--set", "tflite.quantize=int8-dynamic", "--set", "finetune.refit=off",
    ]  # fmt: skip
    proc = run_cli(*args, cwd=tmp_path)
    console = proc.stdout + proc.stderr
    assert proc.returncode == 0, console[-3000:]
    lines = console.count("\n")
    assert lines < 100, f"{lines} console lines (limit 100):\n{console[-3000:]}"
    chatter = [line for line in console.splitlines() if any(c in line for c in DEPENDENCY_CHATTER)]
    assert not chatter, f"dependency output on the console: {chatter[:5]}"
    assert "stage verify: done" in proc.stderr and "PASSED: " in proc.stdout, console[-3000:]
    log = tmp_path / "out" / "logs" / "run.log"
    assert log.is_file() and not (tmp_path / "out.run.log").exists(), sorted(p.name for p in tmp_path.iterdir())
    text = log.read_text(encoding="utf-8")
    assert "stage verify: done" in text and any(c in text for c in DEPENDENCY_CHATTER), text[-2000:]
    assert "[logs/run.log](logs/run.log)" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")

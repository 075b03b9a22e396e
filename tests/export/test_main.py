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


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--train", "nope.csv"], "data file nope.csv does not exist"),
        (["--set", "finetune.epochs=-1"], "finetune.epochs=-1.0 is invalid; allowed: > 0"),
        (["--set", "data.nosuch=1"], "unknown config key data.nosuch"),
        (["--model", "no-such-org/no-such-model", "--train", "t.csv"], "cannot load model 'no-such-org/no-such-model'"),
        (["--model", "fold", "--train", "t.csv"], "model folder fold has no config.json"),
        (["--on-gate-fail", "maybe"], "error: verify.on_gate_fail='maybe' is invalid; allowed: fail, skip"),
    ],
)
def test_bad_input_exits_2_with_one_clear_error(tmp_path: Path, args: list[str], needle: str) -> None:
    (tmp_path / "t.csv").write_text("text,label\n" + "good,1\nbad,0\n" * 20)
    (tmp_path / "fold").mkdir()
    proc = run_cli(*args, "--out", "o", cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert needle in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "o").exists()


def test_no_resume_flag_reaches_the_config() -> None:
    from export.__main__ import build_config, parse_args

    assert build_config(parse_args(["--no-resume"])).resume is False
    cfg = build_config(parse_args([]))
    assert cfg.resume is True and cfg.checkpoint_dir == Path("out.checkpoints")

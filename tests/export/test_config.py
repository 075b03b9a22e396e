"""Configuration: defaults, TOML and ``--set`` overrides parsed; bad keys and values refused with
one clear error saying what was received and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.config import PipelineConfig, Refit, StudentKind, load_config
from export.errors import ConfigError
from quantize.modes import TfliteQuant
from tests.builders import REPO, write_file


def test_defaults_and_overrides(tmp_path: Path) -> None:
    toml = write_file(tmp_path / "c.toml", '[finetune]\nepochs = 3\n[distill]\nstudent = "same-arch"\n')
    cfg = load_config(toml, ["data.max_length=128", "tflite.quantize=fp16", "verify.max_drop=0.5"])
    assert cfg.finetune.epochs == 3.0 and cfg.distill.student is StudentKind.SAME_ARCH
    assert cfg.data.max_length == 128 and cfg.verify.max_drop == 0.5
    assert cfg.tflite.quantize == (TfliteQuant.FP16,)
    assert load_config() == PipelineConfig()


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("finetune.epoch=3", "unknown config key finetune.epoch"),
        ("nosuch.key=1", "unknown config key nosuch"),
        ("data.max_length=4", "data.max_length=4 is invalid; allowed: 8..512"),
        ("distill.student=tinybert", "allowed: distilbert, same-arch"),
        ("finetune.batch_size=big", "finetune.batch_size='big' is invalid"),
        ("tflite.quantize=fp32,fp16", "quantized precisions only, fp32 is always exported"),
        ("tflite.precisions=fp32,fp16", "tflite.precisions is now tflite.quantize"),
        ("data.seed=3", "data.seed is gone: a run has one seed, the top-level `seed`"),
        ("adapt.evals_per_epoch=2", "adapt.evals_per_epoch=2 is invalid; allowed: 1 (adaptation has no validation)"),
        ("distill.warmup_ratio=1.5", "distill.warmup_ratio=1.5 is invalid; allowed: [0, 1)"),
        ("data.encoding=klingon", "not a known codec"),
        ("vocab.min_count=0", "vocab.min_count=0 is invalid; allowed: an integer >= 1"),
        ("vocab.texts=words.csv", "vocab.texts='words.csv' is invalid; allowed: none (the training texts) or a UTF-8"),
        ("vocab.keep_characters=maybe", "vocab.keep_characters='maybe' is invalid; allowed: true or false"),
        ("distill.teacher_layers=2,1", "distill.teacher_layers=[2, 1] is invalid; allowed: a non-empty list"),
        ("distill.teacher_layers=-1,2", "distill.teacher_layers=[-1, 2] is invalid"),
        ("novalue", "section.key=value"),
    ],
)
def test_bad_config_is_refused(override: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=None) as e:
        load_config(None, [override])
    assert needle in str(e.value), str(e.value)


def test_bad_toml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write_file(tmp_path / "bad.toml", "[data\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.parametrize("path", sorted((REPO / "examples").glob("*.toml")), ids=str)
def test_every_example_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.out != Path("out") or path.name == "default.toml", f"{path.name} would write into the default ./out"


def test_a_config_extends_another_key_by_key(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    write_file(tmp_path / "base" / "root.toml", 'out = "out-root"\nseed = 7\n[finetune]\nepochs = 3\nbatch_size = 8\n')
    write_file(tmp_path / "base" / "mid.toml", 'extends = "root.toml"\nout = "out-mid"\n[finetune]\nepochs = 2\n')
    top = write_file(tmp_path / "top.toml", 'extends = "base/mid.toml"\n[distill]\nalpha = 0.9\n')
    cfg = load_config(top, ["distill.temperature=3"])
    got = (cfg.out, cfg.seed, cfg.finetune.epochs, cfg.finetune.batch_size, cfg.distill.alpha, cfg.distill.temperature)
    assert got == (Path("out-mid"), 7, 2.0, 8, 0.9, 3.0), got


def test_a_bad_extends_says_which_file_and_what_is_allowed(tmp_path: Path) -> None:
    write_file(tmp_path / "a.toml", 'extends = "b.toml"\n')
    write_file(tmp_path / "b.toml", 'extends = "a.toml"\n')
    loop = r"a\.toml: extends='b\.toml' makes a loop: .*b\.toml -> .*a\.toml -> .*b\.toml"
    with pytest.raises(ConfigError, match=loop):
        load_config(tmp_path / "b.toml")
    missing = r"config file .*nowhere\.toml does not exist \(named by extends in .*c\.toml\)"
    with pytest.raises(ConfigError, match=missing):
        load_config(write_file(tmp_path / "c.toml", 'extends = "nowhere.toml"\n'))
    with pytest.raises(ConfigError, match=r"extends=3 is invalid; allowed: the path of another config file"):
        load_config(write_file(tmp_path / "d.toml", "extends = 3\n"))


def test_teacher_layers_set_the_depth_and_must_agree_with_num_layers() -> None:
    cfg = load_config(None, ["distill.teacher_layers=0,1,2"])
    assert cfg.distill.teacher_layers == (0, 1, 2)
    with pytest.raises(ConfigError) as e:
        load_config(None, ["distill.teacher_layers=0,1,2", "distill.num_layers=2"])
    assert "distill.num_layers=2 is invalid; allowed: none or 3" in str(e.value), str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(None, ["distill.teacher_layers=0,1", "distill.student_model=some/model"])
    assert "none when distill.student_model is set" in str(e.value), str(e.value)


def test_refit_values_are_checked() -> None:
    assert load_config(None, ["finetune.refit=except-eval"]).finetune.refit is Refit.EXCEPT_EVAL
    assert load_config(None, []).finetune.refit is Refit.ALL
    with pytest.raises(ConfigError, match="finetune.refit='yes' is invalid; allowed: all, except-eval, off"):
        load_config(None, ["finetune.refit=yes"])


def test_bad_gate_action_or_thread_counts_in_the_config_say_what_is_allowed() -> None:
    with pytest.raises(ConfigError, match=r"verify.on_gate_fail='maybe' is invalid; allowed: fail, skip"):
        load_config(None, ["verify.on_gate_fail=maybe"])
    with pytest.raises(ConfigError, match=r"verify.latency_threads=\(1, 0\) is invalid; allowed: one or more"):
        load_config(None, ["verify.latency_threads=1,0"])
    assert load_config(None, ["verify.latency_threads=4,1"]).verify.latency_threads == (4, 1)

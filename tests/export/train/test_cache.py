"""The stage cache: finished stages are reused, interrupted ones resume, ``resume=false`` trains
again; the chosen epoch and the refit stages that train up to it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from export.data.dataset import load_data
from export.errors import ConfigError
from export.train.cache import (
    StageResult,
    fingerprint,
    refit_student_stage,
    refit_teacher_stage,
    student_stage,
    teacher_stage,
)
from tests.builders import tiny_cfg


class Interrupted(Exception):  # noqa: N818 - a simulated kill, not an error
    pass


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_stages_resume_after_an_interruption_and_reuse_finished_work(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import TrainerCallback

    import export.train.finetune as train_module

    class StopAfterFirstSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise Interrupted(f"stopped after saving step {state.global_step}")

    cfg = tiny_cfg(tiny_bert_dir, tmp_path)
    data = load_data(cfg.data)
    monkeypatch.setattr(train_module, "schedule_callbacks", lambda *_: [StopAfterFirstSave()])
    with pytest.raises(Interrupted):
        teacher_stage(cfg, data)
    monkeypatch.undo()
    stage_dirs = list(cfg.checkpoint_dir.glob("teacher-*"))
    assert len(stage_dirs) == 1 and not (stage_dirs[0] / "done.json").exists()
    saved = [p.name for p in (stage_dirs[0] / "checkpoints" / "teacher").glob("checkpoint-*")]
    assert saved, "the interrupted run left no checkpoint to resume from"

    resumed = teacher_stage(cfg, data)
    info = json.loads((resumed.model.path / "training.json").read_text())
    assert not resumed.reused and info["resumed_from"] == saved[0], info
    assert info["steps"] == 2 * int(np.ceil(len(data.train) / 8)), info
    assert not (stage_dirs[0] / "checkpoints").exists(), "optimizer states kept after the stage finished"

    again = teacher_stage(cfg, data)
    assert again.reused and again.fingerprint == resumed.fingerprint
    for k, v in resumed.model.model.state_dict().items():
        assert torch.equal(v, again.model.model.state_dict()[k]), f"reused teacher differs in {k}"
    student = student_stage(cfg, data, again)
    assert not student.reused and student_stage(cfg, data, again).reused

    other = tiny_cfg(tiny_bert_dir, tmp_path, "finetune.learning_rate=2e-3", data_file=tmp_path / "train.tsv")
    assert fingerprint("teacher", other.model, other.finetune) != fingerprint("teacher", cfg.model, cfg.finetune)
    fresh = tiny_cfg(tiny_bert_dir, tmp_path, "resume=false", data_file=tmp_path / "train.tsv")
    assert not teacher_stage(fresh, data).reused, "--no-resume reused a finished stage"


def _stage_with_history(tmp_path: Path, evaluations: list[dict], best: float | None) -> StageResult:
    class _Model:
        path = tmp_path

        @staticmethod
        def num_parameters() -> int:
            return 1

    info = {"best_validation_accuracy": best, "evaluations": evaluations}
    (tmp_path / "training.json").write_text(json.dumps(info), encoding="utf-8")
    return StageResult(_Model(), "key", 1.0, reused=False)  # type: ignore[arg-type]


def test_chosen_epoch_is_the_first_best_check(tmp_path: Path) -> None:
    checks = [
        {"step": 10, "epoch": 0.5, "accuracy": 0.80},
        {"step": 20, "epoch": 1.0, "accuracy": 0.85},
        {"step": 30, "epoch": 1.5, "accuracy": 0.85},
        {"step": 40, "epoch": 2.0, "accuracy": 0.84},
    ]
    assert _stage_with_history(tmp_path, checks, 0.85).chosen_epoch == 1.0
    assert _stage_with_history(tmp_path, [], None).chosen_epoch is None, "no checks: the whole schedule"


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_refit_stages_train_on_every_row_up_to_the_chosen_epoch(tiny_bert_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(tiny_bert_dir, tmp_path, "finetune.epochs=3", "distill.epochs=2")
    data = load_data(cfg.data)
    teacher = teacher_stage(cfg, data)
    student = student_stage(cfg, data, teacher)
    epoch = teacher.chosen_epoch
    assert epoch in (1.0, 2.0, 3.0), teacher.summary()
    refit = refit_teacher_stage(cfg, data, teacher)
    info = refit.summary()
    rows = len(data.refit_rows(include_eval=True))
    assert info["steps"] == round(epoch * np.ceil(rows / 8)), (info["steps"], epoch, rows)
    assert info["evaluations"] == [], "the refit validated on rows it trains on"
    before = teacher.model.model.state_dict()
    changed = [k for k, v in refit.model.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "the refit teacher is the selection teacher"
    refit_student = refit_student_stage(cfg, data, refit, student)
    s_epoch = student.chosen_epoch
    assert refit_student.summary()["steps"] == round(s_epoch * np.ceil(rows / 8)), (refit_student.summary(), s_epoch)
    assert refit_teacher_stage(cfg, data, teacher).reused, "a finished refit stage was trained again"
    assert teacher_stage(cfg, data).fingerprint == teacher.fingerprint
    other = tiny_cfg(
        tiny_bert_dir, tmp_path, "finetune.epochs=3", "finetune.refit=off", data_file=tmp_path / "train.tsv"
    )
    assert teacher_stage(other, data).reused, "finetune.refit must not change the selection run's fingerprint"
    with pytest.raises(ConfigError, match="finetune.refit = off"):
        refit_teacher_stage(other, data, teacher)


def test_a_later_config_field_left_unset_keeps_the_fingerprints_of_existing_caches() -> None:
    """``distill.teacher_layers`` came after stage caches existed: unset, a student's key is the
    one computed without the field; set, the key changes."""
    import dataclasses
    import hashlib

    from export.config import DistillConfig

    unset = DistillConfig()
    before = {k: v for k, v in dataclasses.asdict(unset).items() if k != "teacher_layers"}
    old_key = hashlib.sha256(json.dumps(["student", before], sort_keys=True, default=str).encode()).hexdigest()[:12]
    assert fingerprint("student", unset) == old_key, "an unset later field changed every existing cache key"
    chosen = DistillConfig(teacher_layers=(0, 1, 2))
    assert fingerprint("student", chosen) != old_key, "distill.teacher_layers does not reach the stage key"

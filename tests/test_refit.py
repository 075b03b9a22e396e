"""Refit (``finetune.refit``): after the selection run has chosen the schedule on validation, the
shipped teacher and student train again on more rows, up to the chosen epoch; the report says
which model each number measures."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from export.config import DataConfig, FinetuneConfig, Holdout, ModelConfig, Refit, load_config
from export.data.dataset import Dataset, load_data
from export.errors import ConfigError
from export.report.document import selection_section
from export.train.cache import StageResult, refit_student_stage, refit_teacher_stage, student_stage, teacher_stage
from export.train.finetune import finetune
from tests.helpers import phrase_corpus, tiny_cfg, write_tsv


def _spans(text: str) -> set[str]:
    w = text.split()
    return {" ".join(w[a:b]) for a in range(len(w)) for b in range(a + 1, len(w) + 1)}


def _phrase_data(tmp_path: Path, **kw: object) -> tuple[list[tuple[str, int]], Dataset]:
    rows = phrase_corpus(80)
    path = write_tsv(rows, tmp_path / "phrases.tsv")
    cfg = DataConfig(train=path, holdout=Holdout.SENTENCES, max_train_samples=None, max_eval_samples=None, **kw)
    return rows, load_data(cfg)


# -- which rows a refit trains on -----------------------------------------------------------------


def test_refit_on_all_rows_is_every_row_of_the_file(tmp_path: Path) -> None:
    rows, data = _phrase_data(tmp_path)
    refit = data.refit_rows(include_eval=True)
    assert sorted(zip(refit.texts, refit.labels.tolist(), strict=True)) == sorted(rows), (
        f"refit has {len(refit)} rows, the file {len(rows)}: not every labelled row, once each"
    )
    assert len(data.train) < len(refit), "the selection run should train on fewer rows than the refit"


def test_refit_except_eval_keeps_eval_and_its_phrases_unseen(tmp_path: Path) -> None:
    rows, data = _phrase_data(tmp_path)
    refit = data.refit_rows(include_eval=False)
    eval_spans = set().union(*(_spans(t) for t in data.eval.texts))
    val_spans = set().union(*(_spans(t) for t in data.validation.texts))
    # rows the selection run did not train on: validation and its phrases, never a piece of eval
    added = set(refit.texts) - set(data.train.texts)
    leaked = sorted(added & eval_spans)
    assert not leaked, f"{len(leaked)} refit rows are eval sentences or pieces only they hold, e.g. {leaked[:3]}"
    assert not set(data.eval.texts) & set(refit.texts)
    assert set(data.validation.texts) <= set(refit.texts), "validation sentences are not in the refit"
    # phrases that only occur inside validation sentences were dropped from training; the refit gets them back
    val_only = {t for t, _ in rows if t in val_spans and t not in eval_spans} - set(data.train.texts)
    assert val_only and val_only <= set(refit.texts), f"missing: {sorted(val_only - set(refit.texts))[:3]}"
    # and the only rows of the file left out are eval sentences and pieces of them
    missing = Counter(t for t, _ in rows) - Counter(refit.texts)
    assert set(missing) - eval_spans == set(), sorted(set(missing) - eval_spans)[:3]
    assert missing.total() > len(data.eval), (missing.total(), len(data.eval))


def test_refit_with_an_eval_file_never_trains_on_it_and_flags_overlap(tmp_path: Path) -> None:
    rows = phrase_corpus(80)
    train = write_tsv(rows, tmp_path / "train.tsv")
    outside = [("a fine story w_new", 1), ("the awful cast w_other", 0)]
    ev = write_tsv([*outside, rows[0]], tmp_path / "dev.tsv")  # rows[0] is also a training sentence
    data = load_data(DataConfig(train=train, eval=ev, holdout=Holdout.SENTENCES, max_train_samples=None))
    assert not data.eval_carved
    refit_all, refit_rest = data.refit_rows(include_eval=True), data.refit_rows(include_eval=False)
    assert refit_all.texts == refit_rest.texts and len(refit_all) == len(rows), (len(refit_all), len(rows))
    assert not {t for t, _ in outside} & set(refit_all.texts)
    assert any("1 of 3 texts of" in n and "not unseen-data accuracy" in n for n in data.notes), data.notes


def test_refit_with_random_holdout_and_a_subsample(tmp_path: Path) -> None:
    path = write_tsv(phrase_corpus(80), tmp_path / "train.tsv")
    data = load_data(DataConfig(train=path, max_train_samples=100, max_eval_samples=None))
    refit = data.refit_rows(include_eval=True)
    assert len(refit) == len(data.train) + len(data.validation) + len(data.eval) and len(data.train) == 100
    assert len(data.refit_rows(include_eval=False)) == 100 + len(data.validation)
    assert not set(data.eval.texts) - set(refit.texts)


# -- the chosen epoch and the replayed schedule ---------------------------------------------------


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


@pytest.mark.usefixtures("one_torch_thread")
def test_stop_at_epoch_replays_the_selection_schedule(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """Stopping at epoch 1 of 3 must leave the learning rate where the 3-epoch schedule has it
    (2/3 of the peak after warm-up ends), not decayed to 0 as a 1-epoch run would."""
    rows = phrase_corpus(20)
    path = write_tsv(rows, tmp_path / "t.tsv")
    data = load_data(DataConfig(train=path, max_train_samples=None, max_length=16)).for_refit(include_eval=True)
    cfg = FinetuneConfig(epochs=3, batch_size=10, learning_rate=1e-3, warmup_ratio=0.0)
    clf = finetune(ModelConfig(str(tiny_bert_dir)), data, cfg, tmp_path / "w", max_length=16, seed=0, stop_at_epoch=1)
    info = json.loads((clf.path / "training.json").read_text())
    per_epoch = int(np.ceil(len(data.train) / 10))
    assert info["steps"] == per_epoch, f"stopped after {info['steps']} steps, one epoch is {per_epoch}"
    assert info["evaluations"] == [] and info["best_validation_accuracy"] is None, info
    (checkpoint,) = (tmp_path / "w" / "checkpoints" / "teacher").glob("checkpoint-*")
    lr = torch.load(checkpoint / "scheduler.pt", weights_only=False)["_last_lr"][0]
    expected = 1e-3 * (3 * per_epoch - per_epoch) / (3 * per_epoch)
    assert abs(lr - expected) < 1e-9, f"learning rate at the stop {lr:.3g}, the 3-epoch schedule has {expected:.3g}"


# -- refit stages and the pipeline ----------------------------------------------------------------


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


def test_refit_values_are_checked() -> None:
    assert load_config(None, ["finetune.refit=except-eval"]).finetune.refit is Refit.EXCEPT_EVAL
    assert load_config(None, []).finetune.refit is Refit.ALL
    with pytest.raises(ConfigError, match="finetune.refit='yes' is invalid; allowed: all, except-eval, off"):
        load_config(None, ["finetune.refit=yes"])


def _selection(refit: str, trained_on: bool) -> dict:
    model = {"eval_accuracy": 0.8812, "best_validation_accuracy": 0.89, "chosen_epoch": 2.5, "train_rows": 52852}
    return {
        "refit": refit,
        "models": {"teacher": model, "student": model | {"eval_accuracy": 0.87}},
        "eval_rows": 861,
        "shipped_train_rows": 67349,
        "eval_trained_on": trained_on,
    }


def test_report_says_which_model_each_number_measures() -> None:
    md = "\n".join(selection_section(_selection("all", True), {"eval_carved": True}))
    assert "teacher **88.12%**" in md and "student **87.00%**" in md and "epoch 2.5" in md, md
    assert "refit on all 67349 rows" in md and "not unseen-data accuracy" in md, md
    md = "\n".join(selection_section(_selection("except-eval", False), {"eval_carved": True}))
    assert "kept out of the refit" in md and "not unseen" not in md, md
    md = "\n".join(selection_section(_selection("all", False), {"eval_carved": False}))
    assert "the eval file, never trained on" in md, md
    md = "\n".join(selection_section(_selection("off", False), {"eval_carved": True}))
    assert "finetune.refit = off" in md, md

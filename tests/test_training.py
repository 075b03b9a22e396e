"""Fine-tuning and distillation machinery: sentence-level held-out splits, augmentation, transfer
losses, the stage cache (reuse and resume), and a 2-process ``torchrun`` launch on CPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from export.classifier import load_pretrained
from export.config import DataConfig, DistillConfig, Holdout, load_config
from export.data.dataset import load_data
from export.data.holdout import carve_sentences, sentence_rows
from export.errors import ConfigError, DataError
from export.train.augment import augment_texts
from export.train.cache import fingerprint, student_stage, teacher_stage
from export.train.distill import distill
from export.train.losses import DistillationModel, attention_loss, hidden_loss, layer_map
from tests.helpers import phrase_corpus, tiny_cfg, write_tsv

ROOT = Path(__file__).resolve().parents[1]


def spans(text: str) -> set[str]:
    w = text.split()
    return {" ".join(w[a:b]) for a in range(len(w)) for b in range(a + 1, len(w) + 1)}


# -- sentence-level held-out split --------------------------------------------------------------


def test_sentence_rows_are_the_rows_no_other_row_contains() -> None:
    texts = ("a good film .", "good film", "a good film .", "dull", "the plot is dull", "plot")
    assert sentence_rows(texts) == [0, 4], "a sub-phrase or a repeat of another row counted as a sentence"


def test_held_out_sentences_leave_no_piece_of_themselves_in_training() -> None:
    rows = phrase_corpus(60)
    texts = tuple(t for t, _ in rows)
    train, (val, ev), dropped_rows = carve_sentences(texts, (0.2, 0.2), np.random.default_rng(0))
    dropped = len(dropped_rows)
    sentences = set(sentence_rows(texts))
    assert len(val) == len(ev) == 12 and {int(i) for i in (*val, *ev)} <= sentences
    held = {int(i) for i in (*val, *ev)}
    kept_spans = set().union(*(spans(texts[i]) for i in sentences - held))
    held_spans = set().union(*(spans(texts[i]) for i in held))
    leaks = [texts[i] for i in train if texts[i] in held_spans and texts[i] not in kept_spans]
    assert not leaks, f"training rows found only inside held-out sentences: {leaks[:5]}"
    # w{i} is unique to sentence i: no training row may carry a held-out sentence's marker
    markers = {texts[i].split()[-1] if texts[i].split()[-1].startswith("w") else "" for i in held} - {""}
    assert not {w for i in train for w in texts[i].split()} & markers
    assert dropped > 0 and len(train) + len(held) + dropped == len(texts), (len(train), len(held), dropped)


def test_load_data_sentence_holdout_on_a_phrase_file(tmp_path: Path) -> None:
    path = write_tsv(phrase_corpus(100), tmp_path / "phrases.tsv")
    cfg = DataConfig(train=path, holdout=Holdout.SENTENCES, max_train_samples=None, max_eval_samples=None)
    data = load_data(cfg)
    assert (len(data.validation), len(data.eval)) == (10, 10)
    train = set(data.train.texts)
    assert not train & set(data.eval.texts) and not train & set(data.validation.texts)
    assert any("whole sentences" in n for n in data.notes), data.notes
    again = load_data(cfg)
    assert again.eval.texts == data.eval.texts and again.train.texts == data.train.texts, "split is not seeded"


def test_sst2_sentence_holdout_is_unseen_full_sentences(sst2_path: Path) -> None:
    cfg = load_config(ROOT / "examples" / "sst2.toml", [f"data.train={sst2_path}"]).data
    data = load_data(cfg)
    assert (len(data.validation), len(data.eval)) == (689, 861), data.summary()
    train = set(data.train.texts)
    seen = [t for t in data.eval.texts if t in train]
    assert not seen, f"{len(seen)} eval sentences are also training rows, e.g. {seen[:2]}"
    mean_words = np.mean([len(t.split()) for t in data.eval.texts])
    assert mean_words > 15, f"eval rows average {mean_words:.1f} words: phrases, not full sentences"


# -- augmentation and transfer losses ----------------------------------------------------------


def test_augmentation_is_seeded_new_text() -> None:
    texts = [t for t, _ in phrase_corpus(50)][::5]  # the sentences: too short a phrase has few variants
    a, b = augment_texts(texts, 2, seed=3), augment_texts(texts, 2, seed=3)
    assert a == b, "augmentation is not reproducible for a seed"
    assert a != augment_texts(texts, 2, seed=4)
    assert 0.8 * 2 * len(texts) <= len(a) <= 2 * len(texts), len(a)
    assert not set(a) & set(texts) and len(set(a)) == len(a), "augmented texts repeat inputs or each other"
    assert augment_texts(texts, 0, seed=3) == []


def test_transfer_losses_mask_padding_and_match_layers() -> None:
    assert layer_map(6, 3) == [2, 4, 6] and layer_map(4, 4) == [1, 2, 3, 4] and layer_map(6, 1) == [6]
    torch.manual_seed(0)
    s, t = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    base = hidden_loss(s, t, mask)
    s2 = s.clone()
    s2[0, 3:] += 100.0  # padding positions of row 0
    assert torch.isclose(hidden_loss(s2, t, mask), base), "hidden loss reads padding positions"
    a = torch.softmax(torch.randn(2, 4, 5, 5), -1)
    b = torch.softmax(torch.randn(2, 4, 5, 5), -1)
    assert attention_loss(a, a, mask).abs() < 1e-6 < attention_loss(a, b, mask)
    assert attention_loss(a[:, :2], b, mask) > 0, "different head counts should be compared head-averaged"


@pytest.mark.usefixtures("one_torch_thread")
def test_projection_is_learned_when_the_student_is_narrower(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from transformers import BertConfig, BertForSequenceClassification

    teacher, tok = load_pretrained(str(tiny_bert_dir), ("0", "1"))  # hidden 32
    student = BertForSequenceClassification(
        BertConfig(
            vocab_size=tok.vocab_size,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=1,
            intermediate_size=24,
            num_labels=2,
        )
    )
    wrapped = DistillationModel(student, teacher, temperature=2.0, alpha=0.5, hidden_weight=1.0)
    assert isinstance(wrapped.proj, torch.nn.Linear) and tuple(wrapped.proj.weight.shape) == (32, 16)
    assert not any(n.startswith("teacher") for n, _ in wrapped.named_parameters()), "teacher would be trained"
    enc = tok(["a good film", "the plot is dull and long"], padding=True, return_tensors="pt")
    out = wrapped(**{k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}, labels=torch.tensor([1, 0]))
    out["loss"].backward()
    assert wrapped.proj.weight.grad is not None and wrapped.proj.weight.grad.abs().sum() > 0
    same = DistillationModel(student, teacher, temperature=2.0, alpha=0.5)
    assert same.proj is None, "no projection without hidden-state transfer"
    hard = DistillationModel(student, None, temperature=2.0, alpha=0.0)  # hard labels only: no teacher at all
    feeds = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    student.eval()  # no dropout: the two forward passes must match
    want = student(**feeds, labels=torch.tensor([1, 0])).loss
    assert torch.isclose(hard(**feeds, labels=torch.tensor([1, 0]))["loss"], want), "alpha=0 is not plain CE"


def phrase_data_and_teacher(tiny_bert_dir: Path, tmp_path: Path) -> tuple[Any, Any]:
    """Sentence-held-out phrase data and a tiny teacher fine-tuned on it."""
    data = load_data(
        DataConfig(
            train=write_tsv(phrase_corpus(40), tmp_path / "d.tsv"),
            holdout=Holdout.SENTENCES,
            max_train_samples=None,
            max_eval_samples=None,
        )
    )
    teacher = teacher_stage(tiny_cfg(tiny_bert_dir, tmp_path, data_file=tmp_path / "d.tsv"), data).model
    return data, teacher


@pytest.mark.usefixtures("one_torch_thread")
def test_distill_with_every_addition_trains_a_student(tiny_bert_dir: Path, tmp_path: Path) -> None:
    data, teacher = phrase_data_and_teacher(tiny_bert_dir, tmp_path)
    cfg = DistillConfig(
        num_layers=1, hidden_weight=1.0, attention_weight=1.0, augment=1, max_steps=3, batch_size=8, learning_rate=1e-3
    )
    before = teacher.model.config._attn_implementation
    student = distill(teacher, data, cfg, tmp_path / "s", max_length=16, seed=0)
    assert student.model_type == "distilbert" and student.model.config.num_hidden_layers == 1
    assert teacher.model.config._attn_implementation == before, "teacher's attention kernels not restored"
    info = json.loads((student.path / "training.json").read_text())
    assert info["steps"] == 3, info
    with pytest.raises(ConfigError, match="vocabulary"):
        other = tmp_path / "other-vocab"
        model, tok = load_pretrained(str(tiny_bert_dir), ("0", "1"))
        tok.add_tokens(["zzzunseen"])
        model.save_pretrained(other)
        tok.save_pretrained(other)
        distill(
            teacher,
            data,
            DistillConfig(student_model=str(other), hidden_weight=1.0, max_steps=1),
            tmp_path / "x",
            max_length=16,
            seed=0,
        )


def test_augmented_soft_labels_score_each_text_once(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Soft-label KD with augmentation: the teacher scores every text once (the augmented texts'
    logits are those it labelled them with) and each row keeps its own text's logits."""
    import export.train.distill as distill_module

    data, teacher = phrase_data_and_teacher(tiny_bert_dir, tmp_path)
    scored: list[str] = []
    seen: dict[str, np.ndarray] = {}
    real = distill_module.torch_logits

    def counting(clf, texts, max_length, **kw):
        out = real(clf, texts, max_length, **kw)
        scored.extend(texts)
        seen.update(zip(texts, out, strict=True))
        return out

    captured = {}
    real_split = distill_module.TokenizedSplit

    def capturing(split, tok, names, max_length, extra=None):
        if extra and len(split) > len(data.validation):
            captured["texts"], captured["logits"] = split.texts, extra["teacher_logits"]
        return real_split(split, tok, names, max_length, extra)

    monkeypatch.setattr(distill_module, "torch_logits", counting)
    monkeypatch.setattr(distill_module, "TokenizedSplit", capturing)
    cfg = DistillConfig(num_layers=1, alpha=0.5, augment=1, max_steps=1, batch_size=8)
    distill(teacher, data, cfg, tmp_path / "s", max_length=16, seed=0)
    n_aug = len(augment_texts(data.train.texts, 1, 0))
    expected = len(data.train) + n_aug + len(data.validation)
    assert len(scored) == expected, f"teacher scored {len(scored)} texts, expected {expected} (each once)"
    texts, logits = captured["texts"], captured["logits"]
    assert len(texts) == len(logits) == len(data.train) + n_aug
    worst = max(float(np.abs(logits[i] - seen[t]).max()) for i, t in enumerate(texts))
    assert worst == 0.0, f"a row carries another text's teacher logits: max |Δ| {worst}"


# -- the stage cache: reuse, resume, --no-resume ---------------------------------------------


class Interrupted(Exception):
    pass


@pytest.mark.usefixtures("one_torch_thread")
def test_stages_resume_after_an_interruption_and_reuse_finished_work(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import TrainerCallback

    import export.train.finetune as train_module

    class StopAfterFirstSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
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


def test_no_resume_flag_reaches_the_config() -> None:
    from export.__main__ import build_config, parse_args

    assert build_config(parse_args(["--no-resume"])).resume is False
    cfg = build_config(parse_args([]))
    assert cfg.resume is True and cfg.checkpoint_dir == Path("out.checkpoints")


# -- multi-process launch --------------------------------------------------------------------


def test_torchrun_two_cpu_processes_share_the_training(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """``torchrun --nproc_per_node 2 -m export``: data parallel on CPU (gloo), one output."""
    data_file = write_tsv(phrase_corpus(60), tmp_path / "train.tsv")
    out = tmp_path / "out"
    sets = [
        f"model.name_or_path={tiny_bert_dir}",
        f"data.train={data_file}",
        f"out={out}",
        "data.holdout=sentences",
        "data.max_train_samples=none",
        "data.max_length=16",
        "finetune.epochs=1",
        "finetune.batch_size=8",
        "distill.epochs=1",
        "distill.batch_size=8",
        "onnx.teacher=false",
        "onnx.quantize=",
        "tflite.enabled=false",
        "verify.max_drop=100",
        "verify.latency_samples=2",
        "verify.latency_threads=1",
    ]
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun is not installed beside this Python"
    cmd = [torchrun, "--nproc_per_node", "2", "-m", "export", *(a for s in sets for a in ("--set", s))]
    env = os.environ | {"OMP_NUM_THREADS": "1", "USE_TF": "0"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    # the shipped models are the refit (finetune.refit = all): one epoch, the only check, over every row
    n_rows = report["data"]["refit_rows"]
    for name in ("teacher", "student"):
        assert report["selection"]["models"][name]["chosen_epoch"] == 1.0, report["selection"]
        steps = json.loads((out / "models" / name / "training.json").read_text())["steps"]
        want = int(np.ceil(n_rows / (2 * 8)))
        assert steps == want, f"{name}: {steps} optimizer steps for {n_rows} rows, batch 8 × 2 processes (want {want})"


# -- domain adaptation -------------------------------------------------------------------------


@pytest.mark.usefixtures("one_torch_thread")
def test_adapt_continues_mlm_training_before_fine_tuning(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModel

    texts = tmp_path / "unlabelled.txt"
    texts.write_text("\n".join(t for t, _ in phrase_corpus(30, seed=5)) + "\n\n", encoding="utf-8")
    cfg = tiny_cfg(tiny_bert_dir, tmp_path, "adapt.enabled=true", f"adapt.texts={texts}", "adapt.epochs=2")
    data = load_data(cfg.data)
    teacher = teacher_stage(cfg, data)
    adapted = next(cfg.checkpoint_dir.glob("adapted-*"))
    assert (adapted / "done.json").is_file() and not (adapted / "checkpoints").exists()
    before = AutoModel.from_pretrained(tiny_bert_dir).state_dict()
    after = AutoModel.from_pretrained(adapted / "adapted").state_dict()
    moved = [k for k in before if "encoder" in k and not torch.equal(before[k], after[k])]
    assert moved, "MLM training changed no encoder weight"
    plain = teacher_stage(tiny_cfg(tiny_bert_dir, tmp_path, data_file=tmp_path / "train.tsv"), data)
    assert plain.fingerprint != teacher.fingerprint, "the adapted teacher shares the plain teacher's cache entry"
    assert teacher_stage(cfg, data).reused
    with pytest.raises(DataError, match="does not exist"):
        teacher_stage(tiny_cfg(tiny_bert_dir, tmp_path, "adapt.enabled=true", "adapt.texts=/nope.txt"), data)

"""The architecture table and the parity matrix: every architecture through every path.

Each cell of :data:`tests.builders.CELLS` is a test marked ``@parity(cell)`` and parametrized
over the tiny models; ONNX and TFLite cells live in their exporters' test modules.
``test_every_architecture_has_every_parity_test`` fails when an architecture in the table
has no tiny model, or a cell has no test.
"""

from __future__ import annotations

import copy
import importlib
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import export.architectures as architectures
from export.architectures import ARCHITECTURES, TokenizerKind, arch_for
from export.classifier import Classifier, torch_logits
from export.config import DistillConfig, FinetuneConfig, ModelConfig, OnnxConfig, StudentKind, TfliteConfig
from export.convert.bundle import make_bundle
from export.convert.onnx import to_onnx
from export.convert.tflite import to_tflite
from export.data.dataset import Dataset, Split
from export.errors import ConfigError, UnsupportedArchitectureError
from export.train.distill import build_student, distill
from export.train.finetune import finetune
from runtime import TextClassifier
from runtime.tokenizer import BundleTokenizer
from tests.builders import (
    CELLS,
    LABELS,
    NUM_LABELS,
    REPO,
    TEXTS,
    TINY_MODELS,
    assert_parity,
    parity,
    tokenized_classifier,
)

MAX_LENGTH = 16
# Reloading a saved checkpoint, or copying every layer, reproduces the computation exactly.
EXACT = 1e-5
BACKEND_MODEL = {TokenizerKind.WORDPIECE: "WordPiece", TokenizerKind.BPE: "BPE", TokenizerKind.UNIGRAM: "Unigram"}
assert len(LABELS) == NUM_LABELS


def missing_parity_tests(archs: list[str]) -> list[tuple[str, str]]:
    """(cell, architecture) pairs without a ``@parity`` test in any ``tests/**/test_*.py`` module."""
    covered: set[tuple[str, str]] = set()
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        if "@parity(" not in path.read_text(encoding="utf-8"):
            continue
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)  # tests.export.convert.test_onnx
        for fn in vars(importlib.import_module(module)).values():
            cell = getattr(fn, "__parity__", None)
            for mark in getattr(fn, "pytestmark", []) if cell else []:
                if mark.name == "parametrize" and mark.args[0] == "arch":
                    covered |= {(cell, a) for a in mark.args[1]}
    return sorted((c, a) for a in archs for c in CELLS if (c, a) not in covered)


def test_every_architecture_has_every_parity_test() -> None:
    missing = missing_parity_tests(sorted(ARCHITECTURES))
    assert not missing, f"Missing models: architectures in the table without a parity test, as (cell, arch): {missing}"


def test_a_new_table_entry_without_a_tiny_model_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(architectures.ARCHITECTURES, "deberta", arch_for("bert"))
    assert missing_parity_tests(sorted(ARCHITECTURES)) == [(c, "deberta") for c in sorted(CELLS)]


def test_unknown_architecture_lists_supported_ones() -> None:
    supported = "albert, bert, distilbert, electra, mobilebert, roberta"
    with pytest.raises(UnsupportedArchitectureError, match=f"'gpt2' is not supported; supported: {supported}"):
        arch_for("gpt2")


def test_table_covers_the_issue_architectures() -> None:
    # MiniLM checkpoints have model_type "bert".
    assert {"bert", "roberta", "distilbert", "albert", "mobilebert", "electra"} <= set(ARCHITECTURES)


def labelled(texts: list[str]) -> Split:
    labels = [2 if "good" in t else 0 if "bad" in t else 1 for t in texts]
    return Split(tuple(texts), np.asarray(labels, dtype=np.int64))


DATA = Dataset(
    train=labelled(TEXTS[:48]),
    validation=labelled(TEXTS[48:64]),
    eval=labelled(TEXTS[64:80]),
    label_names=LABELS,
    source="tests",
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Classifier]:
    """A tiny random classifier per architecture, saved with a tiny real tokenizer of its kind."""
    cache: dict[str, Classifier] = {}

    def get(arch: str) -> Classifier:
        if arch not in cache:
            clf = tokenized_classifier(arch, tmp_path_factory.mktemp(f"tiny-{arch}"), LABELS, name="teacher")
            model, tok = clf.model, clf.tokenizer
            assert model.config.pad_token_id == tok.pad_token_id, (model.config.pad_token_id, tok.pad_token_id)
            cache[arch] = clf
        return cache[arch]

    return get


def reload_logits(clf: Classifier, texts: list[str]) -> np.ndarray:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(clf.path).eval()
    return torch_logits(Classifier(clf.name, model, clf.tokenizer, clf.path, clf.arch, LABELS), texts, MAX_LENGTH)


@pytest.mark.parametrize("arch", sorted(TINY_MODELS))
def test_table_matches_model_and_tokenizer(tiny: Callable[[str], Classifier], arch: str) -> None:
    clf = tiny(arch)
    assert clf.input_names == arch_for(arch).inputs
    assert set(arch_for(arch).inputs) <= set(clf.tokenizer.model_input_names), clf.tokenizer.model_input_names
    assert type(clf.tokenizer.backend_tokenizer.model).__name__ == BACKEND_MODEL[arch_for(arch).tokenizer]


@pytest.mark.parametrize("arch", sorted(TINY_MODELS))
def test_runtime_tokenizer_equals_hf_fast_tokenizer(tiny: Callable[[str], Classifier], arch: str) -> None:
    hf = tiny(arch).tokenizer
    ours = BundleTokenizer(tiny(arch).path / "tokenizer.json", 32)
    assert ours.pad_id == hf.pad_token_id
    for pad_to, padding in ((None, True), (32, "max_length")):
        got = ours.encode(TEXTS, pad_to=pad_to)
        want = hf(TEXTS, truncation=True, max_length=32, padding=padding, return_tensors="np")
        for name in arch_for(arch).inputs:
            np.testing.assert_array_equal(getattr(got, name), want[name], err_msg=f"{arch} {name} pad_to={pad_to}")
    assert any(got.truncated) and not all(got.truncated)


@pytest.mark.slow
@parity("finetune")
@pytest.mark.usefixtures("one_torch_thread")
def test_finetune_trains_and_saves_a_reloadable_teacher(
    tiny: Callable[[str], Classifier], arch: str, tmp_path: Path
) -> None:
    base = tiny(arch)
    cfg = FinetuneConfig(max_steps=3, batch_size=8, learning_rate=1e-3)
    teacher = finetune(ModelConfig(str(base.path)), DATA, cfg, tmp_path, max_length=MAX_LENGTH, seed=0)
    assert teacher.model_type == arch and teacher.input_names == arch_for(arch).inputs
    before, after = base.model.state_dict(), teacher.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "fine-tuning changed no weight"
    texts = list(DATA.eval.texts)
    assert_parity(arch, "finetune", reload_logits(teacher, texts), torch_logits(teacher, texts, MAX_LENGTH), EXACT)


def student_kinds(arch: str) -> list[tuple[str, StudentKind]]:
    """(teacher architecture, student kind) pairs that produce a student of ``arch``."""
    return [(arch, StudentKind.SAME_ARCH)] + ([("bert", StudentKind.DISTILBERT)] if arch == "distilbert" else [])


@pytest.mark.slow
@parity("student")
def test_student_starts_from_the_teacher_layers(tiny: Callable[[str], Classifier], arch: str) -> None:
    ids = tiny(arch).tokenizer(list(TEXTS[:8]), padding=True, truncation=True, max_length=32, return_tensors="pt")
    for teacher_arch, kind in student_kinds(arch):
        teacher = tiny(teacher_arch).model
        depth = teacher.config.num_hidden_layers
        full = build_student(teacher, kind, depth).eval()
        assert full.config.model_type == arch
        with torch.no_grad():
            if kind is StudentKind.SAME_ARCH:
                feeds = {n: ids[n] for n in arch_for(arch).inputs}
                got, want = full(**feeds).logits, teacher(**feeds).logits
            else:  # DistilBERT's head (pre_classifier + ReLU) is not BERT's pooler: compare encoders
                got = full.distilbert(ids["input_ids"], ids["attention_mask"]).last_hidden_state
                want = teacher.bert(ids["input_ids"], ids["attention_mask"]).last_hidden_state
        assert_parity(arch, "student", got.numpy(), want.numpy(), EXACT)
        if kind is StudentKind.SAME_ARCH:
            assert_takes_every_other_layer(teacher)


def assert_takes_every_other_layer(tiny_teacher: torch.nn.Module) -> None:
    """A 2-layer student of a 4-layer teacher holds teacher layers 0 and 2 and every other weight.

    ALBERT shares one layer group across depth, so its student holds exactly the teacher's weights.
    """
    from transformers import AutoModelForSequenceClassification

    config = copy.deepcopy(tiny_teacher.config)
    config.num_hidden_layers = 4
    torch.manual_seed(1)
    teacher = AutoModelForSequenceClassification.from_config(config)
    student = build_student(teacher, StudentKind.SAME_ARCH, 2)
    assert student.config.num_hidden_layers == 2
    t = teacher.state_dict()
    source = {0: 0, 1: 2}
    for key, value in student.state_dict().items():
        src = re.sub(r"\.layer\.(\d+)\.", lambda m: f".layer.{source[int(m.group(1))]}.", key, count=1)
        assert torch.equal(value, t[src]), f"student weight {key} is not the teacher's {src}"
    chosen = build_student(teacher, StudentKind.SAME_ARCH, None, (1, 3))  # distill.teacher_layers
    if config.model_type != "albert":
        assert chosen.config.num_hidden_layers == 2
        for key, value in chosen.state_dict().items():
            src = re.sub(r"\.layer\.(\d+)\.", lambda m: f".layer.{(1, 3)[int(m.group(1))]}.", key, count=1)
            assert torch.equal(value, t[src]), f"teacher_layers=(1, 3): student weight {key} is not the teacher's {src}"
    with pytest.raises(ConfigError, match=r"teacher_layers=\[0, 4\] is invalid: the teacher has 4 layers"):
        build_student(teacher, StudentKind.SAME_ARCH, None, (0, 4))


@pytest.mark.slow
@parity("teacher")
@pytest.mark.usefixtures("one_torch_thread")
def test_distill_trains_a_student_from_this_teacher(
    tiny: Callable[[str], Classifier], arch: str, tmp_path: Path
) -> None:
    teacher = tiny(arch)
    kinds = [StudentKind.SAME_ARCH] + ([StudentKind.DISTILBERT] if arch == "bert" else [])
    for kind in kinds:
        cfg = DistillConfig(student=kind, num_layers=1, max_steps=2, batch_size=8, learning_rate=1e-3)
        student = distill(teacher, DATA, cfg, tmp_path / kind.value, max_length=MAX_LENGTH, seed=0)
        assert student.model_type == (arch if kind is StudentKind.SAME_ARCH else "distilbert")
        assert student.model.config.num_hidden_layers == 1
        init = build_student(teacher.model, kind, 1).state_dict()
        assert any(not torch.equal(init[k], v) for k, v in student.model.state_dict().items()), "student not trained"
        texts = list(DATA.eval.texts)
        assert_parity(arch, "teacher", reload_logits(student, texts), torch_logits(student, texts, MAX_LENGTH), EXACT)


@pytest.mark.slow
@parity("runtime")
def test_runtime_predicts_like_torch_from_sealed_bundles(
    tiny: Callable[[str], Classifier], arch: str, tmp_path: Path
) -> None:
    clf = tiny(arch)
    onnx_fp32 = to_onnx([clf], OnnxConfig(teacher=False, quantize=()), tmp_path / "artifacts")
    tflite_fp32 = to_tflite(clf, TfliteConfig(quantize=()), tmp_path / "artifacts", max_length=MAX_LENGTH)
    texts = list(TEXTS[:40])
    expected = torch_logits(clf, texts, MAX_LENGTH)
    for art, atol in ((onnx_fp32[0], clf.arch.onnx_atol), (tflite_fp32, clf.arch.tflite_atol)):
        bundle = tmp_path / "bundles" / art.name
        manifest = make_bundle(art, clf, bundle, MAX_LENGTH)
        assert manifest.model_type == arch and manifest.input_names == arch_for(arch).inputs
        runtime = TextClassifier.load(bundle)
        assert_parity(arch, "runtime", runtime.logits(texts), expected, atol)
        labels = [p.label for p in runtime.predict(texts)]
        assert labels == [LABELS[i] for i in expected.argmax(-1)]

"""Tiny builders shared by the tests: models, tokenizers, classifiers, bundles and texts, plus
``assert_close``, the parity matrix and :func:`require`. No tests here.

torch, transformers and the exporters are imported inside the builders that need them, so a
runtime test that imports this module stays free of them.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import random
import shutil
import string
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import numpy as np
import pytest

from export.preflight import transformers_major
from runtime.bundle import load_manifest, seal, write_manifest

REPO = Path(__file__).resolve().parents[1]
SEQ_LEN = 16
NUM_LABELS = 3
#: The labels of the tiny bundles and of the architecture table's tiny classifiers.
LABELS = ("negative", "neutral", "positive")


#: Extras that cannot be installed next to transformers 5: optimum-onnx 0.1.0 pins transformers
#: 4.57, and transformers 5 removed the TF model classes the TensorFlow converter uses.
TRANSFORMERS_4_ONLY = ("optimum", "tensorflow", "tf_keras")


def require(module: str, reason: str = "") -> ModuleType:
    """Imports an optional module, or skips the test without it; under CI a missing one fails.

    ``pytest.importorskip`` alone would let a broken install skip tests silently in CI. The one
    exception: under transformers 5 the :data:`TRANSFORMERS_4_ONLY` extras skip, saying why.
    """
    if module.split(".")[0] in TRANSFORMERS_4_ONLY and transformers_major() >= 5:
        reason = f"{module} needs transformers 4.57 (installed: 5.x); its extra pins it"
        return pytest.importorskip(module, reason=reason)
    if os.environ.get("CI"):
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            pytest.fail(f"CI is set but {module} cannot be imported ({exc}); pip install -e '.[dev]'")
    return pytest.importorskip(module, reason=reason or None)


def unavailable(what: str, fix: str) -> NoReturn:
    """A test's outside tool or file is missing: under CI the test fails, elsewhere it skips;
    ``what`` names what is missing, ``fix`` how to get it."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {what} is missing; {fix}")
    pytest.skip(f"{what} not found; {fix}")


def missing_tools(*tools: str) -> list[str]:
    """The command-line tools of ``tools`` not on PATH."""
    return [tool for tool in tools if shutil.which(tool) is None]


def assert_close(actual: object, expected: object, atol: float, what: str = "") -> float:
    """Asserts two arrays have the same shape and max |Δ| ≤ ``atol``; the message gives both.

    Returns:
        The max |Δ|.
    """
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    label = f"{what}: " if what else ""
    assert a.shape == b.shape, f"{label}shape {a.shape} != expected {b.shape}"
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    # NaN compares False, so a NaN anywhere fails too.
    assert diff <= atol, f"{label}max |Δ| = {diff:.3g} exceeds atol = {atol:.3g}"
    return diff


def assert_same_onnx_logits(reference: Path, rewritten: Path, what: str, atol: float = 1e-5) -> None:
    """Batch 4 of :func:`fixed_batch` with padding, then every row alone at its unpadded length:
    the ``rewritten`` ONNX graph gives the ``reference`` graph's logits within ``atol``."""
    from runtime.backends import OnnxBackend

    a, b = OnnxBackend(reference), OnnxBackend(rewritten)
    batch = fixed_batch()
    assert_close(b.run(batch), a.run(batch), atol, f"{what} batch 4")
    for row in range(len(batch["input_ids"])):
        n = int(batch["attention_mask"][row].sum())
        one = {k: v[row : row + 1, :n] for k, v in batch.items()}
        assert_close(b.run(one), a.run(one), atol, f"{what} row {row} alone ({n} tokens)")


# --- the parity matrix ---------------------------------------------------------------------

#: Every (architecture × path) cell that must have a parity test; see tests/export/test_architectures.py.
CELLS = (
    "finetune",
    "teacher",
    "student",
    "onnx-fp32",
    "onnx-int8",
    "onnx-dynamo-fp32",
    "tflite-fp32",
    "tflite-fp16",
    "tflite-int8",
    "tflite-tf-fp32",
    "tflite-tf-fp16",
    "tflite-tf-int8",
    "runtime",
)


def parity(cell: str) -> Callable[[Callable], Callable]:
    """Marks a test as the parity test of ``cell`` and parametrizes it over ``arch``.

    The completeness test reads ``__parity__`` and the ``arch`` parametrization, so an
    architecture in the table without a tiny model (or a cell without a test) fails it.
    """
    if cell not in CELLS:
        raise ValueError(f"unknown parity cell {cell!r}; known: {CELLS}")

    def mark(fn: Callable) -> Callable:
        fn.__parity__ = cell  # type: ignore[attr-defined]
        return pytest.mark.parametrize("arch", sorted(TINY_MODELS))(fn)

    return mark


def assert_parity(arch: str, cell: str, actual: object, expected: object, atol: float) -> float:
    """:func:`assert_close` for one cell of the matrix; records the max |Δ| (see :func:`record_parity`)."""
    delta = assert_close(actual, expected, atol, f"{arch} {cell}")
    record_parity(arch, cell, delta)
    return delta


def record_parity(arch: str, cell: str, delta: float) -> None:
    """Appends a measured max |Δ| to ``$PARITY_LOG`` (JSON lines) when it is set, for the matrix table."""
    path = os.environ.get("PARITY_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"arch": arch, "cell": cell, "max_abs_delta": delta}) + "\n")


# --- tiny random models --------------------------------------------------------------------

# initializer_range=0.2 (not the default 0.02) gives O(1) logits with separated
# labels, so parity and label agreement test something; at 0.02 logits are ~1e-2
# (MobileBERT's round to 0.0) and every comparison passes trivially.
INIT = 0.2
VOCAB_SIZE = 128
COMMON = dict(num_labels=NUM_LABELS, initializer_range=INIT, max_position_embeddings=64)
BERT_LIKE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)


def _bert(v: int, **config: Any) -> Any:
    from transformers import BertConfig, BertForSequenceClassification

    return BertForSequenceClassification(BertConfig(vocab_size=v, **{**BERT_LIKE, **COMMON, **config}))


def _roberta(v: int, **config: Any) -> Any:
    from transformers import RobertaConfig, RobertaForSequenceClassification

    # pad_token_id=1 and one segment, as in roberta-base; positions start at pad + 1.
    return RobertaForSequenceClassification(
        RobertaConfig(vocab_size=v, type_vocab_size=1, pad_token_id=1, **{**BERT_LIKE, **COMMON, **config})
    )


def _distilbert(v: int, **config: Any) -> Any:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    return DistilBertForSequenceClassification(
        DistilBertConfig(vocab_size=v, dim=32, n_layers=2, n_heads=2, hidden_dim=37, **{**COMMON, **config})
    )


def _albert(v: int, **config: Any) -> Any:
    from transformers import AlbertConfig, AlbertForSequenceClassification

    # embedding_size < hidden_size exercises the factorised embedding projection.
    return AlbertForSequenceClassification(
        AlbertConfig(vocab_size=v, embedding_size=16, **{**BERT_LIKE, **COMMON, **config})
    )


def _mobilebert(v: int, **config: Any) -> Any:
    from transformers import MobileBertConfig, MobileBertForSequenceClassification

    return MobileBertForSequenceClassification(
        MobileBertConfig(
            vocab_size=v,
            hidden_size=32,
            embedding_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
            intra_bottleneck_size=16,
            true_hidden_size=16,
            num_feedforward_networks=1,
            **{**COMMON, **config},
        )
    )


def _electra(v: int, **config: Any) -> Any:
    from transformers import ElectraConfig, ElectraForSequenceClassification

    return ElectraForSequenceClassification(
        ElectraConfig(vocab_size=v, embedding_size=16, **{**BERT_LIKE, **COMMON, **config})
    )


#: model_type -> builder of a tiny random classifier, given the vocabulary size (and config overrides).
TINY_MODELS: dict[str, Callable[..., Any]] = {
    "bert": _bert,
    "roberta": _roberta,
    "distilbert": _distilbert,
    "albert": _albert,
    "mobilebert": _mobilebert,
    "electra": _electra,
}


def tiny_model(name: str, vocab_size: int = VOCAB_SIZE, seed: int = 0, **config: Any) -> Any:
    """A tiny random classifier (hidden 32, 2 layers, 3 labels) in eval mode, seeded.

    ``config`` overrides fields of the model's config (``max_position_embeddings=128``,
    ``attn_implementation="eager"``).
    """
    import torch

    torch.manual_seed(seed)
    return TINY_MODELS[name](vocab_size, **config).eval()


def fixed_batch(extra_rows: int = 0) -> dict[str, np.ndarray]:
    """4 rows of random ids; rows 1-3 end in 3, 7 and 12 padding positions.

    ``extra_rows`` appends more random rows (random padding), for label checks that need
    more rows with a clear top-1 margin than 4.
    """
    rng = np.random.default_rng(3)  # seed picked so every top-2 margin > 0.05
    input_ids = rng.integers(1, VOCAB_SIZE, size=(4, SEQ_LEN), dtype=np.int64)
    pads = [0, 3, 7, 12]
    if extra_rows:
        more = np.random.default_rng(4)
        input_ids = np.concatenate([input_ids, more.integers(1, VOCAB_SIZE, size=(extra_rows, SEQ_LEN))])
        pads += [int(p) for p in more.integers(0, SEQ_LEN - 2, size=extra_rows)]
    rows = len(pads)
    attention_mask = np.ones((rows, SEQ_LEN), dtype=np.int64)
    for row, pad in enumerate(pads):
        if pad:
            attention_mask[row, -pad:] = 0
    input_ids[attention_mask == 0] = 0  # pad_token_id
    token_type_ids = np.zeros((rows, SEQ_LEN), dtype=np.int64)
    token_type_ids[:, SEQ_LEN // 2 :] = 1
    token_type_ids[attention_mask == 0] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def model_logits(model: Any, batch: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """PyTorch logits of a batch (default :func:`fixed_batch`), feeding the inputs the model takes."""
    import torch

    from export.architectures import model_input_names

    batch = fixed_batch() if batch is None else batch
    with torch.no_grad():
        return model(**{n: torch.from_numpy(batch[n]) for n in model_input_names(model)}).logits.numpy()


# Measured max |Δ| fp32 TFLite vs PyTorch is ~1e-7 on O(1) logits for every architecture;
# 1e-4 is tighter than the registry's tflite_atol on purpose.
TFLITE_FP32_ATOL = 1e-4
# fp16 weights carry ~5e-4 relative error; logits here are O(1).
TFLITE_FP16_ATOL = 1e-2


def tflite_logits(path: Path, batch: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Runs the batch (default :func:`fixed_batch`) row by row (the graph has batch 1) through one interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path), num_threads=1).get_signature_runner()
    details = runner.get_input_details()
    batch = fixed_batch() if batch is None else batch
    rows = [
        runner(**{n: batch[n][i : i + 1].astype(d["dtype"]) for n, d in details.items()})["output_0"]
        for i in range(len(batch["input_ids"]))
    ]
    return np.concatenate(rows)


def assert_dynamic_axes(graph: Any) -> None:
    """Every input of an ONNX graph is [batch, sequence] with both axes symbolic; logits are [batch, labels]."""
    for i in graph.graph.input:
        dims = i.type.tensor_type.shape.dim
        assert len(dims) == 2 and all(d.dim_param and not d.dim_value for d in dims), (i.name, dims)
    (out,) = graph.graph.output
    assert out.name == "logits" and out.type.tensor_type.shape.dim[0].dim_param, out


def tiny_classifier(
    arch: str,
    path: Path,
    labels: tuple[str, ...],
    *,
    tokenizer: Any = None,
    vocab_size: int = VOCAB_SIZE,
    save: bool = False,
) -> Any:
    """A :class:`export.classifier.Classifier` named ``student`` around :func:`tiny_model`.

    ``save`` writes the model to ``path`` (what the ONNX exporter reads); else ``path`` is only recorded.
    """
    from export.architectures import arch_for
    from export.classifier import Classifier

    model = tiny_model(arch, vocab_size=vocab_size)
    if save:
        model.save_pretrained(path)
    return Classifier("student", model, tokenizer, path, arch_for(arch), labels)


def tokenized_classifier(arch: str, directory: Path, labels: tuple[str, ...], name: str = "student") -> Any:
    """:func:`tiny_model` sized to a :func:`tiny_tokenizer` of its kind, both saved in ``directory``."""
    from export.classifier import save_classifier

    tok = tiny_tokenizer(arch, directory)
    return save_classifier(name, tiny_model(arch, vocab_size=len(tok)), tok, directory, labels)


# --- texts and data files ------------------------------------------------------------------

_BASE_TEXTS = [
    "a good movie",
    "The plot is BAD, and the acting was not very good.",
    "Café, naïve, résumé, Ångström, façade, jalapeño.",
    "Straße Größe Übermut ÇA VA? ÉTÉ",
    "中文测试 日本語のテキスト 한국어 문장",
    "mixed 中文 and english 日本 words",
    "emoji 😀😃 in the middle 🎉 and at the end 👍🏽",
    "family emoji 👨‍👩‍👧‍👦 and flags 🇫🇷🇯🇵",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "pneumonoultramicroscopicsilicovolcanoconiosis is a long word",
    "numbers 12345 3.14159 1,000,000 and 2024-01-01",
    "punctuation!!! ??? ... --- ;;; ::: ((())) \"quoted\" 'single'",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\nmixed",
    "URL https://example.com/path?q=1&x=2 and e-mail a.b@example.org",
    "#hashtag @mention $dollar %percent ^caret &amp *star",
    "can't won't shouldn't it's they're",
    "x",
    "Zero\u200bwidth\u00a0nbsp and combining e\u0301 accents",
    "ﬁ ligature and fullwidth ＡＢＣ １２３",
    "Ελληνικά και русский текст",
    "العربية עברית हिन्दी ไทย",
]
_MIX_WORDS = "the movie good bad great plot not very and of film acting café 中 😀 wonderful terrible ok".split()


def _sentences() -> list[str]:
    """~200 texts: the hand-written ones plus seeded random mixes, some long enough to truncate."""
    rng = random.Random(0)
    out = list(_BASE_TEXTS)
    while len(out) < 200:
        n = rng.choice([1, 3, 8, 20, 60, 150])
        words = [rng.choice(_MIX_WORDS + _BASE_TEXTS[:6]) for _ in range(n)]
        out.append(" ".join(words))
    return out


#: 200 varied texts (scripts, emoji, punctuation, long rows) for tokenizers and parity checks.
TEXTS = _sentences()

# SST-2-like phrase data and a tiny pipeline config for the training tests.
POS, NEG = ("good", "great", "lovely", "fine"), ("bad", "awful", "dull", "poor")
FILL = ("movie", "plot", "the", "a", "film", "acting", "was", "is", "story", "cast")


def phrase_corpus(n_sentences: int, seed: int = 0) -> list[tuple[str, int]]:
    """SST-2-like rows: each sentence followed by some of its contiguous sub-phrases, same label."""
    r = random.Random(seed)
    rows = []
    for i in range(n_sentences):
        label = i % 2
        words = [r.choice(FILL) for _ in range(r.randint(4, 9))] + [f"w{i}"]  # w{i}: unique to sentence i
        words.insert(r.randint(0, len(words)), r.choice(POS if label else NEG))
        rows.append((" ".join(words), label))
        for _ in range(4):
            a = r.randint(0, len(words) - 2)
            b = r.randint(a + 1, len(words) - 1)
            rows.append((" ".join(words[a:b]), label))
    return rows


def spans(text: str) -> set[str]:
    """Every contiguous run of words of ``text`` (the phrases SST-2 cuts a sentence into)."""
    w = text.split()
    return {" ".join(w[a:b]) for a in range(len(w)) for b in range(a + 1, len(w) + 1)}


def write_file(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Writes ``text`` in ``encoding`` (bytes, so no newline translation) and returns ``path``."""
    path.write_bytes(text.encode(encoding))
    return path


def write_tsv(rows: list[tuple[str, int]], path: Path) -> Path:
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows), encoding="utf-8")
    return path


def tiny_cfg(model_dir: Path, tmp_path: Path, *extra: str, data_file: Path | None = None) -> Any:
    """A pipeline config for training a tiny model on :func:`phrase_corpus` rows, in seconds."""
    from export.config import load_config

    data_file = data_file or write_tsv(phrase_corpus(60), tmp_path / "train.tsv")
    return load_config(
        None,
        [
            f"model.name_or_path={model_dir}",
            f"data.train={data_file}",
            f"out={tmp_path / 'out'}",
            "data.holdout=sentences",
            "data.max_train_samples=none",
            "data.max_length=16",
            "finetune.epochs=2",
            "finetune.batch_size=8",
            "finetune.learning_rate=1e-3",
            "distill.epochs=1",
            "distill.batch_size=8",
            *extra,
        ],
    )


# --- tokenizers ----------------------------------------------------------------------------
# Tiny real tokenizers of each kind in the architecture table, trained on TEXTS. Each is built
# through the architecture's own ``*TokenizerFast`` class from the files a real checkpoint ships
# (vocab.txt; vocab.json + merges.txt; spiece.model), so the ``tokenizer.json`` it saves is what
# Hugging Face's converters make of them.

_BPE_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # roberta-base's ids 0-4


def tiny_tokenizer(model_type: str, directory: Path) -> Any:
    """Trains a tokenizer of ``model_type``'s kind, saves it in ``directory`` and returns it.

    The vocabulary holds 250-400 tokens; size the model with ``len(tokenizer)``.
    """
    from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING_NAMES, tokenizer_class_from_name

    from export.architectures import TokenizerKind, arch_for

    names = TOKENIZER_MAPPING_NAMES[model_type]  # 4.x: (slow, fast) names; 5.x: one (fast) name
    cls = tokenizer_class_from_name(names[1] if isinstance(names, tuple) else names)
    directory.mkdir(parents=True, exist_ok=True)
    kind = arch_for(model_type).tokenizer
    # The vocabulary files go into ``directory`` and the class reads them from there, as a user's
    # model folder is read (transformers 4.x and 5.x take different constructor arguments).
    if kind is TokenizerKind.WORDPIECE:
        _wordpiece_vocab(directory)
        tok = cls.from_pretrained(directory, do_lower_case=True)
    elif kind is TokenizerKind.BPE:
        _bpe_files(directory)
        tok = cls.from_pretrained(directory)
    else:
        _sentencepiece_model(directory)
        tok = cls.from_pretrained(directory)
    tok.save_pretrained(directory)
    return tok


def _wordpiece_vocab(directory: Path) -> Path:
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(lowercase=True)
    tok.train_from_iterator(TEXTS, vocab_size=300, show_progress=False)
    return Path(tok.save_model(str(directory))[0])


def _bpe_files(directory: Path) -> tuple[Path, Path]:
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(TEXTS, vocab_size=400, special_tokens=_BPE_SPECIALS, show_progress=False)
    vocab, merges = tok.save_model(str(directory))
    return Path(vocab), Path(merges)


def _sentencepiece_model(directory: Path) -> Path:
    import sentencepiece as spm

    prefix = directory / "spiece"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXTS),
        model_prefix=str(prefix),
        model_type="unigram",
        vocab_size=300,
        hard_vocab_limit=False,  # the corpus is small; take what it yields
        character_coverage=1.0,
        # albert-base-v2's layout: <pad>=0, <unk>=1, [CLS]=2, [SEP]=3, [MASK]=4.
        pad_id=0,
        unk_id=1,
        bos_id=2,
        eos_id=3,
        pad_piece="<pad>",
        unk_piece="<unk>",
        bos_piece="[CLS]",
        eos_piece="[SEP]",
        user_defined_symbols=["[MASK]"],
        minloglevel=2,
    )
    return prefix.with_suffix(".model")


# Letters and ##letters make every ASCII word decomposable, so WordPiece exercises real
# sub-word splits instead of mapping most words to [UNK].
_WORDS = "the a an is was movie film good bad great plot ok not very and of to it".split()
_SUFFIXES = ["##ing", "##ed", "##s", "##ly", "##er"]
_CJK = list("中文日本語")
#: The hand-written WordPiece vocabulary of :func:`write_bert_tokenizer`.
VOCAB = list(
    dict.fromkeys(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        + list(string.ascii_lowercase)
        + [f"##{c}" for c in string.ascii_lowercase]
        + list(string.digits)
        + list(".,!?'-:;()\"")
        + _WORDS
        + _SUFFIXES
        + _CJK
    )
)


def write_bert_tokenizer(directory: Path) -> Any:
    """Writes a lowercase WordPiece tokenizer.json (via BertTokenizerFast) and returns the HF tokenizer."""
    from transformers import AutoTokenizer, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True).save_pretrained(directory)
    return AutoTokenizer.from_pretrained(directory, use_fast=True)


def write_roberta_tokenizer(path: Path) -> Any:
    """Trains a byte-level BPE with RoBERTa's ``<s> … </s>`` post-processor on TEXTS, saves it as
    the ``tokenizer.json`` at ``path`` and returns the HF fast tokenizer reading it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(TEXTS, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tok.save(str(path))
    return PreTrainedTokenizerFast(
        tokenizer_file=str(path), bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


# --- tiny real bundles for the runtime -----------------------------------------------------

GOLDEN_TEXTS = ("a good movie", "the plot is bad", "café 中文 😀 ok")


@dataclass(frozen=True)
class TinyBundle:
    """A sealed bundle plus the torch model and HF tokenizer it was made from."""

    path: Path
    model: Any  # transformers PreTrainedModel
    hf_tokenizer: Any  # transformers PreTrainedTokenizerFast
    max_length: int

    def torch_logits(self, texts: list[str], input_names: tuple[str, ...], pad_to: int | None = None) -> np.ndarray:
        """Reference logits from the torch model, tokenized by the HF tokenizer."""
        import torch

        padding = "max_length" if pad_to else True
        enc = self.hf_tokenizer(
            texts, truncation=True, max_length=pad_to or self.max_length, padding=padding, return_tensors="pt"
        )
        with torch.no_grad():
            return self.model(**{k: enc[k] for k in input_names}).logits.numpy()


def bundle_model(model_type: str, vocab_size: int, seed: int = 0) -> Any:
    """:func:`tiny_model` for the runtime bundles: 128 positions, eager attention.

    Eager attention is plain matmuls, which trace cleanly to ONNX and TFLite.
    """
    return tiny_model(model_type, vocab_size, seed, max_position_embeddings=128, attn_implementation="eager")


def logits_module(model: Any, input_names: tuple[str, ...]) -> Any:
    """Wraps an HF model so ``forward`` takes ``input_names`` positionally and returns logits."""
    import torch

    class PositionalLogits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: Any) -> Any:
            return self.model(**dict(zip(input_names, args, strict=True))).logits

    return PositionalLogits().eval()


def bert_keyword_module(model: Any) -> Any:
    """Wraps an HF BERT so ``forward`` has named parameters (litert-torch binds ``sample_kwargs`` by name)."""
    import torch

    class KeywordLogits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    return KeywordLogits().eval()


def golden(model: Any, hf_tokenizer: Any, max_length: int, input_names: tuple[str, ...]) -> list[dict]:
    """Golden examples computed by torch, one text at a time, unpadded ids."""
    import torch

    out = []
    for text in GOLDEN_TEXTS:
        enc = hf_tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
        with torch.no_grad():
            logits = model(**{k: enc[k] for k in input_names}).logits[0].numpy()
        out.append(
            {
                "text": text,
                "input_ids": enc["input_ids"][0].tolist(),
                "logits": [float(x) for x in logits],
                "label": LABELS[int(np.argmax(logits))],
            }
        )
    return out


def build_onnx_bundle(directory: Path, model_type: str = "bert", max_length: int = 32) -> TinyBundle:
    """Exports a tiny model to ONNX with dynamic axes and seals it as a bundle.

    The BERT graph's inputs are declared in a scrambled order (attention_mask first), so
    only by-name binding gives the right logits.
    """
    import torch

    hf_tokenizer = write_bert_tokenizer(directory)
    (directory / "vocab.txt").unlink()  # the bundle needs only tokenizer.json
    model = bundle_model(model_type, len(VOCAB))
    names = (
        ("attention_mask", "input_ids", "token_type_ids") if model_type == "bert" else ("input_ids", "attention_mask")
    )
    sample = hf_tokenizer(["a good movie"], return_tensors="pt")
    axes = {n: {0: "batch", 1: "seq"} for n in names}
    with warnings.catch_warnings():  # DistilBERT's mask constant: harmless TracerWarning
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            logits_module(model, names),
            tuple(sample[n] for n in names),
            str(directory / "model.onnx"),
            input_names=list(names),
            output_names=["logits"],
            dynamic_axes={**axes, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    manifest_inputs = tuple(n for n in ("input_ids", "attention_mask", "token_type_ids") if n in names)
    seal(
        directory,
        name=f"tiny-{model_type}-onnx",
        model_type=model_type,
        backend="onnx",
        precision="fp32",
        model_file="model.onnx",
        input_names=manifest_inputs,
        max_length=max_length,
        fixed_length=None,
        labels=LABELS,
        lowercase=True,
        tokenizer_file="tokenizer.json",
        opset=17,
        golden=golden(model, hf_tokenizer, max_length, manifest_inputs),
        created_by="tests",
    )
    return TinyBundle(directory, model, hf_tokenizer, max_length)


def build_tflite_bundle(directory: Path, seq: int = 16) -> TinyBundle:
    """Converts a tiny BERT with litert-torch (batch 1, fixed ``seq``) and seals it."""
    import litert_torch
    import torch

    hf_tokenizer = write_bert_tokenizer(directory)
    (directory / "vocab.txt").unlink()
    model = bundle_model("bert", len(VOCAB))
    names = ("input_ids", "attention_mask", "token_type_ids")
    sample = {n: torch.zeros((1, seq), dtype=torch.int64) for n in names}
    sample["input_ids"][0, :3] = torch.tensor([2, 7, 3])
    sample["attention_mask"][0, :3] = 1
    litert_torch.convert(bert_keyword_module(model), sample_kwargs=sample).export(str(directory / "model.tflite"))
    seal(
        directory,
        name="tiny-bert-tflite",
        model_type="bert",
        backend="tflite",
        precision="fp32",
        model_file="model.tflite",
        input_names=names,
        max_length=seq,
        fixed_length=seq,
        labels=LABELS,
        lowercase=True,
        tokenizer_file="tokenizer.json",
        golden=golden(model, hf_tokenizer, seq, names),
        created_by="tests",
    )
    return TinyBundle(directory, model, hf_tokenizer, seq)


_SHARED: dict[tuple[Path, str], TinyBundle] = {}


def shared_bundle(tmp_path_factory: Any, kind: str) -> TinyBundle:
    """Builds each kind of bundle once per test session (``tmp_path_factory`` is session-wide).

    Tests must not modify the returned bundle; copy it (:func:`copy_bundle`) first.

    Args:
        tmp_path_factory: pytest's session ``tmp_path_factory``.
        kind: ``"bert"`` or ``"distilbert"`` (ONNX) or ``"tflite"``.
    """
    key = (tmp_path_factory.getbasetemp(), kind)
    if key not in _SHARED:
        directory = tmp_path_factory.mktemp(f"bundle-{kind}")
        _SHARED[key] = build_tflite_bundle(directory) if kind == "tflite" else build_onnx_bundle(directory, kind)
    return _SHARED[key]


def copy_bundle(bundle: TinyBundle, directory: Path) -> Path:
    """Copies a bundle directory so a test may modify it."""
    return Path(shutil.copytree(bundle.path, directory))


def reseal(directory: Path, **changes: Any) -> None:
    """Rewrites a bundle's manifest with some fields changed (file hashes unchanged)."""
    write_manifest(directory, dataclasses.replace(load_manifest(directory), **changes))


def seal_again(bundle: Path, **changes: Any) -> None:
    """Seals a bundle again after its files changed: every file hashed anew, manifest fields kept
    unless ``changes`` say otherwise, so only verification can tell."""
    fields = {k: v for k, v in vars(load_manifest(bundle, verify_files=False)).items() if k != "files"}
    seal(bundle, **(fields | changes))


# --- child interpreters --------------------------------------------------------------------


def run_python(code: str, *args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Runs Python code (or ``-m module`` when ``code`` is empty) in a fresh interpreter at the repo root."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONIOENCODING": "utf-8"}
    argv = [sys.executable, *(["-c", textwrap.dedent(code)] if code else []), *args]
    return subprocess.run(argv, cwd=REPO, env=env, input=stdin, capture_output=True, text=True, timeout=timeout)


# Installed first on sys.meta_path in a child interpreter: importing a blocked top-level
# package (or any submodule) raises ImportError, as on a device without it.
BLOCK_IMPORTS = """
import sys

class _Block:
    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, _Block(BLOCKED))
"""


def blocked_imports_script(blocked: tuple[str, ...], body: str) -> str:
    """Source of a child script that blocks ``blocked`` imports, then runs ``body``."""
    return f"BLOCKED = {blocked!r}\n{BLOCK_IMPORTS}\n{textwrap.dedent(body)}"


def force_external_buffers(monkeypatch: Any) -> None:
    """Makes ai-edge-quantizer write every model with its weights after the flatbuffer (``offset``
    buffers), the layout it uses above 256 KiB of weights, which tiny test models are below."""
    from ai_edge_quantizer import model_modifier

    def always_external(self: Any, model: Any) -> Any:  # ModelModifier._serialize_small_model's signature
        packed = model_modifier._PackedBufferData(model)  # noqa: SLF001 - the quantizer's own large-model path
        return self._serialize_model(model, packed)

    monkeypatch.setattr(model_modifier.ModelModifier, "_serialize_small_model", always_external)

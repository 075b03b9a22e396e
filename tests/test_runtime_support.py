"""Builders of tiny real bundles for the runtime tests (no tests here).

Kept in a ``test_runtime*`` module, not ``conftest.py``, so the runtime tests own their
fixtures; each test module wraps these builders in module-scoped fixtures. torch and
transformers are imported lazily so that merely collecting this file stays cheap.
"""

from __future__ import annotations

import os
import string
import subprocess
import sys
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.bundle import load_manifest, seal, write_manifest

REPO = Path(__file__).resolve().parents[1]
LABELS = ("negative", "neutral", "positive")
GOLDEN_TEXTS = ("a good movie", "the plot is bad", "café 中文 😀 ok")

# Letters and ##letters make every ASCII word decomposable, so WordPiece exercises real
# sub-word splits instead of mapping most words to [UNK].
_WORDS = "the a an is was movie film good bad great plot ok not very and of to it".split()
_SUFFIXES = ["##ing", "##ed", "##s", "##ly", "##er"]
_CJK = list("中文日本語")
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


def write_bert_tokenizer(directory: Path) -> Any:
    """Writes a lowercase WordPiece tokenizer.json (via BertTokenizerFast) and returns the HF tokenizer."""
    from transformers import AutoTokenizer, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True).save_pretrained(directory)
    return AutoTokenizer.from_pretrained(directory, use_fast=True)


def tiny_model(model_type: str, vocab_size: int, seed: int = 0) -> Any:
    """A random 2-layer, hidden-32 classifier with 3 labels."""
    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        DistilBertConfig,
        DistilBertForSequenceClassification,
    )

    torch.manual_seed(seed)
    # initializer_range 0.2 (not 0.02) gives logits of order 1, so parity tolerances mean
    # something; with the default the logits are ~1e-2 and 1e-4 would be a loose check.
    if model_type == "bert":
        config = BertConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
            max_position_embeddings=128,
            num_labels=len(LABELS),
            initializer_range=0.2,
            attn_implementation="eager",  # plain matmuls trace cleanly to ONNX and TFLite
        )
        model = BertForSequenceClassification(config)
    else:
        config = DistilBertConfig(
            vocab_size=vocab_size,
            dim=32,
            n_layers=2,
            n_heads=2,
            hidden_dim=37,
            max_position_embeddings=128,
            num_labels=len(LABELS),
            initializer_range=0.2,
            attn_implementation="eager",  # plain matmuls trace cleanly to ONNX and TFLite
        )
        model = DistilBertForSequenceClassification(config)
    return model.eval()


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
    model = tiny_model(model_type, len(VOCAB))
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
    model = tiny_model("bert", len(VOCAB))
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
        _SHARED[key] = _build(tmp_path_factory.mktemp(f"bundle-{kind}"), kind)
    return _SHARED[key]


def _build(directory: Path, kind: str) -> TinyBundle:
    if kind == "tflite":
        return build_tflite_bundle(directory)
    return build_onnx_bundle(directory, kind)


def copy_bundle(bundle: TinyBundle, directory: Path) -> Path:
    """Copies a bundle directory so a test may modify it."""
    import shutil

    return Path(shutil.copytree(bundle.path, directory))


def reseal(directory: Path, **changes: Any) -> None:
    """Rewrites a bundle's manifest with some fields changed (file hashes unchanged)."""
    import dataclasses

    write_manifest(directory, dataclasses.replace(load_manifest(directory), **changes))


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

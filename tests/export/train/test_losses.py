"""Transfer losses: hidden-state and attention losses ignore padding and match layers; a learned
projection when the student is narrower; alpha = 0 is plain cross-entropy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from export.classifier import load_pretrained
from export.train.losses import DistillationModel, attention_loss, hidden_loss, layer_map


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

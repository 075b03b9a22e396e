"""Domain adaptation: the masked-position MLM loss equals each model's own MLM loss, and
``adapt.enabled`` continues MLM training before fine-tuning (cached like any stage)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForMaskedLM

from export.data.dataset import load_data
from export.errors import DataError
from export.train.adapt import masked_lm_loss
from export.train.cache import teacher_stage
from tests.builders import TINY_MODELS, VOCAB_SIZE, assert_close, phrase_corpus, tiny_cfg, tiny_model


def _mlm_model(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return AutoModelForMaskedLM.from_config(tiny_model(arch).config).train()


def _batch(masked_fraction: float) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, VOCAB_SIZE, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    mask[2, 5:] = 0
    labels = torch.where(torch.rand(ids.shape, generator=g) < masked_fraction, ids, torch.full_like(ids, -100))
    labels[mask == 0] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@pytest.mark.parametrize("arch", sorted(TINY_MODELS))
def test_masked_lm_loss_equals_the_models_own_loss_and_gradients(arch: str) -> None:
    model = _mlm_model(arch)
    batch = _batch(0.3)
    assert (batch["labels"] != -100).sum() > 2, "the batch masks too few positions to test anything"
    keys = set(model.state_dict())
    torch.manual_seed(2)  # the same dropout masks for both passes
    ours = masked_lm_loss(model, batch)
    ours.backward()
    ours_grad = model.get_input_embeddings().weight.grad.clone()
    model.zero_grad()
    torch.manual_seed(2)
    theirs = model(**batch).loss
    theirs.backward()
    assert_close(ours.item(), theirs.item(), 1e-5, f"{arch} MLM loss (masked positions only vs the model's)")
    assert_close(
        ours_grad.numpy(), model.get_input_embeddings().weight.grad.numpy(), 1e-5, f"{arch} embedding gradient"
    )
    assert set(model.state_dict()) == keys, f"{arch}: the swapped-in layer was left in the model"
    assert "labels" in batch, "masked_lm_loss modified its inputs"


def test_masked_lm_loss_on_a_batch_with_nothing_masked_is_zero() -> None:
    model = _mlm_model("bert")
    loss = masked_lm_loss(model, _batch(0.0))
    loss.backward()
    assert loss.item() == 0.0, f"loss {loss.item()} on a batch with no masked position"


@pytest.mark.slow
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

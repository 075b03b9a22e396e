"""Domain adaptation: continue masked-language-model pre-training on unlabelled in-domain text.

The encoder of the pretrained model learns the vocabulary and style of the target domain
(tweets, reviews, tickets) before it sees any label — the "don't stop pretraining" recipe
(Gururangan et al. 2020). BERT's MLM objective: 15 % of the tokens are selected, 80 % of those
replaced by [MASK], 10 % by a random token, 10 % kept, and the model predicts the originals.
A checkpoint without an MLM head (e.g. all-MiniLM-L6-v2, a sentence-embedding model) gets a
new head whose decoder is tied to the word embeddings; only its small transform layer starts
random.

The vocabulary projection is most of an MLM step on a small encoder (30 k outputs for each of
384 inputs, at every position), yet only the ~15 % selected positions have a label. The loss here
projects only those rows (``masked_lm_loss``): the same loss, a fraction of the work.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from export.classifier import resolve_model_path
from export.config import AdaptConfig
from export.data.dataset import read_rows
from export.errors import DataError, ModelLoadError
from export.train.trainer import last_checkpoint, training_arguments

log = logging.getLogger(__name__)


class _Texts:
    """Tokenized unlabelled texts for the MLM collator (which pads and masks per batch)."""

    def __init__(self, texts: Sequence[str], tokenizer: Any, max_length: int) -> None:
        enc = tokenizer(list(texts), truncation=True, max_length=max_length, return_special_tokens_mask=True)
        keys = ("input_ids", "attention_mask", "special_tokens_mask")
        self._rows = [{k: enc[k][i] for k in keys} for i in range(len(texts))]

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self._rows[i]


def _selected_rows(decoder: Any, selected: Any) -> Any:
    """A module that stands in for a model's output-embedding layer and applies it to the
    ``selected`` positions only. It holds the real layer, so weight tying and the head's ``bias``
    stay what they were; ``masked_lm_loss`` swaps it in for one forward pass."""
    import torch  # noqa: PLC0415 - heavy: loaded when training, not on import

    class SelectedRows(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decoder = decoder
            self.weight = decoder.weight
            self.bias = getattr(decoder, "bias", None)

        def forward(self, hidden: torch.Tensor) -> torch.Tensor:
            return self.decoder(hidden[selected])

    return SelectedRows()


def masked_lm_loss(model: Any, inputs: dict[str, Any], module: Any = None) -> Any:
    """The MLM cross-entropy of ``model`` on a collated batch, projecting only labelled positions.

    Equal to the model's own ``loss`` (mean over the positions whose label is not -100) for every
    architecture whose MLM head ends in its output-embedding layer (BERT, DistilBERT, RoBERTa,
    ALBERT, ELECTRA, MobileBERT). ``inputs`` is not modified.

    Args:
        model: What to call (under DDP, the wrapper, so that gradients are synchronised).
        inputs: ``input_ids``, ``attention_mask``, ... and ``labels`` (-100 where not masked).
        module: The masked-LM model itself, whose output embeddings are swapped (default ``model``).
    """
    import torch  # noqa: PLC0415 - heavy: loaded when training, not on import

    module = model if module is None else module
    inputs = dict(inputs)
    labels = inputs.pop("labels")
    selected = labels != -100
    decoder = module.get_output_embeddings()
    module.set_output_embeddings(_selected_rows(decoder, selected))
    try:
        logits = model(**inputs).logits
    finally:
        module.set_output_embeddings(decoder)
    if logits.dim() == 3:  # a head that multiplies by the layer's weight itself (MobileBERT): all positions
        logits = logits[selected]
    if logits.shape[0] == 0:  # nothing masked in this batch (tiny batches): a zero that keeps the graph
        return logits.sum() * 0.0
    return torch.nn.functional.cross_entropy(logits.float(), labels[selected])


def _masked_lm_trainer(trainer_cls: type) -> type:
    """The Trainer class with ``masked_lm_loss`` as its training loss."""

    class MaskedLMTrainer(trainer_cls):  # type: ignore[misc, valid-type]
        def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False, **kw: Any) -> Any:
            if return_outputs:  # evaluation paths (adapt evaluates nothing): the model's own loss
                return super().compute_loss(model, inputs, return_outputs=True, **kw)
            return masked_lm_loss(model, inputs, self.accelerator.unwrap_model(model))

    return MaskedLMTrainer


def read_texts(path: Path, cfg: Any) -> list[str]:
    """Unlabelled texts from a .txt file (one per line) or a labelled-data file's text column."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"adapt.texts: {path} does not exist")
    if path.suffix.lower() == ".txt":
        lines = [line.strip() for line in path.read_text(encoding=cfg.encoding).splitlines()]
        texts = [line for line in lines if line]
    else:
        texts = list(read_rows(path, cfg).texts)
    if not texts:
        raise DataError(f"adapt.texts: {path} holds no text")
    return texts


def adapt(
    name_or_path: str,
    texts: Sequence[str],
    cfg: AdaptConfig,
    workdir: Path,
    *,
    max_length: int,
    seed: int,
) -> Path:
    """Continues MLM pre-training of ``name_or_path`` on ``texts``.

    Args:
        name_or_path: The pretrained model (hub id or folder) that fine-tuning would start from.
        texts: Unlabelled in-domain texts.
        cfg: Epochs, batch size, learning rate, masking probability, sample cap.
        workdir: Checkpoints go to ``workdir/checkpoints/adapted``, the model to ``workdir/adapted``.
        max_length: Tokenizer truncation length.
        seed: Seed of masking, data order and the new head's init.

    Returns:
        The folder of the adapted model (MLM head included; fine-tuning drops it).
    """
    from transformers import (  # noqa: PLC0415 - heavy: loaded when training, not on import
        AutoModelForMaskedLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        set_seed,
    )

    set_seed(seed)
    source = resolve_model_path(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True)
        model = AutoModelForMaskedLM.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"adapt: cannot load {name_or_path!r} as a masked language model: {e}") from None
    texts = list(texts)[: cfg.max_samples] if cfg.max_samples else list(texts)
    log.info("adapt: masked-language-model training on %d unlabelled texts", len(texts))
    args = training_arguments(cfg, workdir / "checkpoints" / "adapted", seed=seed, evaluate=False)
    trainer = _masked_lm_trainer(Trainer)(
        model=model,
        args=args,
        train_dataset=_Texts(texts, tokenizer, max_length),
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm_probability=cfg.mlm_probability),
    )
    trainer.train(resume_from_checkpoint=last_checkpoint(trainer))
    dest = workdir / "adapted"
    if trainer.is_world_process_zero():
        trainer.model.save_pretrained(dest)
        tokenizer.save_pretrained(dest)
    return dest

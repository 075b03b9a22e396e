"""Fine-tuning the teacher with the Hugging Face Trainer, optionally with layer-wise learning rates."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from export.architectures import model_input_names
from export.classifier import Classifier, load_pretrained
from export.config import FinetuneConfig, ModelConfig
from export.data.dataset import Dataset
from export.train.trainer import (
    TokenizedSplit,
    accuracy_metric,
    schedule_callbacks,
    train_and_save,
    training_arguments,
)

log = logging.getLogger(__name__)


def finetune(
    model_cfg: ModelConfig,
    data: Dataset,
    cfg: FinetuneConfig,
    workdir: Path,
    *,
    max_length: int,
    seed: int,
    stop_at_epoch: float | None = None,
) -> Classifier:
    """Fine-tunes a pretrained encoder with a fresh classification head.

    Args:
        model_cfg: Which pretrained model to start from.
        data: Train and validation splits (the best check on validation is kept). An empty
            validation split: nothing is validated and the last step is kept (a refit, or the plain
            baseline recipe).
        cfg: Trainer hyper-parameters.
        workdir: Checkpoints go to ``workdir/checkpoints/teacher``, the model to ``workdir/teacher``.
        max_length: Tokenizer truncation length.
        seed: Seed of the head's init, dropout and data order.
        stop_at_epoch: Stop once this many epochs are done, on the schedule (warm-up, decay) of
            ``cfg.epochs``: a refit replays the selection run up to the check validation chose.

    Returns:
        The fine-tuned teacher.
    """
    from transformers import DataCollatorWithPadding, Trainer, set_seed  # noqa: PLC0415 - heavy: loaded when training, not on import

    set_seed(seed)
    model, tokenizer = load_pretrained(model_cfg.name_or_path, data.label_names)

    names = model_input_names(model)
    evaluate = len(data.validation) > 0
    args = training_arguments(cfg, workdir / "checkpoints" / "teacher", seed=seed, evaluate=evaluate)
    trainer_cls = Trainer if cfg.layer_lr_decay == 1.0 else layerwise_lr_trainer(cfg.layer_lr_decay)
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=TokenizedSplit(data.train, tokenizer, names, max_length),
        eval_dataset=TokenizedSplit(data.validation, tokenizer, names, max_length) if evaluate else None,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=accuracy_metric if evaluate else None,
        callbacks=schedule_callbacks(cfg, evaluate, stop_at_epoch),
    )
    return train_and_save(trainer, "teacher", tokenizer, workdir, data.label_names)


_LAYER = re.compile(r"\.layer\.(\d+)\.")


def parameter_depth(name: str, num_layers: int) -> int:
    """Depth of a parameter for layer-wise learning rates: 0 the embeddings, ``i + 1`` encoder
    layer ``i``, ``num_layers + 1`` the rest (pooler, classification head).

    Encoder layers are found by name (``encoder.layer.N.`` in BERT, RoBERTa, ELECTRA, MobileBERT;
    ``transformer.layer.N.`` in DistilBERT). ALBERT runs one shared layer at every depth: it gets
    the top layer's depth.
    """
    if m := _LAYER.search(name):
        return int(m.group(1)) + 1
    if "albert_layer_groups" in name:
        return num_layers
    if "embedding" in name:  # embeddings.*, ELECTRA's embeddings_project, ALBERT's embedding_hidden_mapping_in
        return 0
    return num_layers + 1


def layerwise_param_groups(
    model: Any, learning_rate: float, decay: float, weight_decay: float, decay_names: set[str]
) -> list[dict[str, Any]]:
    """Optimizer parameter groups with learning rate ``learning_rate * decay ** (L + 1 - depth)``
    (see :func:`parameter_depth`); weight decay only on ``decay_names`` (not biases, LayerNorm)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    layers = [int(m.group(1)) for n, _ in named if (m := _LAYER.search(n))]
    num_layers = max(layers) + 1 if layers else int(getattr(model.config, "num_hidden_layers", 0))
    groups: dict[tuple[int, bool], list[Any]] = {}
    for n, p in named:
        groups.setdefault((parameter_depth(n, num_layers), n in decay_names), []).append(p)
    return [
        {
            "params": params,
            "lr": learning_rate * decay ** (num_layers + 1 - depth),
            "weight_decay": weight_decay if decayed else 0.0,
        }
        for (depth, decayed), params in sorted(groups.items())
    ]


def layerwise_lr_trainer(decay: float) -> type:
    """A Trainer class whose optimizer (the one its arguments name, AdamW by default) gives each
    layer its own learning rate (:func:`layerwise_param_groups`). The scheduler (warm-up, decay)
    scales every group alike, and checkpoints resume as usual."""
    from transformers import Trainer  # noqa: PLC0415 - heavy: loaded when training, not on import

    class LayerwiseLrTrainer(Trainer):
        def create_optimizer(self) -> Any:
            if self.optimizer is None:
                groups = layerwise_param_groups(
                    self.model,
                    self.args.learning_rate,
                    decay,
                    self.args.weight_decay,
                    set(self.get_decay_parameter_names(self.model)),
                )
                optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, self.model)
                self.optimizer = optimizer_cls(groups, **kwargs)
            return self.optimizer

    return LayerwiseLrTrainer

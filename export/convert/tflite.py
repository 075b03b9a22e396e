"""PyTorch → TFLite export of a Hugging Face sequence classifier (litert-torch, or TensorFlow).

One ``.tflite`` holds one signature per sequence-length bucket, ``len_16``,
``len_32``, ... (weights are stored once and shared). Each has batch 1, takes the
model's own token inputs by name (``input_ids``, ``attention_mask`` and, where the
model has them, ``token_type_ids``) as int32, and returns float32 logits. The model
is converted once in fp32; other precisions are quantized from that flatbuffer
(:mod:`export.convert.quantized`).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import litert_torch
import numpy as np
import torch
from ai_edge_litert.interpreter import Interpreter
from transformers import PreTrainedModel

from export.architectures import TOKEN_INPUTS, model_input_names
from export.artifacts import Artifact, Format
from export.classifier import Classifier
from export.config import QuantizeConfig, TfliteConfig, TfliteConverter
from export.convert.integer_graph import integer_graph
from export.convert.mask_fill import bounded_mask_fill
from export.convert.tflite_tensorflow import TfJob, convert_with_tensorflow
from export.errors import ConfigError, ConversionError
from quantize.flatbuffer import compact
from quantize.tflite import (
    TfliteQuant,
    quantize_tflite,
    write_atomic,
)
from runtime.backends import bucket_signature

logger = logging.getLogger(__name__)

__all__ = [
    "LogitsOnly",
    "TfliteConversionError",
    "convert_tflite",
    "integer_flatbuffer",
    "model_input_names",
    "tflite_signature",
    "tflite_signatures",
    "to_tflite",
]

Signature = dict[str, dict[str, tuple[tuple[int, ...], str]]]


class TfliteConversionError(ConversionError):
    """litert-torch could not convert a model, or a TFLite file cannot be read."""


class LogitsOnly(torch.nn.Module):
    """Wraps a ``*ForSequenceClassification`` model so that it returns logits only.

    ``forward`` takes the token inputs by keyword, so the converter names the
    TFLite inputs after them. The mask fill value is bounded around the trace
    (:func:`export.convert.mask_fill.bounded_mask_fill`), not here.

    Args:
        model: A Hugging Face sequence classifier. Put in eval mode (this mutates
            ``model``; export never wants dropout).
    """

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model.eval()
        self.input_names = model_input_names(model)
        self._return_dict = "return_dict" in inspect.signature(model.forward).parameters
        self.eval()

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        """Runs the model and returns its ``[batch, num_labels]`` logits."""
        if self._return_dict:
            inputs = {**inputs, "return_dict": True}
        out = self.model(**inputs)
        if isinstance(out, torch.Tensor):
            return out
        logits = getattr(out, "logits", None)
        return logits if logits is not None else out[0]


def _model_name(model: torch.nn.Module) -> str:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return f"{type(model).__name__} (model_type={model_type!r})"


def _sample_inputs(names: tuple[str, ...], length: int) -> dict[str, torch.Tensor]:
    # Values only matter for tracing; an all-ones mask keeps every position live.
    return {
        name: (torch.ones if name == "attention_mask" else torch.zeros)(1, length, dtype=torch.long) for name in names
    }


def _convert_fp32(
    model: PreTrainedModel,
    lengths: tuple[int, ...],
    converter: TfliteConverter,
    mask_fill: float = -30.0,
    first_token_only: bool = True,
) -> bytes:
    names = model_input_names(model)
    if not names:
        raise TfliteConversionError(
            f"{_model_name(model)}: forward() takes none of {list(TOKEN_INPUTS)}; "
            "pass a Hugging Face *ForSequenceClassification model."
        )
    if converter is TfliteConverter.TENSORFLOW:
        flatbuffer = _convert_with_tensorflow(model, names, lengths)
    else:
        flatbuffer = _convert_with_litert_torch(model, names, lengths, mask_fill, first_token_only)
    _check_signatures(flatbuffer, f"{converter.value}-converted {_model_name(model)}", names, lengths)
    return flatbuffer


def _convert_with_litert_torch(
    model: PreTrainedModel,
    names: tuple[str, ...],
    lengths: tuple[int, ...],
    mask_fill: float = -30.0,
    first_token_only: bool = True,
) -> bytes:
    wrapper = LogitsOnly(model)
    # litert-torch prints progress to stdout (rich); keep it, but as a debug log.
    progress = io.StringIO()
    try:
        # A finite mask fill keeps the fp32 outputs (exp(-30) is 0 next to 1 in fp32) and
        # gives full-integer quantization a usable range for the masked attention scores.
        with torch.no_grad(), contextlib.redirect_stdout(progress), bounded_mask_fill(model, mask_fill):
            converter = litert_torch
            for n in lengths:
                sample = _sample_inputs(names, n)
                module = _first_token_module(wrapper, model, sample) if first_token_only else wrapper
                converter = converter.signature(bucket_signature(n), module, sample_kwargs=sample)
            return bytes(converter.convert().model_content())
    except TfliteConversionError:
        raise
    except Exception as e:  # litert-torch / torch.export raise many unrelated types
        raise TfliteConversionError(
            f"litert-torch failed to convert {_model_name(model)} at lengths={list(lengths)}: "
            f"{type(e).__name__}: {e}. Check that torch.export.export() accepts the model, try "
            "loading it with attn_implementation='eager', or use the ONNX export instead."
        ) from e
    finally:
        if progress.getvalue():
            logger.debug("litert-torch conversion log:\n%s", progress.getvalue().rstrip())


# The rewritten graph runs the same float ops on the same numbers, row by row.
_REWRITE_ATOL = 1e-4


def _first_token_module(
    wrapper: LogitsOnly, model: PreTrainedModel, sample: dict[str, torch.Tensor]
) -> torch.nn.Module:
    """``wrapper`` traced at the sample's length with its last layer computed for the first token
    only (:mod:`export.convert.fx_rows`), after proving that it gives the wrapper's logits on two
    random inputs of that length (one padded); the wrapper itself where the graph has no first-row
    selection.

    Raises:
        TfliteConversionError: the rewritten graph's logits differ, naming max |Δ| and the switch.
    """
    from export.convert.fx_rows import first_token_graph  # noqa: PLC0415 - only this path rewrites graphs

    module, stats = first_token_graph(wrapper, sample)
    if not stats["nodes"]:
        logger.info("TFLite export of %s: no first-token row selection found; every row kept", _model_name(model))
        return wrapper
    length = next(iter(sample.values())).shape[1]
    config = model.config
    generator = torch.Generator().manual_seed(0)
    for padded in (False, True):
        mask = torch.ones(1, length, dtype=torch.long)
        if padded:
            mask[0, max(1, length // 2) :] = 0
        arrays = {
            "input_ids": torch.randint(0, int(config.vocab_size), (1, length), generator=generator) * mask,
            "attention_mask": mask,
            "token_type_ids": torch.zeros(1, length, dtype=torch.long),
        }
        feeds = {n: arrays[n] for n in sample}
        before = wrapper(**feeds).double()
        try:
            after = module(**feeds).double()
        except Exception as e:  # torch raises many types; any is a failed rewrite
            raise TfliteConversionError(
                f"TFLite export of {_model_name(model)}: computing its last layer for the first token only made "
                f"a graph that fails at length {length}: {type(e).__name__}: {e}; export with "
                "tflite.first_token_only = false and report the model type"
            ) from e
        delta = float((before - after).abs().max())
        scale = max(1.0, float(before.abs().max()))
        if not delta <= _REWRITE_ATOL * scale:
            raise TfliteConversionError(
                f"TFLite export of {_model_name(model)}: computing its last layer for the first token only "
                f"changed the logits at length {length} (max |Δ| {delta:.3g} > {_REWRITE_ATOL * scale:.3g}); "
                "export with tflite.first_token_only = false and report the model type"
            )
    logger.info(
        "TFLite export of %s at length %d: last layer computed for the first token only (%d ops, %d products)",
        _model_name(model),
        length,
        stats["nodes"],
        stats["linears"],
    )
    return module


def integer_flatbuffer(model: PreTrainedModel, lengths: Sequence[int], mask_fill: float = -30.0) -> bytes:
    """The fp32 flatbuffer of ``model`` traced inside :func:`export.convert.integer_graph.integer_graph`
    (embedding lookups as GATHER, the attention mask by comparison): a graph that ai-edge-quantizer's
    static int8 recipe quantizes op for op. ``model`` must use eager attention (DistilBERT's SDPA
    path casts the mask to float).

    Raises:
        TfliteConversionError: the converter could not convert the model.
    """
    names = model_input_names(model)
    lengths = _lengths(tuple(lengths))
    with integer_graph(model, mask_fill):
        # Calibrated: every row of the last layer (export.convert.quantized._EVERY_ROW).
        flatbuffer = _convert_with_litert_torch(model, names, lengths, mask_fill, first_token_only=False)
    _check_signatures(flatbuffer, f"integer-graph {_model_name(model)}", names, lengths)
    return flatbuffer


def _convert_with_tensorflow(model: PreTrainedModel, names: tuple[str, ...], lengths: tuple[int, ...]) -> bytes:
    with tempfile.TemporaryDirectory(prefix="tflite-tf-") as tmp:
        model.save_pretrained(tmp)  # the TF class loads the PyTorch checkpoint from disk
        out = Path(tmp) / "model.tflite"
        try:
            convert_with_tensorflow([TfJob(Path(tmp), out, names, lengths)])
        except ConversionError as e:
            raise TfliteConversionError(f"TensorFlow failed to convert {_model_name(model)}: {e}") from e
        return out.read_bytes()


def _check_signatures(flatbuffer: bytes, where: str, names: tuple[str, ...], lengths: tuple[int, ...]) -> None:
    """Every length has its signature ``len_{n}`` (one length: or the only signature) taking ``names``."""
    signatures = _signatures_of(Interpreter(model_content=flatbuffer), where)
    for n in lengths:
        key = bucket_signature(n)
        if key not in signatures and len(lengths) == len(signatures) == 1:
            key = next(iter(signatures))
        got = signatures.get(key, {}).get("inputs", {})
        if set(got) != set(names) or any(shape != (1, n) for shape, _ in got.values()):
            raise TfliteConversionError(
                f"{where} has signature {key!r} inputs {got}, expected {sorted(names)} of shape (1, {n}) "
                f"(signatures: {sorted(signatures)}); check that the converter honours the input names."
            )


def _lengths(lengths: int | Sequence[int]) -> tuple[int, ...]:
    lengths = (lengths,) if isinstance(lengths, int) else tuple(lengths)
    if (
        not lengths
        or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in lengths)
        or list(lengths) != sorted(set(lengths))
    ):
        raise ConfigError(f"lengths must be a positive int or strictly increasing positive ints, got {lengths!r}")
    return lengths


def convert_tflite(
    model: PreTrainedModel,
    out_path: Path,
    *,
    lengths: int | Sequence[int],
    quantization: TfliteQuant = TfliteQuant.FP32,
    converter: TfliteConverter = TfliteConverter.LITERT_TORCH,
    mask_fill: float = -30.0,
    first_token_only: bool = True,
) -> Path:
    """Converts a sequence classifier to a TFLite flatbuffer.

    The model is converted once in fp32; other precisions are produced from that
    flatbuffer by :func:`quantize.tflite.quantize_tflite`. To ship several
    precisions, convert to fp32 once and call ``quantize_tflite`` on the result.

    Each sequence length ``n`` gets a signature ``len_{n}`` whose inputs are named as in
    :func:`model_input_names` (listed alphabetically by the signature, so bind by
    name), each ``int32 [1, n]`` (litert-torch downcasts the int64 samples), and
    one output ``output_0``: ``float32 [1, num_labels]`` logits.

    Args:
        model: A Hugging Face ``*ForSequenceClassification`` model; set to eval mode.
        out_path: Destination ``.tflite``. Written atomically: on any failure
            nothing is left at ``out_path`` (an existing file is kept).
        lengths: The sequence length of the graph, or strictly increasing lengths
            (one signature each; the weights are stored once).
        quantization: Precision of the written model.
        converter: litert-torch (default), or TensorFlow (the ``tf`` extra; see
            :mod:`export.convert.tflite_tensorflow`); both write the same signatures.
        mask_fill: Additive attention-mask value used instead of the dtype minimum
            (litert-torch only; see :mod:`export.convert.mask_fill`).
        first_token_only: Compute the last layer for the first token only, the row the head
            reads (litert-torch only; :mod:`export.convert.fx_rows`), proved per length before
            conversion.

    Returns:
        ``out_path``.

    Raises:
        ConfigError: ``lengths`` is not a positive int (or increasing positive ints),
            or ``quantization`` is not a ``TfliteQuant``.
        TfliteConversionError: the converter could not convert the model.
        TfliteQuantizationError: ai-edge-quantizer failed on the fp32 model.
    """
    lengths = _lengths(lengths)
    if not isinstance(quantization, TfliteQuant):
        allowed = [q.value for q in TfliteQuant]
        raise ConfigError(f"quantization must be a TfliteQuant {allowed}, got {quantization!r}")
    out_path = Path(out_path)
    if not isinstance(converter, TfliteConverter):
        allowed = [c.value for c in TfliteConverter]
        raise ConfigError(f"converter must be a TfliteConverter {allowed}, got {converter!r}")
    flatbuffer = _convert_fp32(model, lengths, converter, mask_fill, first_token_only)
    if quantization is TfliteQuant.FP32:
        return write_atomic(compact(flatbuffer), out_path)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, fp32_tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.fp32.", suffix=".tflite")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(flatbuffer)
        return quantize_tflite(Path(fp32_tmp), out_path, quantization)
    finally:
        Path(fp32_tmp).unlink(missing_ok=True)


def _signatures_of(interpreter: Interpreter, where: str) -> dict[str, Signature]:
    def describe(details: dict) -> dict[str, tuple[tuple[int, ...], str]]:
        return {name: (tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"]).name) for name, d in details.items()}

    out = {}
    for key in interpreter.get_signature_list():
        runner = interpreter.get_signature_runner(key)
        out[key] = {"inputs": describe(runner.get_input_details()), "outputs": describe(runner.get_output_details())}
    if not out:
        raise TfliteConversionError(f"{where} has no signatures")
    return out


def _load(path: Path) -> Interpreter:
    try:
        return Interpreter(model_path=str(path))
    except (OSError, ValueError, RuntimeError) as e:
        raise TfliteConversionError(f"cannot load TFLite model {path}: {e}") from e


def tflite_signatures(path: Path) -> dict[str, Signature]:
    """Reads the input and output tensors of every signature of a TFLite model.

    Returns:
        Signature name → ``{"inputs": {name: (shape, dtype)}, "outputs": {...}}`` (as
        :func:`tflite_signature`).

    Raises:
        TfliteConversionError: The file cannot be loaded or has no signature.
    """
    return _signatures_of(_load(path), str(path))


def tflite_signature(path: Path) -> Signature:
    """Reads the input and output tensors of a TFLite model's only signature.

    Args:
        path: A ``.tflite`` file with exactly one signature.

    Returns:
        ``{"inputs": {name: (shape, dtype)}, "outputs": {name: (shape, dtype)}}``,
        with shapes as int tuples and dtypes as numpy names (``"int32"``).

    Raises:
        TfliteConversionError: The file cannot be loaded or has not exactly one signature.
    """
    signatures = tflite_signatures(path)
    if len(signatures) != 1:
        raise TfliteConversionError(f"{path} has signatures {sorted(signatures)}; expected exactly one")
    return next(iter(signatures.values()))


def to_tflite(
    clf: Classifier,
    cfg: TfliteConfig,
    out_dir: Path,
    *,
    max_length: int,
    mask_fill: float = QuantizeConfig.mask_fill,
) -> Artifact:
    """Exports a classifier to fp32 TFLite, one signature per length bucket; :func:`quantized_tflite`
    makes the other precisions from it.

    Args:
        clf: The classifier to export (the pipeline's student).
        cfg: The length buckets (and the converter) to use.
        out_dir: Folder for the ``{name}-tflite-fp32.tflite`` file.
        max_length: The longest sequence (data.max_length): the last bucket, see
            :meth:`TfliteConfig.lengths`.
        mask_fill: The bounded attention-mask fill (``quantize.mask_fill``), used in fp32 too so
            that every precision quantizes the same graph.

    Returns:
        The fp32 artifact; ``fixed_length`` is ``max_length``.

    Raises:
        TfliteConversionError: the converter could not convert the model.
    """
    name = f"{clf.name}-tflite-{TfliteQuant.FP32.value}"
    path = convert_tflite(
        clf.model,
        out_dir / f"{name}.tflite",
        lengths=cfg.lengths(max_length),
        converter=cfg.converter,
        mask_fill=mask_fill,
        first_token_only=cfg.first_token_only,
    )
    return Artifact(name, path, Format.TFLITE, "fp32", clf.name, clf.name, fixed_length=max_length)

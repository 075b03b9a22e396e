"""Calibrated TFLite quantization (full-integer int8, 16x8) with a per-layer sensitivity search.

Post-training full-integer int8 of a BERT-family model usually loses labels: every activation
gets one per-tensor int8 scale, and LayerNorm statistics, residual sums and attention scores
do not fit. The recipe here:

1. Convert with a bounded attention-mask fill (:mod:`export.convert.mask_fill`), so the masked scores
   do not stretch the int8 range of the attention logits.
2. Calibrate activation ranges once, on real training text, every length bucket.
3. Split the graph into op groups by module path (each layer; each sub-module kind across
   layers, e.g. ``layer.*.attention.output``; embeddings; classifier).
4. Quantize everything, score label agreement with the fp32 model on held-out training text;
   while it is below the target, try keeping each remaining group in float and keep the one
   that helps most (greedy, re-ranked every step), up to ``max_float_groups``.

Every trial reuses the one calibration, so a trial costs one quantization (~1 s) and one pass
over the sensitivity texts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from ai_edge_quantizer import calibrator, recipe_manager
from ai_edge_quantizer import quantizer as aeq
from ai_edge_quantizer.algorithm_manager import AlgorithmName
from ai_edge_quantizer.qtyping import TFLOperationName
from ai_edge_quantizer.utils import qsv_utils, tfl_flatbuffer_utils

from quantize.calibration import Encoded
from quantize.modes import TfliteQuant

log = logging.getLogger(__name__)

Inputs = list[tuple[str, Encoded]]
"""``(signature key, inputs)`` per text."""


@dataclass(frozen=True)
class OpGroup:
    """Ops of the graph selected by module path.

    Attributes:
        name: Readable module path, ``*`` for "every layer", e.g. ``bert.encoder.layer.*.output``.
        pattern: Regular expression over ai-edge-quantizer op scopes (output tensor names).
        ops: How many ops of the first signature it selects.
    """

    name: str
    pattern: str
    ops: int


@dataclass(frozen=True)
class Trial:
    """One quantization scored against the fp32 model on the sensitivity texts."""

    float_groups: tuple[str, ...]
    agreement: float
    """Share of texts whose top label equals the fp32 model's."""
    mse: float
    """Mean squared logit difference to the fp32 model."""


@dataclass(frozen=True)
class SensitivityResult:
    """What the sensitivity search tried and kept.

    Attributes:
        mode: The calibrated mode searched.
        baseline: Everything quantized.
        steps: One trial per group kept in float, in the order kept.
        ranking: First-step scores: each group alone kept in float (the per-layer sensitivity).
        target: Agreement the search aimed for.
        texts: Number of sensitivity texts scored.
    """

    mode: TfliteQuant
    baseline: Trial
    steps: tuple[Trial, ...] = ()
    ranking: tuple[Trial, ...] = ()
    target: float = 0.99
    texts: int = 0

    @property
    def final(self) -> Trial:
        return self.steps[-1] if self.steps else self.baseline

    @property
    def met(self) -> bool:
        return self.final.agreement >= self.target

    def notes(self) -> tuple[str, ...]:
        """Report lines: baseline, each group kept in float and why, and the outcome."""
        first = (
            f"{self.mode.value} with {', '.join(self.baseline.float_groups)} in float (from an earlier search)"
            if self.baseline.float_groups
            else f"all ops {self.mode.value}"
        )
        lines = [
            f"sensitivity search on {self.texts} held-out training texts, target agreement "
            f"{self.target:.1%}: {first} → agreement {self.baseline.agreement:.1%}, "
            f"logit MSE {self.baseline.mse:.4f}"
        ]
        for step in self.steps:
            lines.append(f"kept in float: {step.float_groups[-1]} → agreement {step.agreement:.1%}, MSE {step.mse:.4f}")
        if self.ranking:
            top = sorted(self.ranking, key=lambda t: (-t.agreement, t.mse))[:5]
            ranked = ", ".join(f"{t.float_groups[-1]} {t.agreement:.1%}" for t in top)
            lines.append(f"most sensitive groups (agreement with that group alone in float): {ranked}")
        kept = len(self.steps) + len(self.baseline.float_groups)
        lines.append(
            f"target met with {kept} group(s) in float"
            if self.met
            else f"target NOT met: best agreement {self.final.agreement:.1%} with {kept} group(s) in float"
        )
        return tuple(lines)


def _attr(component: str) -> str:
    """``transformers.models.bert.modeling_bert.BertLayer_3`` → ``3`` (the attribute name)."""
    last = component.rsplit(".", 1)[-1]
    return last.split("_", 1)[1] if "_" in last else last


def op_groups(flatbuffer: bytes) -> list[OpGroup]:
    """Groups the ops of a litert-torch-converted model by the module that produced them.

    Op scopes look like ``Wrapper/...Model_bert/...Encoder_encoder/...BertLayer_3/...BertOutput_output/
    ...Linear_dense;12;``. For modules inside a numbered layer there is one group per layer
    (``bert.encoder.layer.3``) and one per child kind across all layers
    (``bert.encoder.layer.*.output``, plus ``… (own ops)`` for the layer's residual adds) and
    one level finer (``bert.encoder.layer.*.output.LayerNorm``);
    outside the layers, one group per module two levels below the model
    (``bert.embeddings``, ``classifier``), or the module's own ops (e.g. the attention-mask
    arithmetic of ``bert``).
    """
    model = tfl_flatbuffer_utils.read_model(bytearray(flatbuffer))
    subgraph = model.subgraphs[0]
    found: dict[str, list] = {}
    for op in subgraph.operators:
        scope = tfl_flatbuffer_utils.get_op_scope(op, subgraph.tensors)
        parts = scope.split(";")[0].split("/")
        if len(parts) < 2:
            continue  # constants and unnamed ops follow the default recipe
        attrs = [_attr(p) for p in parts]
        layer = next((i for i, a in enumerate(attrs) if a.isdigit()), None)
        if layer is None:
            depth = min(len(parts), 4)
            own = depth == len(parts)
            name = (".".join(attrs[2:depth]) or attrs[depth - 1]) + (" (own ops)" if own else "")
            pattern = re.escape("/".join(parts[:depth])) + (";" if own else "[;/]")
            _add(found, name, pattern)
            continue
        prefix = re.escape("/".join(parts[:layer]) + "/" + parts[layer][: -len(attrs[layer])]) + r"\d+"
        _add(found, ".".join(attrs[2 : layer + 1]), re.escape("/".join(parts[: layer + 1])) + "[;/]")
        stem = ".".join([*attrs[2:layer], "*"])
        if len(parts) == layer + 1:
            _add(found, f"{stem} (own ops)", prefix + ";")
            continue
        child = prefix + "/" + re.escape(parts[layer + 1])
        _add(found, f"{stem}.{attrs[layer + 1]}", child + "[;/]")
        if len(parts) > layer + 2:  # one level finer: e.g. layer.*.ffn.lin2, layer.*.attention.output
            _add(
                found,
                f"{stem}.{attrs[layer + 1]}.{attrs[layer + 2]}",
                child + "/" + re.escape(parts[layer + 2]) + "[;/]",
            )
    return [OpGroup(name, pattern, ops) for name, (pattern, ops) in found.items()]


def _add(found: dict[str, list], name: str, pattern: str) -> None:
    entry = found.setdefault(name, [pattern, 0])
    entry[1] += 1


def _recipe(mode: TfliteQuant, float_patterns: Sequence[str]) -> list:
    manager = recipe_manager.RecipeManager()
    bits = 16 if mode is TfliteQuant.INT16X8 else 8
    manager.add_static_config(
        regex=".*", operation_name=TFLOperationName.ALL_SUPPORTED, activation_num_bits=bits, weight_num_bits=8
    )
    # The static recipe leaves the embedding table in float (47 MB for a BERT vocabulary);
    # int8 weight-only keeps the lookup's output float, quantized by the next op.
    manager.add_weight_only_config(regex=".*", operation_name=TFLOperationName.EMBEDDING_LOOKUP, num_bits=8)
    if mode is not TfliteQuant.FULL_INT8_IO:
        manager.add_quantization_config(
            regex=".*", operation_name=TFLOperationName.OUTPUT, algorithm_key=AlgorithmName.NO_QUANTIZE
        )
    for pattern in float_patterns:
        manager.add_quantization_config(
            regex=pattern, operation_name=TFLOperationName.ALL_SUPPORTED, algorithm_key=AlgorithmName.NO_QUANTIZE
        )
    if float_patterns:
        # Embedding tables stay int8 even in a group kept in float (the lookup's output is float
        # either way). Configs are matched per regex key in insertion order, later ones winning, so
        # this needs a key other than the first ".*".
        manager.add_weight_only_config(regex=".+", operation_name=TFLOperationName.EMBEDDING_LOOKUP, num_bits=8)
    return manager.get_quantization_recipe()


def calibrate(flatbuffer: bytes, inputs: Inputs, threads: int = 2, *, min_max: bool = False) -> dict:
    """Activation ranges of every tensor of every signature (ai-edge-quantizer QSVs).

    Args:
        flatbuffer: The fp32 model (converted with a bounded mask fill).
        inputs: Calibration inputs per signature; every signature must get at least one.
        threads: Interpreter threads.
        min_max: The min / max over all inputs. Default: ai-edge-quantizer's own statistic, a
            moving average (0.95 · old + 0.05 · new) of each input's min / max, which depends on the
            order of the last ~20 inputs. Quantization-aware training uses min / max: it is what the
            training simulates (:mod:`quantize.qat`), and it does not depend on the order.
    """
    data: dict[str, list[Encoded]] = {}
    for key, row in inputs:
        data.setdefault(key, []).append(row)
    quantizer = aeq.Quantizer(bytearray(flatbuffer), _recipe(TfliteQuant.FULL_INT8, ()))
    if not min_max:
        return quantizer.calibrate(data, num_threads=threads)
    calib = calibrator.Calibrator(bytearray(flatbuffer), num_threads=threads, qsv_update_func=qsv_utils.min_max_update)
    calib.calibrate(data, quantizer._recipe_manager)  # noqa: SLF001 - Quantizer.calibrate takes no statistic
    return calib.get_model_qsvs()


def quantize_with(flatbuffer: bytes, qsvs: dict, mode: TfliteQuant, float_patterns: Sequence[str] = ()) -> bytes:
    """Quantizes with calibrated ranges, keeping ops that match ``float_patterns`` in float."""
    quantizer = aeq.Quantizer(bytearray(flatbuffer), _recipe(mode, float_patterns))
    result = quantizer.quantize(qsvs, enable_progress_bar=False, enable_progress_report=False)
    if result.quantized_model is None:
        raise RuntimeError("ai-edge-quantizer returned no model")
    return bytes(result.quantized_model)


def run_logits(flatbuffer: bytes, inputs: Inputs) -> np.ndarray:
    """float32 logits ``[texts, labels]``, int8 outputs dequantized."""
    interpreter = Interpreter(model_content=flatbuffer, num_threads=2)
    runners = {key: interpreter.get_signature_runner(key) for key in interpreter.get_signature_list()}
    rows = []
    for key, row in inputs:
        runner = runners[key]
        (detail,) = runner.get_output_details().values()
        out = next(iter(runner(**row).values()))[0].astype(np.float32)
        scale, zero_point = detail.get("quantization", (0.0, 0))
        rows.append((out - zero_point) * scale if scale else out)
    return np.stack(rows)


def search_float_groups(
    flatbuffer: bytes,
    qsvs: dict,
    mode: TfliteQuant,
    sensitivity: Inputs,
    *,
    target: float,
    max_groups: int,
    start: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
) -> tuple[bytes, SensitivityResult]:
    """Quantizes in ``mode``; keeps op groups in float, most helpful first, until ``target``.

    Args:
        flatbuffer: The fp32 model the ranges were calibrated on.
        qsvs: From :func:`calibrate`.
        mode: A calibrated mode (``FULL_INT8``, ``FULL_INT8_IO``, ``INT16X8``).
        sensitivity: Held-out training inputs that score each trial.
        target: Label agreement with the fp32 model to reach.
        max_groups: Most groups kept in float (besides ``start``).
        start: Names of groups to keep in float from the outset, e.g. those an earlier search
            found for a mode that differs only in its output type; the search goes on from there.
        progress: Called with the number of trials run, after each one.

    Returns:
        The chosen quantized model and what the search measured.
    """
    reference = run_logits(flatbuffer, sensitivity)
    trials = 0

    def score(groups: Sequence[OpGroup]) -> tuple[bytes, Trial]:
        nonlocal trials
        model = quantize_with(flatbuffer, qsvs, mode, [g.pattern for g in groups])
        logits = run_logits(model, sensitivity)
        agreement = float((logits.argmax(1) == reference.argmax(1)).mean())
        trials += 1
        if progress is not None:
            progress(trials)
        return model, Trial(tuple(g.name for g in groups), agreement, float(((logits - reference) ** 2).mean()))

    candidates = op_groups(flatbuffer)
    kept: list[OpGroup] = [g for g in candidates if g.name in start]
    candidates = [g for g in candidates if g.name not in start]
    best_model, baseline = score(kept)
    steps: list[Trial] = []
    ranking: tuple[Trial, ...] = ()
    current = baseline
    while current.agreement < target and len(kept) - len(start) < max_groups and candidates:
        scored = {g.name: score([*kept, g]) for g in candidates}
        if not ranking:
            ranking = tuple(t for _, t in scored.values())
        name = max(scored, key=lambda n: (scored[n][1].agreement, -scored[n][1].mse))
        model, trial = scored[name]
        if (trial.agreement, -trial.mse) <= (current.agreement, -current.mse):
            log.info("sensitivity: no remaining group improves on %.4f; stopping", current.agreement)
            break
        kept.append(next(g for g in candidates if g.name == name))
        candidates = [g for g in candidates if g.name != name]
        steps.append(trial)
        best_model, current = model, trial
        log.info("sensitivity: keep %s in float → agreement %.4f", name, trial.agreement)
    return best_model, SensitivityResult(mode, baseline, tuple(steps), ranking, target, len(sensitivity))

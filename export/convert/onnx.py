"""ONNX export with dynamic batch and sequence axes, checked by ``onnx.checker`` (full check).

Two exporters behind one interface (``onnx.exporter``): optimum-onnx, which drives the
TorchScript exporter, and ``torch.onnx.export(dynamo=True)``, which does not, so the kit
keeps working when the TorchScript exporter is removed from torch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from export.artifacts import Artifact, Format
from export.classifier import Classifier
from export.config import OnnxConfig, OnnxExporter, QuantizeConfig
from export.errors import ConversionError
from export.preflight import resolve_onnx

log = logging.getLogger(__name__)

_DEFAULT_QUANTIZE = QuantizeConfig()  # frozen, so one shared default is safe


def export_onnx(
    clf: Classifier,
    out_path: Path,
    opset: int | None = None,
    exporter: OnnxExporter = OnnxExporter.AUTO,
    mask_fill: float | None = None,
    fold_shapes: bool = True,
    first_token_only: bool = True,
) -> Path:
    """Exports a saved classifier to one self-contained ``.onnx`` file.

    The graph takes the model's own inputs (by name; DistilBERT has no token_type_ids)
    with dynamic ``batch_size`` and ``sequence_length`` axes and returns ``logits``.

    Args:
        clf: The classifier (exported from ``clf.path``).
        out_path: Where the ``.onnx`` file goes.
        opset: ONNX opset; None: the exporter's own (17 optimum, 18 dynamo).
        exporter: optimum-onnx or ``torch.onnx.export(dynamo=True)``; auto: optimum where it is
            installed (see :func:`export.preflight.resolve_onnx`).
        mask_fill: If set, the graph fills masked attention positions with this finite
            value instead of −3.4e38 (see :mod:`export.convert.mask_fill`); for graphs that will be
            integer-quantized. Float outputs are the same.
        fold_shapes: Fold the shape arithmetic the exporter traced (head-split reshapes, the
            attention scale) into constants (:mod:`export.convert.onnx_shapes`); the folded
            graph must give the unfolded one's logits on random inputs of several batch sizes
            and lengths, or the export fails.
        first_token_only: Compute the last layer for the first token only, the row the
            classification head reads (:mod:`export.convert.onnx_rows`); proved like ``fold_shapes``.

    Raises:
        ConversionError: the exporter failed, or its graph does not pass ``onnx.checker``
            or does not take the model's inputs and return ``logits``, or the folded graph
            disagrees with the exported one.
    """
    import onnx  # noqa: PLC0415 - loaded when converting, not on import

    resolved = resolve_onnx(OnnxConfig(exporter=exporter, opset=opset))
    exporter, opset = resolved.exporter, int(resolved.opset or 0)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".onnx-") as tmp:
        produced = Path(tmp) / "model.onnx"
        try:
            with _mask_fill(clf, mask_fill):
                if exporter is OnnxExporter.DYNAMO:
                    _dynamo_export(clf, produced, opset)
                else:
                    _optimum_export(clf, Path(tmp), opset)
        except Exception as e:  # exporter errors come in many types; re-raised as ConversionError
            raise ConversionError(
                f"ONNX export of {clf.name} ({clf.model_type}) with {exporter.value} failed: {type(e).__name__}: "
                f"{_summary(e)}; try another opset (onnx.opset, now {opset}) or onnx.exporter"
            ) from e
        if any(Path(tmp).glob("*.onnx_data")) or any(Path(tmp).glob("*.data")):
            raise ConversionError(f"ONNX export of {clf.name} wrote external data; models over 2 GB are not supported")
        try:
            onnx.checker.check_model(str(produced), full_check=True)
        except onnx.checker.ValidationError as e:
            raise ConversionError(f"ONNX export of {clf.name} is not a valid ONNX model: {e}") from e
        graph = onnx.load(str(produced), load_external_data=False).graph
        graph_inputs = tuple(i.name for i in graph.input)
        if set(graph_inputs) != set(clf.input_names):
            raise ConversionError(
                f"ONNX export of {clf.name} takes inputs {graph_inputs}, the model takes {clf.input_names}"
            )
        if [o.name for o in graph.output] != ["logits"]:
            raise ConversionError(f"ONNX export of {clf.name} returns {[o.name for o in graph.output]}, not logits")
        got = graph_opset(produced)
        if got != opset:  # the dynamo exporter keeps its own opset when ONNX cannot convert an op down
            raise ConversionError(
                f"ONNX export of {clf.name} ({clf.model_type}) with {exporter.value} produced opset {got}, not "
                f"onnx.opset={opset} (ONNX's version converter could not take every op down); set onnx.opset={got} "
                "or use onnx.exporter=optimum"
            )
        _rewrite(clf, produced, fold_shapes=fold_shapes, first_token_only=first_token_only)
        shutil.move(str(produced), out_path)
    return out_path


@dataclasses.dataclass(frozen=True)
class _Rewrite:
    """One graph rewrite of :func:`_rewrite`: what it did (for errors), the setting that turns it
    off, the graph after it, and its log line."""

    what: str
    switch: str
    graph: Any
    done: str


def _rewrite(clf: Classifier, path: Path, *, fold_shapes: bool, first_token_only: bool) -> None:
    """Rewrites ``path`` in one pass, loaded and saved once: its shape arithmetic folded
    (:mod:`export.convert.onnx_shapes`), then its last layer computed for the first token only
    (:mod:`export.convert.onnx_rows`). The result must give the exported graph's logits
    (:func:`_prove_rewrite`, proved once for both); only when it does not is each rewrite proved on
    its own, so that the error names the one that changed them. Symbolic shape inference runs once,
    for both. When it fails on the graph, or a rewrite finds nothing to do, that is logged and the
    graph is left as exported.

    Raises:
        ConversionError: the rewritten graph is not valid ONNX, fails to run, or its logits differ
            from the exported graph's by more than ``_REWRITE_ATOL`` (relative to the logits' size).
    """
    if not (fold_shapes or first_token_only):
        return
    import onnx  # noqa: PLC0415 - loaded when converting, not on import

    from export.convert import onnx_rows, onnx_shapes  # noqa: PLC0415 - imports onnxruntime

    exported = onnx.load(str(path))
    try:  # inferred once: fold_shapes returns the shapes of the graph it makes
        shapes = onnx_shapes.symbolic_shapes(exported)
    except Exception as e:  # noqa: BLE001 - shape inference fails on graphs it does not know; the export stands
        left = [
            text
            for on, text in (
                (fold_shapes, "shape arithmetic left unfolded"),
                (first_token_only, "every row of the last layer kept"),
            )
            if on
        ]
        log.warning(
            "ONNX export of %s: %s (symbolic shape inference failed: %s: %s)",
            clf.name,
            ", ".join(left),
            type(e).__name__,
            _summary(e),
        )
        return
    steps: list[_Rewrite] = []
    if fold_shapes:
        try:
            folded, s, shapes = onnx_shapes.fold_shapes(exported, shapes)
        except Exception as e:  # noqa: BLE001 - a graph the fold does not know; the export stands
            log.warning(
                "ONNX export of %s: shape arithmetic left unfolded (the fold failed: %s: %s)",
                clf.name,
                type(e).__name__,
                _summary(e),
            )
        else:
            done = (
                f"shape arithmetic folded: {s['nodes_before']} → {s['nodes_after']} nodes ({s['folded']} values made "
                f"constant, {s['reshapes']} reshape targets, {s['expands']} expands dropped)"
            )
            steps.append(_Rewrite("folding its shape arithmetic", "onnx.fold_shapes", folded, done))
    if first_token_only:
        try:
            pruned, s = onnx_rows.first_token_only(steps[-1].graph if steps else exported, shapes)
        except Exception as e:  # noqa: BLE001 - as above
            log.warning(
                "ONNX export of %s: every row of the last layer kept (the row walk failed: %s: %s)",
                clf.name,
                type(e).__name__,
                _summary(e),
            )
        else:
            if s["nodes"]:
                done = (
                    f"last layer computed for the first token only ({s['nodes']} nodes, {s['matmuls']} of them MatMuls)"
                )
                steps.append(
                    _Rewrite("computing its last layer for the first token only", "onnx.first_token_only", pruned, done)
                )
            else:
                log.info(
                    "ONNX export of %s: no first-token row selection found; every row of the last layer kept", clf.name
                )
    if not steps:
        return
    what = " and ".join(step.what for step in steps)
    try:
        _prove_rewrite(clf, exported, steps[-1].graph, what, [step.switch for step in steps])
    except ConversionError:
        if len(steps) > 1:  # which one changed the logits: each against its own input
            before = exported
            for step in steps:
                _prove_rewrite(clf, before, step.graph, step.what, [step.switch])
                before = step.graph
        raise  # one rewrite, or each within tolerance and together not: the error names every switch
    onnx.save(steps[-1].graph, str(path))
    for step in steps:
        log.info("ONNX export of %s: %s", clf.name, step.done)


def _prove_rewrite(clf: Classifier, model: Any, rewritten: Any, what: str, switches: list[str]) -> None:
    """``rewritten`` must be valid ONNX and give ``model``'s logits within ``_REWRITE_ATOL`` (relative
    to the logits' size) on :func:`_probe_feeds`.

    Raises:
        ConversionError: it is not, naming max |Δ|, the batch and ``switches`` (the settings that turn
            the rewrite off).
    """
    import onnx  # noqa: PLC0415 - loaded when converting, not on import

    hint = f"; export with {' and '.join(f'{s} = false' for s in switches)} and report the model type"
    try:
        onnx.checker.check_model(rewritten, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ConversionError(f"ONNX export of {clf.name}: {what} made an invalid graph: {e}{hint}") from e
    sessions = [_session(model), _session(rewritten)]
    for feeds in _probe_feeds(clf, model):
        shape = "x".join(map(str, next(iter(feeds.values())).shape))
        before = np.asarray(sessions[0].run(["logits"], feeds)[0], dtype=np.float64)
        try:
            after = np.asarray(sessions[1].run(["logits"], feeds)[0], dtype=np.float64)
        except Exception as e:
            raise ConversionError(
                f"ONNX export of {clf.name} ({clf.model_type}): {what} made a graph that fails on a {shape} batch: "
                f"{_summary(e)}{hint}"
            ) from e
        delta = float(np.abs(before - after).max())
        scale = max(1.0, float(np.abs(before).max()))
        if not delta <= _REWRITE_ATOL * scale:
            raise ConversionError(
                f"ONNX export of {clf.name} ({clf.model_type}): {what} changed the logits "
                f"(max |Δ| {delta:.3g} > {_REWRITE_ATOL * scale:.3g} on a {shape} batch){hint}"
            )


# A rewritten graph runs the same float ops on the same numbers; ONNX Runtime may pick other
# kernels for them once shapes are constant (e.g. the attention scale fused into a MatMul).
_REWRITE_ATOL = 1e-4


def _probe_feeds(clf: Classifier, model: Any) -> list[dict[str, np.ndarray]]:
    """Random inputs by the graph's own input names and dtypes: batch 1 of 1 and 7 tokens, and
    batch 3 of 13 tokens with right padding in two rows (what the runtime feeds)."""
    import onnx  # noqa: PLC0415 - loaded when converting, not on import

    config = clf.model.config
    vocab = int(getattr(config, "vocab_size", 100))
    longest = int(getattr(config, "max_position_embeddings", 13) or 13)
    types = int(getattr(config, "type_vocab_size", 1) or 1)
    rng = np.random.default_rng(0)
    dtypes = {i.name: onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type) for i in model.graph.input}
    batches = []
    for rows, length in ((1, 1), (1, 7), (3, 13)):
        length = max(1, min(length, longest - 2))  # RoBERTa's positions start after the padding index
        mask = np.ones((rows, length), dtype=np.int64)
        if rows > 1:
            mask[1, length // 2 :] = 0
            mask[2, length - 1 :] = 0
        ids = rng.integers(0, vocab, size=(rows, length))
        segments = np.zeros((rows, length), dtype=np.int64)
        if types > 1:
            segments[:, length // 2 :] = 1
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": segments * mask}
        batches.append({n: arrays[n].astype(d) for n, d in dtypes.items()})
    return batches


def _session(model: Any) -> Any:
    import onnxruntime as ort  # noqa: PLC0415 - loaded when converting, not on import

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def export_integer_onnx(
    clf: Classifier,
    out_path: Path,
    opset: int,
    mask_fill: float,
    fold_shapes: bool = True,
    first_token_only: bool = True,
) -> Path:
    """The graph a QDQ quantizer can make integer end to end, as :func:`export_onnx` writes and
    checks it: the model reloaded with eager attention and exported with the dynamo exporter
    inside :func:`~export.convert.integer_graph.integer_graph` (embeddings as Gather, the
    attention mask chosen by a comparison, not cast to float, filled with ``mask_fill``) — the
    graph the QAT stage trained in. Float outputs are the model's. ``fold_shapes`` and
    ``first_token_only`` as in :func:`export_onnx`.

    Raises:
        ConversionError: the export failed or is not valid.
    """
    from transformers import AutoModelForSequenceClassification  # noqa: PLC0415 - imports torch

    from export.convert.integer_graph import integer_graph  # noqa: PLC0415 - as transformers

    model = AutoModelForSequenceClassification.from_pretrained(clf.path, attn_implementation="eager").eval()
    with integer_graph(model, mask_fill):
        clf = dataclasses.replace(clf, model=model)
        return export_onnx(
            clf,
            out_path,
            max(opset, 18),
            OnnxExporter.DYNAMO,
            fold_shapes=fold_shapes,
            first_token_only=first_token_only,
        )


def graph_opset(path: Path) -> int:
    """The default-domain (``ai.onnx``) opset an ``.onnx`` file declares."""
    import onnx  # noqa: PLC0415 - loaded when converting, not on import

    model = onnx.load(str(path), load_external_data=False)
    return next(int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _mask_fill(clf: Classifier, fill: float | None) -> contextlib.AbstractContextManager[None]:
    if fill is None:
        return contextlib.nullcontext()
    from export.convert.mask_fill import bounded_mask_fill  # noqa: PLC0415 - imports torch

    # Patches the modelling modules, so it also reaches the copy optimum loads from clf.path.
    return bounded_mask_fill(clf.model, fill)


def _optimum_export(clf: Classifier, tmp: Path, opset: int) -> None:
    from optimum.exporters.onnx import main_export  # noqa: PLC0415 - as onnx; optimum imports torch

    main_export(
        str(clf.path),
        str(tmp),
        task="text-classification",
        opset=opset,
        do_validation=False,  # verify() checks parity on real eval data instead
        local_files_only=True,
    )


def _dynamo_export(clf: Classifier, produced: Path, opset: int) -> None:
    """``torch.onnx.export(dynamo=True)`` of the model itself, its inputs passed by keyword.

    The model's own ``forward`` signature names the graph inputs; batch and sequence are
    ``torch.export.Dim`` s, so both axes stay dynamic. Opsets below 18 (the exporter's
    native one) are reached through ONNX's version converter.
    """
    import torch  # noqa: PLC0415 - as onnx

    names = clf.input_names
    # Two rows of different lengths with padding, so no axis is specialised to a constant.
    sample = {n: torch.ones((2, 8), dtype=torch.long) for n in names}
    sample["attention_mask"][1, 5:] = 0
    batch, sequence = torch.export.Dim("batch_size"), torch.export.Dim("sequence_length")
    clf.model.eval()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()) as progress:
        warnings.simplefilter("ignore")  # axis-renaming and deprecation chatter
        torch.onnx.export(
            clf.model,
            (),
            str(produced),
            kwargs=sample,
            input_names=list(names),
            output_names=["logits"],
            dynamic_shapes={n: {0: batch, 1: sequence} for n in names},
            opset_version=opset,
            dynamo=True,
            external_data=False,
        )
    if progress.getvalue():
        log.debug("torch.onnx.export log:\n%s", progress.getvalue().rstrip())


def _summary(e: BaseException) -> str:
    """The root cause's first line: torch.export wraps it in pages of generic advice."""
    cause = e.__cause__ or e
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0][:400]


def to_onnx(models: list[Classifier], cfg: OnnxConfig, out_dir: Path) -> list[Artifact]:
    """Exports each model to fp32 ONNX (``{name}-onnx-fp32.onnx``); :func:`quantized_onnx` makes
    the quantized ones from these.

    Args:
        models: The classifiers (student, and the teacher when configured).
        cfg: The ``[onnx]`` configuration (exporter, opset).
        out_dir: Where the ``.onnx`` files go.

    Raises:
        ConversionError: an export failed.
    """
    cfg = resolve_onnx(cfg)  # onnx.exporter=auto / an unset opset made concrete
    artifacts = []
    for clf in models:
        name = f"{clf.name}-onnx-fp32"
        path = export_onnx(
            clf,
            out_dir / f"{name}.onnx",
            cfg.opset,
            cfg.exporter,
            fold_shapes=cfg.fold_shapes,
            first_token_only=cfg.first_token_only,
        )
        artifacts.append(Artifact(name, path, Format.ONNX, "fp32", clf.name, clf.name, opset=cfg.opset))
    return artifacts

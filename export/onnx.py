"""ONNX export with dynamic batch and sequence axes (optimum-onnx), checked by ``onnx.checker``."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from export.artifacts import Artifact, Format
from export.config import OnnxConfig
from export.errors import ConversionError
from export.models import Classifier
from quantize.onnx import quantize_onnx

log = logging.getLogger(__name__)


def export_onnx(clf: Classifier, out_path: Path, opset: int) -> Path:
    """Exports a saved classifier to one self-contained ``.onnx`` file.

    The graph takes the model's own inputs (by name; DistilBERT has no token_type_ids)
    with dynamic ``batch_size`` and ``sequence_length`` axes and returns ``logits``.

    Raises:
        ConversionError: the exporter failed or its graph does not pass ``onnx.checker``.
    """
    import onnx  # noqa: PLC0415
    from optimum.exporters.onnx import main_export  # noqa: PLC0415

    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".onnx-") as tmp:
        try:
            main_export(
                str(clf.path),
                tmp,
                task="text-classification",
                opset=opset,
                do_validation=False,  # verify() checks parity on real eval data instead
                local_files_only=True,
            )
        except Exception as e:  # noqa: BLE001 - exporter errors come in many types
            raise ConversionError(
                f"ONNX export of {clf.name} ({clf.model_type}) failed: {type(e).__name__}: {e}; "
                f"try another opset (onnx.opset, now {opset})"
            ) from e
        produced = Path(tmp) / "model.onnx"
        if any(Path(tmp).glob("*.onnx_data")) or any(Path(tmp).glob("*.data")):
            raise ConversionError(f"ONNX export of {clf.name} wrote external data; models over 2 GB are not supported")
        try:
            onnx.checker.check_model(str(produced), full_check=True)
        except onnx.checker.ValidationError as e:
            raise ConversionError(f"ONNX export of {clf.name} is not a valid ONNX model: {e}") from e
        graph_inputs = tuple(i.name for i in onnx.load(str(produced), load_external_data=False).graph.input)
        if set(graph_inputs) != set(clf.input_names):
            raise ConversionError(
                f"ONNX export of {clf.name} takes inputs {graph_inputs}, the model takes {clf.input_names}"
            )
        shutil.move(str(produced), out_path)
    return out_path


def to_onnx(models: list[Classifier], cfg: OnnxConfig, out_dir: Path) -> list[Artifact]:
    """Exports each model to fp32 ONNX, then quantizes it in every configured mode."""
    artifacts: list[Artifact] = []
    for clf in models:
        fp32_name = f"{clf.name}-onnx-fp32"
        path = export_onnx(clf, out_dir / f"{fp32_name}.onnx", cfg.opset)
        fp32 = Artifact(fp32_name, path, Format.ONNX, "fp32", clf.name, clf.name, opset=cfg.opset)
        artifacts.append(fp32)
        for mode in cfg.quantize:
            name = f"{clf.name}-onnx-{mode.value}"
            qpath = quantize_onnx(path, out_dir / f"{name}.onnx", mode)
            artifacts.append(Artifact(name, qpath, Format.ONNX, mode.value, clf.name, fp32_name, opset=cfg.opset))
    return artifacts

"""TensorFlow as a second PyTorch → TFLite converter (the optional ``tf`` extra).

The saved PyTorch checkpoint is loaded into the transformers TF class (``from_pt=True``);
each length bucket becomes a ``tf.function`` named ``len_{n}`` whose input signature is
``int32 [1, n]`` TensorSpecs named like the model's inputs, and
``tf.lite.TFLiteConverter.from_concrete_functions`` writes them into one flatbuffer with
the output ``output_0``: the signatures litert-torch writes, so quantization, bundles and
the runtime treat both converters alike. (With one bucket TF names the signature
``serving_default``; the runtime reads its length from the shape.)

Conversion runs in a child Python: transformers decides once, at import, from ``USE_TF``
whether TF classes exist (the kit's tests and scripts set ``USE_TF=0``), and TensorFlow
brings its own TFLite kernels beside ai-edge-litert's; a child keeps both out of the
exporting process. Jobs go in as JSON on stdin, so many models share one TF start-up.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.errors import ConfigError, ConversionError
from runtime.backends import bucket_signature

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class TfJob:
    """One conversion: a ``save_pretrained`` folder to an fp32 ``.tflite`` with a signature per length."""

    checkpoint: Path
    out: Path
    inputs: tuple[str, ...]
    lengths: tuple[int, ...]


def tensorflow_installed() -> bool:
    """Whether the ``tf`` extra (tensorflow, tf-keras) is importable."""
    return importlib.util.find_spec("tensorflow") is not None and importlib.util.find_spec("tf_keras") is not None


def convert_with_tensorflow(jobs: Sequence[TfJob], timeout: float = 3600) -> None:
    """Runs the jobs in one child Python that imports TensorFlow once.

    Raises:
        ConfigError: the ``tf`` extra is not installed.
        ConversionError: the child failed; the message ends with its last error lines.
    """
    if not tensorflow_installed():
        raise ConfigError(
            "tflite.converter=tensorflow needs TensorFlow: pip install 'bert-mobile-kit[tf]' "
            "(or use tflite.converter=litert-torch)"
        )
    # transformers offers TF classes only when USE_TF / USE_TORCH do not rule TF out.
    env = {k: v for k, v in os.environ.items() if k not in ("USE_TF", "USE_TORCH")}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    payload = json.dumps(
        [{"checkpoint": str(j.checkpoint), "out": str(j.out), "inputs": j.inputs, "lengths": j.lengths} for j in jobs]
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "export.convert.tflite_tensorflow"],
            input=payload,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise ConversionError(f"TensorFlow TFLite conversion did not finish in {timeout:.0f} s") from e
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise ConversionError(f"TensorFlow TFLite conversion failed (exit {proc.returncode}):\n{tail}")


def convert_fp32(job: TfJob) -> bytes:
    """Converts one checkpoint in this process; needs TensorFlow and transformers' TF classes."""
    import tensorflow as tf  # noqa: PLC0415 - the optional tf extra, in the conversion subprocess only
    from transformers import TFAutoModelForSequenceClassification  # noqa: PLC0415 - as tensorflow

    model = TFAutoModelForSequenceClassification.from_pretrained(str(job.checkpoint), from_pt=True)
    functions = [_bucket_function(tf, model, job.inputs, n) for n in job.lengths]
    converter = tf.lite.TFLiteConverter.from_concrete_functions(functions, model)
    # Builtin ops only: the runtime (ai-edge-litert) has no Flex delegate for TF ops.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return bytes(converter.convert())


def _bucket_function(tf: Any, model: Any, inputs: tuple[str, ...], length: int) -> Any:
    spec = {name: tf.TensorSpec([1, length], tf.int32, name=name) for name in inputs}

    def serve(features: dict[str, Any]) -> dict[str, Any]:
        return {"output_0": model(features, training=False).logits}

    serve.__name__ = bucket_signature(length)  # becomes the signature key
    return tf.function(serve, input_signature=[spec]).get_concrete_function()


def main() -> int:
    """Child entry point: JSON list of jobs on stdin; writes each job's ``out`` (via a temp file)."""
    for raw in json.load(sys.stdin):
        job = TfJob(Path(raw["checkpoint"]), Path(raw["out"]), tuple(raw["inputs"]), tuple(raw["lengths"]))
        flatbuffer = convert_fp32(job)
        tmp = job.out.with_name(f".{job.out.name}.tmp")
        tmp.write_bytes(flatbuffer)
        os.replace(tmp, job.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Inference engines behind one small interface, binding inputs by name.

Both engines are imported lazily, inside the backend constructors, so importing
:mod:`runtime` costs nothing and a device needs only the engine its bundle uses.

Inputs are always bound by name, never by position: exporters order inputs differently
(litert-torch sorts them), and DistilBERT has no ``token_type_ids``.

A TFLite model may hold one signature per sequence-length bucket, named ``len_{n}``
(:func:`bucket_signature`); the backend runs the one whose length the inputs have.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from runtime.errors import BackendUnavailableError, BundleError, InputError

__all__ = ["Backend", "OnnxBackend", "TfliteBackend", "bucket_signature", "open_backend"]

_ORT_DTYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}
# ONNX Runtime's own load-time fusions the runtime turns off, each measured slower than the ops it
# replaces. SkipLayerNormalization (residual add + LayerNorm): on an Intel Xeon (AVX-512 VNNI + AMX),
# 1 thread, ORT 1.2x, its kernel made dynamic-int8 BERT / DistilBERT bundles 14-17 % slower at
# 16-40 tokens (SST-2 student 1.08 -> 0.90 ms at 27 tokens, MiniLM teacher 1.99 -> 1.69) and fp32
# ones 0-3 %; logits equal within 5e-7 (int8 rows up to 4e-3 where a re-rounded activation
# moves a quantization step), inside every golden tolerance. BENCHMARKS.md, issue 20 hand notes.
_DISABLED_ORT_OPTIMIZERS = ("SkipLayerNormFusion",)
_BUCKET_SIGNATURE = re.compile(r"^len_(\d+)$")


def bucket_signature(length: int) -> str:
    """The TFLite signature name of the sequence-length bucket ``length``: ``len_{length}``."""
    return f"len_{length}"


def dequantize_logits(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8 logits of a full-integer model as float32: ``scale * (q - zero_point)``, computed in
    float32 (the Android app's ``QuantizedLogits`` does the same arithmetic and must equal this)."""
    return (np.asarray(values).astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


class Backend(Protocol):
    """A loaded model that maps named int64 arrays to float32 logits.

    Attributes:
        input_names: Inputs as the model file declares them.
        fixed_length: Longest sequence length the model takes, or ``None`` if dynamic.
        buckets: Every sequence length the model takes, ascending (its last is
            ``fixed_length``); empty if the sequence axis is dynamic.
    """

    input_names: tuple[str, ...]
    input_dtypes: Mapping[str, Any]
    """Each input's integer dtype as the model takes it (feeds of another dtype are converted)."""
    fixed_length: int | None
    buckets: tuple[int, ...]

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """Runs the model; returns float32 logits of shape ``[batch, num_labels]``."""
        ...


def session_options(threads: int) -> Any:
    """The ONNX Runtime session options every ONNX bundle runs with: ``threads`` intra-op threads,
    one inter-op, sequential execution, errors-only logging, and the load-time fusions in
    ``_DISABLED_ORT_OPTIMIZERS`` off (measured slower on the kit's models).

    Raises:
        BackendUnavailableError: onnxruntime is not installed.
        InputError: ``threads`` is not a positive int.
    """
    ort = _import("onnxruntime", "onnx")
    _check_threads(threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only; warnings about initializers are noise
    options.add_session_config_entry("optimization.disable_specified_optimizers", ",".join(_DISABLED_ORT_OPTIMIZERS))
    return options


class OnnxBackend:
    """ONNX Runtime (CPU) backend; the session is built once.

    ``run`` is safe to call from several threads: ``InferenceSession.run`` is thread-safe.

    Args:
        path: The ``.onnx`` file.
        threads: Intra-op threads (inter-op is 1, execution sequential).

    Raises:
        BackendUnavailableError: onnxruntime is not installed.
        BundleError: The file is not a loadable ONNX model, or its inputs are not
            ``[batch, seq]`` integer tensors.
    """

    def __init__(self, path: Path, threads: int = 1) -> None:
        options = session_options(threads)  # imports onnxruntime and checks threads
        ort = _import("onnxruntime", "onnx")
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises several unrelated exception types
            raise BundleError(f"cannot load ONNX model {path}: {exc}; re-export the bundle") from exc
        inputs = self._session.get_inputs()
        self.input_names: tuple[str, ...] = tuple(i.name for i in inputs)
        dtypes: dict[str, Any] = {}
        lengths = set()
        for i in inputs:
            if i.type not in _ORT_DTYPES or len(i.shape) != 2:
                raise BundleError(
                    f"ONNX model {path} input {i.name!r} is {i.type} {i.shape}; expected an "
                    "int64/int32 tensor of shape [batch, seq]"
                )
            dtypes[i.name] = _ORT_DTYPES[i.type]
            lengths.add(i.shape[1] if isinstance(i.shape[1], int) else None)
        self.input_dtypes: Mapping[str, Any] = dtypes
        self.fixed_length: int | None = lengths.pop() if len(lengths) == 1 else None
        self.buckets: tuple[int, ...] = (self.fixed_length,) if self.fixed_length else ()
        outputs = [o.name for o in self._session.get_outputs()]
        self._output = "logits" if "logits" in outputs else outputs[0]

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """Runs the model on a batch.

        Args:
            feeds: Arrays ``[batch, seq]`` keyed by input name; extra keys are ignored.

        Returns:
            float32 logits ``[batch, num_labels]``.

        Raises:
            InputError: An input the model takes is missing, or the arrays disagree in shape.
        """
        arrays = _select_feeds(feeds, self.input_names, self.input_dtypes)
        (logits,) = self._session.run([self._output], arrays)
        return np.asarray(logits, dtype=np.float32)


class TfliteBackend:
    """LiteRT (TFLite) backend through the model's signature runners, built once.

    Models converted by litert-torch have a fixed ``[1, seq]`` input shape per signature, so
    ``run`` invokes the model once per row (per chunk of the model's batch size) and
    concatenates. A model with signatures ``len_{n}`` takes each of those lengths (its
    buckets); any other model must have ``serving_default`` or exactly one signature.
    A LiteRT interpreter is not thread-safe; ``run`` holds a lock, so concurrent calls are
    safe but serialised. Use one backend per thread for parallel inference.

    Args:
        path: The ``.tflite`` file.
        threads: Interpreter threads.

    Raises:
        BackendUnavailableError: ai-edge-litert is not installed.
        BundleError: The file is not a loadable model, has no usable signature, more than
            one output, inputs that are not ``[batch, seq]``, or signatures that disagree.
    """

    def __init__(self, path: Path, threads: int = 1) -> None:
        interpreter_module = _import("ai_edge_litert.interpreter", "tflite")
        _check_threads(threads)
        try:
            interpreter = interpreter_module.Interpreter(model_path=str(path), num_threads=threads)
            signatures = interpreter.get_signature_list()
        except (ValueError, RuntimeError) as exc:
            raise BundleError(f"cannot load TFLite model {path}: {exc}; re-export the bundle") from exc
        buckets = {k: int(m.group(1)) for k in signatures if (m := _BUCKET_SIGNATURE.match(k))}
        keys = sorted(buckets, key=buckets.__getitem__) if buckets else [_pick_signature(signatures, path)]
        self._interpreter = interpreter  # the runners need it alive
        self._runners: dict[int, _Signature] = {}
        self.input_names: tuple[str, ...] = tuple(signatures[keys[0]]["inputs"])
        for key in keys:
            sig = _Signature(interpreter.get_signature_runner(key), path, key)
            first = next(iter(self._runners.values()), sig)
            if tuple(signatures[key]["inputs"]) != self.input_names or sig.dtypes != first.dtypes:
                raise BundleError(
                    f"TFLite model {path} signature {key!r} takes {sig.dtypes}, but {keys[0]!r} takes "
                    f"{first.dtypes}; every bucket must take the same inputs"
                )
            if key in buckets and sig.seq != buckets[key]:
                raise BundleError(f"TFLite model {path} signature {key!r} takes sequences of {sig.seq} tokens")
            self._runners[sig.seq] = sig
        self.buckets: tuple[int, ...] = tuple(sorted(self._runners)) if all(s > 0 for s in self._runners) else ()
        self.fixed_length: int | None = self.buckets[-1] if self.buckets else None
        self.input_dtypes: Mapping[str, Any] = next(iter(self._runners.values())).dtypes
        self._num_labels = next(iter(self._runners.values())).num_labels
        self._lock = threading.Lock()

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """Runs the model on a batch, one invoke per model-batch chunk.

        Args:
            feeds: Arrays ``[batch, seq]`` keyed by input name; extra keys are ignored.

        Returns:
            float32 logits ``[batch, num_labels]``.

        Raises:
            InputError: An input is missing, shapes disagree, or ``seq`` is not one of the
                model's sequence lengths.
        """
        arrays = _select_feeds(feeds, self.input_names, self.input_dtypes)
        rows, seq = next(iter(arrays.values())).shape
        sig = self._runners.get(seq) if self.buckets else next(iter(self._runners.values()))
        if sig is None:
            lengths = " or ".join(str(b) for b in self.buckets)
            hint = "pad to manifest.fixed_length" if len(self.buckets) == 1 else "pad to the smallest that fits"
            raise InputError(f"this TFLite model takes sequences of exactly {lengths} tokens, got {seq}; {hint}")
        step = sig.batch or max(rows, 1)
        chunks = []
        with self._lock:
            for start in range(0, rows, step):
                chunk = {k: _pad_rows(v[start : start + step], step) for k, v in arrays.items()}
                out = sig(chunk)
                if sig.dequantize is not None:
                    logits = dequantize_logits(out, *sig.dequantize)
                else:
                    logits = np.asarray(out, dtype=np.float32)
                chunks.append(logits[: min(step, rows - start)])
        if not chunks:
            return np.zeros((0, self._num_labels), dtype=np.float32)
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=0)


class _Signature:
    """One signature runner with its shape: ``batch`` None when dynamic, ``seq`` -1 when dynamic.

    Calling it runs one chunk. A signature of fixed shape (every bucket litert-torch writes) is
    run straight through the interpreter's tensor calls (set inputs, invoke, read the output),
    skipping what LiteRT's ``SignatureRunner.__call__`` redoes per call for shapes that never
    change: one resize per input and an ``AllocateTensors`` (~20 µs of Python per text, 2-3 % of
    a 3-layer int8 student; issue 20). ``direct`` says whether that path is taken; LiteRT
    versions without the runner's internals it needs, and dynamic shapes, use the runner.
    """

    def __init__(self, runner: Any, path: Path, key: str) -> None:
        details = runner.get_input_details()
        outputs = runner.get_output_details()
        if len(outputs) != 1:
            raise BundleError(
                f"TFLite model {path} signature {key!r} has outputs {sorted(outputs)}; "
                "expected exactly one (the logits)"
            )
        shapes = {tuple(int(d) for d in d["shape_signature"]) for d in details.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise BundleError(f"TFLite model {path} inputs have shapes {sorted(shapes)}; expected one [batch, seq]")
        batch, self.seq = shapes.pop()
        self.batch: int | None = batch if batch > 0 else None
        self.runner = runner
        self.dtypes = {name: d["dtype"] for name, d in details.items()}
        output = next(iter(outputs.values()))
        self.num_labels = int(output["shape"][-1])
        # Full-integer models may return int8 logits: real = scale * (q - zero_point).
        scale, zero_point = output.get("quantization", (0.0, 0))
        if np.issubdtype(output["dtype"], np.integer) and not scale:
            raise BundleError(
                f"TFLite model {path} signature {key!r} returns {output['dtype'].__name__} logits "
                "without a quantization scale; re-export the bundle"
            )
        self.dequantize: tuple[float, int] | None = (float(scale), int(zero_point)) if scale else None
        self.direct = False
        wrapper: Any = getattr(runner, "_interpreter_wrapper", None)
        inputs = getattr(runner, "_inputs", None)
        output_indices = [index for _, index in getattr(runner, "_outputs", ())]
        subgraph = getattr(runner, "_subgraph_index", None)
        if (
            self.batch is not None
            and self.seq > 0
            and isinstance(inputs, Mapping)
            and set(inputs) == set(self.dtypes)
            and len(output_indices) == 1
            and isinstance(subgraph, int)
            and all(hasattr(wrapper, m) for m in ("SetTensor", "Invoke", "GetTensor", "AllocateTensors"))
        ):
            wrapper.AllocateTensors(subgraph)  # fixed shapes: once, not per call
            self._wrapper, self._subgraph = wrapper, subgraph
            self._input_indices = [(name, int(inputs[name])) for name in self.dtypes]
            self._output_index = int(output_indices[0])
            self.direct = True

    def __call__(self, chunk: Mapping[str, np.ndarray]) -> np.ndarray:
        """The raw output for one chunk of the signature's shape (a fresh array: GetTensor copies)."""
        if not self.direct:
            return np.asarray(next(iter(self.runner(**chunk).values())))
        wrapper, subgraph = self._wrapper, self._subgraph
        for name, index in self._input_indices:
            wrapper.SetTensor(index, chunk[name], subgraph)
        wrapper.Invoke(subgraph)
        return np.asarray(wrapper.GetTensor(self._output_index, subgraph))


def open_backend(path: Path, threads: int = 1) -> Backend:
    """Opens a model file with the backend its suffix names.

    Args:
        path: A ``.onnx`` or ``.tflite`` file.
        threads: Inference threads.

    Returns:
        The loaded backend.

    Raises:
        BundleError: Unknown suffix, or the model cannot be loaded.
        BackendUnavailableError: The engine for this suffix is not installed.
    """
    path = Path(path)
    if path.suffix == ".onnx":
        return OnnxBackend(path, threads)
    if path.suffix == ".tflite":
        return TfliteBackend(path, threads)
    raise BundleError(f"cannot open model {path}: unknown suffix {path.suffix!r}; expected .onnx or .tflite")


def _import(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"{module.split('.')[0]} is not installed, and this bundle needs it: pip install 'bert-mobile-kit[{extra}]'"
        ) from exc


def _check_threads(threads: int) -> None:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InputError(f"threads must be a positive int, got {threads!r}")


def _pick_signature(signatures: Mapping[str, Any], path: Path) -> str:
    if "serving_default" in signatures:
        return "serving_default"
    if len(signatures) == 1:
        return next(iter(signatures))
    raise BundleError(
        f"TFLite model {path} has signatures {sorted(signatures) or 'none'}; expected 'serving_default' "
        "or exactly one (convert with litert_torch.convert(..., sample_kwargs=...))"
    )


def _select_feeds(
    feeds: Mapping[str, np.ndarray], names: tuple[str, ...], dtypes: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    missing = [n for n in names if n not in feeds]
    if missing:
        raise InputError(
            f"missing model input(s) {', '.join(missing)}; the model takes {', '.join(names)}, "
            f"got {', '.join(sorted(feeds)) or 'nothing'}"
        )
    arrays = {n: np.ascontiguousarray(feeds[n], dtype=dtypes[n]) for n in names}
    shapes = {n: a.shape for n, a in arrays.items()}
    if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 2:
        raise InputError(f"model inputs must all be [batch, seq] of one shape, got {shapes}")
    return arrays


def _pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    missing = rows - array.shape[0]
    if missing <= 0:
        return array
    return np.concatenate([array, np.repeat(array[-1:], missing, axis=0)], axis=0)

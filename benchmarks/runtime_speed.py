"""Per-text speed of the kit's bundles against the best peers, side by side in one run, into BENCHMARKS.md.

    .venv/bin/python benchmarks/runtime_speed.py --run-dir OUT [--n 872] [--rounds 3]

OUT is a ``python -m export`` output directory (models/teacher, models/student, bundles/,
report.json). The texts are that run's eval split, rebuilt from the run's own data config and
seed (for ``examples/sst2.toml``: whole SST-2 sentences held out from training), so accuracy is
measured on the same rows as speed. Every text is classified one at a time (batch 1,
tokenization included), as an app does, by:

- the run's teacher in PyTorch eager fp32 (transformers tokenizer + model + softmax);
- the peers a user would otherwise glue together from the same teacher: Optimum's ONNX export
  (fp32) and Optimum's ORTQuantizer dynamic int8 (``AutoQuantizationConfig`` for this CPU's
  ISA, per-channel), run through ``ORTModelForSequenceClassification``;
- every bundle of the run through ``runtime.TextClassifier``, at 1 and 2 threads.

Paths take turns for ``--rounds`` rounds and each reports its fastest round, so a burst of load
on a shared machine does not land on one path only. Printed next to every figure: the CPU's
vector ISA, and each path's compute floor — its encoder's multiply-adds at each text's length
over one core's peak multiply-adds per cycle for the precision it computes in (a bound no
kernel reaches: it ignores memory, softmax, LayerNorm and the widening adds int8 needs) — and
the same encoder's weight matmuls timed alone through ONNX Runtime's kernels for this CPU
(:class:`GemmTimer`; TFLite rows: :class:`TfliteFcTimer`), the floor a real kernel reaches; and,
for the best bundle, the time one core takes to read its int8 weights once (at batch 1 the bound
that binds). The summary under the table checks issue
20's done-when: the fastest int8 student within 1 point of the teacher against Optimum's int8
(≥ 3×), its model time against the floor (≤ 2×), and every bundle of ≤ 10 MB against the fp32
student of its own run (within 1 point), each marked met / not met.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_md import publish

os.environ.setdefault("USE_TF", "0")

import numpy as np

from export.convert.onnx_rows import computes_first_token_only
from export.report.machine import CpuInfo, cpu_core, cpu_info, machine
from runtime import TextClassifier, load_manifest
from runtime.tokenizer import BundleTokenizer

BEGIN, END = "<!-- runtime-speed:begin -->", "<!-- runtime-speed:end -->"


@dataclass(frozen=True)
class Peak:
    """One core's multiply-adds per cycle for fp32 and int8, and why."""

    fp32: int
    int8: int
    how: str


def core_peak(cpu: CpuInfo) -> Peak:
    """Peak multiply-adds per cycle of one core, from its ISA and, where the ISA alone misleads,
    its core generation (x86; anything else: AVX2-like). ``benchmarks/simd_rate.c`` measures the
    instruction rates these rest on."""
    flags = cpu.flags
    if "amx_int8" in flags:
        return Peak(32, 1024, "AMX: 1024 int8 MAC/cycle (tile unit); fp32 2 AVX-512 FMA units")
    if "avx512_vnni" in flags and cpu.vendor == "AuthenticAMD":
        return Peak(16, 64, "Zen 4 AVX-512 double-pumped: 2×256-bit FMA (16 fp32 MAC), VPDPBUSD 64 int8 MAC/cycle")
    if "avx512_vnni" in flags:
        return Peak(32, 128, "2 AVX-512 units: 32 fp32 MAC, 2 VPDPBUSD × 64 = 128 int8 MAC/cycle")
    if "avx_vnni" in flags:
        return Peak(16, 64, "AVX-VNNI: 2 FMA × 8 fp32, 2 VPDPBUSD × 32 = 64 int8 MAC/cycle")
    if cpu_core(cpu) == "Zen 2":
        return Peak(
            16,
            32,
            "Zen 2 AVX2: 2 FMA × 8 = 16 fp32 MAC/cycle; one vector-integer-multiply pipe, VPMADDUBSW "
            "1/cycle × 32 = 32 int8 MAC/cycle (benchmarks/simd_rate.c: half the FMA rate; the VPMADDWD "
            "that widens its sums to int32 shares that pipe, so kernels reach ~half)",
        )
    return Peak(
        16,
        64,
        "AVX2: 2 FMA × 8 = 16 fp32 MAC/cycle; 2 VPMADDUBSW × 32 = 64 int8 MAC/cycle "
        "(u8×s8 pairs; the VPMADDWD that widens them to int32 competes for the same ports, so kernels reach ~half)",
    )


def encoder_weights(cfg: dict) -> int:
    """Weights of the encoder's matmuls (4 projections + 2 FFN per layer): the bytes an int8 model
    reads per forward pass whatever the length."""
    h = cfg.get("hidden_size") or cfg["dim"]
    ffn = cfg.get("intermediate_size") or cfg["hidden_dim"]
    layers = cfg.get("num_hidden_layers") or cfg["n_layers"]
    return layers * (4 * h * h + 2 * h * ffn)


def read_gbps(size: int, reps: int = 50) -> float:
    """One core's rate of reading a ``size``-byte buffer that was just read (as an encoder's weights
    are, text after text): numpy's float64 sum, fastest of ``reps``, in GB/s."""
    buffer = np.random.default_rng(0).standard_normal(max(size // 8, 1))
    best = float("inf")
    for _ in range(reps):
        began = time.perf_counter()
        buffer.sum()
        best = min(best, time.perf_counter() - began)
    return buffer.nbytes / best / 1e9


def encoder_macs(cfg: dict, seq: int, first_token: bool = False) -> float:
    """Multiply-adds of one forward pass at ``seq`` tokens: projections, FFN, attention scores (no
    embeddings). ``first_token``: the graph computes its last layer for the first token only
    (``onnx.first_token_only``): that layer's key and value projections over every token, its
    query, attention, output projection and FFN over one row."""
    h = cfg.get("hidden_size") or cfg["dim"]
    ffn = cfg.get("intermediate_size") or cfg["hidden_dim"]
    layers = cfg.get("num_hidden_layers") or cfg["n_layers"]
    per_layer = seq * (4 * h * h + 2 * h * ffn) + 2 * seq * seq * h
    last = seq * 2 * h * h + (2 * h * h + 2 * h * ffn) + 2 * seq * h if first_token else per_layer
    return float((layers - 1) * per_layer + last + h * h + 2 * h)


class GemmTimer:
    """Times an encoder's weight matmuls alone through ONNX Runtime's own kernels (MLAS picks the
    best this CPU has: AMX, VNNI or AVX2 for ``MatMulInteger``; its fp32 SGEMM for ``MatMul``), at
    each text's length, one matmul per call. What a model could take if everything but its weight
    GEMMs were free: the measured counterpart of the ISA's peak in :func:`core_peak`."""

    def __init__(self, reps: int = 30) -> None:
        self._reps = reps
        self._sessions: dict[tuple[int, int, bool, int], object] = {}
        self._times: dict[tuple[int, int, int, bool, int], float] = {}

    def _session(self, k: int, n: int, int8: bool, threads: int) -> object:
        import onnxruntime as ort  # noqa: PLC0415 - the peers' stack; bundles have it anyway
        from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415 - as above

        from runtime.backends import session_options  # noqa: PLC0415 - the options bundles run with

        key = (k, n, int8, threads)
        if key not in self._sessions:
            rng = np.random.default_rng(0)
            weight = rng.integers(-127, 128, (k, n)).astype(np.int8) if int8 else rng.standard_normal((k, n))
            op, a_type = ("MatMulInteger", TensorProto.UINT8) if int8 else ("MatMul", TensorProto.FLOAT)
            y_type = TensorProto.INT32 if int8 else TensorProto.FLOAT
            graph = helper.make_graph(
                [helper.make_node(op, ["a", "w"], ["y"])],
                "gemm",
                [helper.make_tensor_value_info("a", a_type, ["m", k])],
                [helper.make_tensor_value_info("y", y_type, ["m", n])],
                [numpy_helper.from_array(weight if int8 else weight.astype(np.float32), "w")],
            )
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
            model.ir_version = 8
            self._sessions[key] = ort.InferenceSession(
                model.SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"]
            )
        return self._sessions[key]

    def matmul_ms(self, m: int, k: int, n: int, int8: bool, threads: int) -> float:
        """Fastest of ``reps`` calls of one ``[m, k] x [k, n]`` matmul, in ms."""
        key = (m, k, n, int8, threads)
        if key not in self._times:
            session = self._session(k, n, int8, threads)
            a = (
                np.random.default_rng(m).integers(0, 256, (m, k)).astype(np.uint8)
                if int8
                else np.random.default_rng(m).standard_normal((m, k)).astype(np.float32)
            )
            best = float("inf")
            for _ in range(self._reps):
                began = time.perf_counter()
                session.run(None, {"a": a})  # type: ignore[attr-defined]
                best = min(best, time.perf_counter() - began)
            self._times[key] = best * 1e3
        return self._times[key]

    def proven_mhz(self, peak: Peak, size: int = 512) -> tuple[float, str]:
        """The lowest clock that the measured kernels prove: one ``size``³ matmul at 1 thread, fp32
        and int8, each rate over its peak per cycle in :func:`core_peak`. A core that turbos above
        the clock /proc/cpuinfo reports (a VM often shows the nominal one) runs more cycles per
        second; a floor at the nominal clock would then be beaten by plain GEMMs and flatter every
        ratio against it."""
        best, how = 0.0, ""
        for int8, per_cycle in ((False, peak.fp32), (True, peak.int8)):
            rate = size**3 / (self.matmul_ms(size, size, size, int8, 1) * 1e-3)
            if rate / per_cycle / 1e6 > best:
                best = rate / per_cycle / 1e6
                how = (
                    f"{'int8 MatMulInteger' if int8 else 'fp32 MatMul'} {size}³ at 1 thread: "
                    f"{rate / 1e9:.1f} G MAC/s = {per_cycle} MAC/cycle at {best:.0f} MHz"
                )
        return best, how

    def encoder_ms(
        self, cfg: dict, lengths: Sequence[int], int8: bool, threads: int, first_token: bool = False
    ) -> float:
        """Mean over ``lengths`` of one forward pass's weight matmuls (4 projections and 2 FFN per
        layer); ``first_token`` as in :func:`encoder_macs` (the last layer's Q, O and FFN on one row)."""
        h = cfg.get("hidden_size") or cfg["dim"]
        ffn = cfg.get("intermediate_size") or cfg["hidden_dim"]
        layers = cfg.get("num_hidden_layers") or cfg["n_layers"]

        def layer(kv: int, rest: int) -> float:
            return (
                2 * self.matmul_ms(kv, h, h, int8, threads)
                + 2 * self.matmul_ms(rest, h, h, int8, threads)
                + self.matmul_ms(rest, h, ffn, int8, threads)
                + self.matmul_ms(rest, ffn, h, int8, threads)
            )

        per_text = [(layers - 1) * layer(m, m) + layer(m, 1 if first_token else m) for m in lengths]
        return float(np.mean(per_text))


class TfliteFcTimer:
    """Times an encoder's weight matmuls alone as a TFLite bundle runs them: the encoder's
    FULLY_CONNECTED layers (4 projections + 2 FFN per layer, random weights) chained in one graph,
    converted by litert-torch and, for int8-dynamic, quantized by the kit's own
    :func:`quantize.tflite.quantize_tflite` (per-channel int8 weights, activations quantized per
    call), run through LiteRT's XNNPACK delegate at each text's bucket length (the padded length
    the bundle runs it at); fastest of ``reps`` invokes. A TFLite bundle's model time over this is
    what its other ops (attention, softmax, LayerNorm, GELU, reshapes) and their dispatch cost."""

    def __init__(self, work: Path, reps: int = 30) -> None:
        self._work, self._reps = work, reps
        self._times: dict[tuple[int, int, int, int, bool, int], float] = {}

    def _time(self, h: int, ffn: int, layers: int, seq: int, int8: bool, threads: int, first: bool = False) -> float:
        key = (h, ffn, layers, seq, int8, threads, first)
        if key in self._times:
            return self._times[key]
        import contextlib  # noqa: PLC0415 - only this timer converts models
        import io  # noqa: PLC0415 - as above

        import litert_torch  # noqa: PLC0415 - as above
        import torch  # noqa: PLC0415 - as above
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 - as above

        from quantize.modes import TfliteQuant  # noqa: PLC0415 - as above
        from quantize.tflite import quantize_tflite  # noqa: PLC0415 - as above

        torch.manual_seed(0)
        shapes = [(h, h)] * 4 + [(h, ffn), (ffn, h)]
        full = layers - 1 if first else layers
        chain = torch.nn.Sequential(*(torch.nn.Linear(i, o) for _ in range(full) for i, o in shapes)).eval()
        module = chain
        if first:  # the last layer: K and V over every row, Q, O and the FFN over the first only
            module = _first_token_last(chain, h, ffn).eval()
        fp32 = self._work / f"fc-{h}-{ffn}-{layers}-{seq}-{int(first)}.tflite"
        if not fp32.exists():
            with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
                fp32.write_bytes(bytes(litert_torch.convert(module, (torch.zeros(1, seq, h),)).model_content()))
        path = fp32
        if int8:
            path = fp32.with_suffix(".int8.tflite")
            if not path.exists():
                quantize_tflite(fp32, path, TfliteQuant.DYNAMIC_INT8)
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
        (inp,) = interpreter.get_input_details()
        interpreter.set_tensor(inp["index"], np.random.default_rng(seq).standard_normal((1, seq, h)).astype(np.float32))
        for _ in range(5):
            interpreter.invoke()
        best = float("inf")
        for _ in range(self._reps):
            began = time.perf_counter()
            interpreter.invoke()
            best = min(best, time.perf_counter() - began)
        self._times[key] = best * 1e3
        return self._times[key]

    def encoder_ms(
        self,
        cfg: dict,
        lengths: Sequence[int],
        buckets: Sequence[int],
        int8: bool,
        threads: int,
        first_token: bool = False,
    ) -> float:
        """Mean over ``lengths`` of the FC chain at the smallest of ``buckets`` that holds each length;
        ``first_token``: the last layer's Q, O and FFN on one row (as :func:`encoder_macs`)."""
        h = cfg.get("hidden_size") or cfg["dim"]
        ffn = cfg.get("intermediate_size") or cfg["hidden_dim"]
        layers = cfg.get("num_hidden_layers") or cfg["n_layers"]
        widths = [next((b for b in buckets if b >= n), buckets[-1]) for n in lengths]
        return float(np.mean([self._time(h, ffn, layers, w, int8, threads, first_token) for w in widths]))


def _first_token_last(chain: Any, h: int, ffn: int) -> Any:
    """An FC chain, then a last layer as a first-token graph runs it: K and V on every row, Q, O and
    the two FFN matrices on the first row only."""
    import torch  # noqa: PLC0415 - only the TFLite timer builds it

    class FirstTokenLast(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.chain = chain
            self.kv = torch.nn.ModuleList(torch.nn.Linear(h, h) for _ in range(2))
            self.rest = torch.nn.Sequential(
                torch.nn.Linear(h, h), torch.nn.Linear(h, h), torch.nn.Linear(h, ffn), torch.nn.Linear(ffn, h)
            )

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            y = self.chain(x)
            return (*(kv(y) for kv in self.kv), self.rest(y[:, :1]))

    return FirstTokenLast()


@dataclass
class Row:
    """One path's fastest round."""

    name: str
    kind: str
    precision: str
    threads: int
    config: dict
    size_mb: float
    mean_ms: float = float("inf")
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    model_ms: float = 0.0
    accuracy: float = 0.0
    buckets: tuple[int, ...] = ()  # a TFLite bundle's sequence lengths
    first_token: bool = False  # an ONNX graph whose last layer runs on the first token only
    round_model_ms: list[float] = field(default_factory=list)  # mean model time of every round
    lengths: tuple[int, ...] = ()  # per text, the tokens this path runs (its own tokenizer, truncation)


def first_token_graph(path: Path, backend: str, cfg: dict) -> bool:
    """Whether a bundle's model computes its last layer for the first token only: an ONNX graph
    with the rewrite's first-row Slices; a TFLite graph with a ``[1, 1, hidden]`` tensor (every-row
    graphs have the bucket's length there)."""
    if backend == "onnx":
        return computes_first_token_only(path)
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 - TFLite bundles only

    h = cfg.get("hidden_size") or cfg["dim"]
    return any(tuple(d["shape"]) == (1, 1, h) for d in Interpreter(model_path=str(path)).get_tensor_details())


Runner = Callable[[str], tuple[int, float]]
"""Classifies one text; returns (label index, seconds inside the model)."""


def eval_split(run_dir: Path) -> tuple[list[str], list[int], tuple[str, ...]]:
    """The run's eval texts and label indices, rebuilt from report.json's data config and seed."""
    from export.config import load_config  # noqa: PLC0415 - export is only needed to rebuild the split
    from export.data.dataset import load_data  # noqa: PLC0415 - as above

    saved = json.loads((run_dir / "report.json").read_text())["config"]
    overrides = [f"seed={saved['seed']}"]
    for key, value in saved["data"].items():
        if value is not None:
            overrides.append(f"data.{key}={value}")
    cfg = load_config(None, overrides)
    data = load_data(cfg.data, cfg.seed)
    return list(data.eval.texts), [int(y) for y in data.eval.labels], tuple(data.label_names)


def teacher_lengths(model_dir: Path, texts: Sequence[str], max_length: int) -> tuple[int, ...]:
    """Per text, the tokens the teacher paths run: its tokenizer, truncated at the run's
    ``max_length`` as :func:`teacher_runner` and the Optimum runners truncate."""
    from transformers import AutoTokenizer  # noqa: PLC0415 - the teacher paths' own tokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    return tuple(len(tok(t, truncation=True, max_length=max_length)["input_ids"]) for t in texts)


def bundle_lengths(bundle: Path, texts: Sequence[str]) -> tuple[int, ...]:
    """Per text, the tokens a bundle runs: its own tokenizer (a trimmed vocabulary splits words
    differently), truncated at its ``max_length`` (unpadded: a bucket's padding is not counted). The
    files' checksums are left to :meth:`TextClassifier.load`, which checks them anyway."""
    manifest = load_manifest(bundle, verify_files=False)
    tokenizer = BundleTokenizer(bundle / manifest.tokenizer_file, manifest.max_length)
    return tuple(int(n) for n in tokenizer.encode(texts, pad_to=None).attention_mask.sum(axis=1))


def teacher_runner(model_dir: Path, max_length: int) -> Runner:
    import torch  # noqa: PLC0415 - only the PyTorch row needs torch; bundles run without it
    from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: PLC0415 - as torch

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()

    def run(text: str) -> tuple[int, float]:
        with torch.inference_mode():
            enc = tok(text, truncation=True, max_length=max_length, return_tensors="pt")
            began = time.perf_counter()
            logits = model(**enc).logits
            inside = time.perf_counter() - began
            probs = torch.softmax(logits, -1)[0]
        return int(probs.argmax()), inside

    return run


def optimum_runners(teacher_dir: Path, work: Path, max_length: int, flags: frozenset[str]) -> dict[str, Runner]:
    """Optimum's ONNX export of the teacher and its ORTQuantizer dynamic int8, each as a runner (1 thread)."""
    import onnxruntime as ort  # noqa: PLC0415 - the peers' own stack
    import torch  # noqa: PLC0415 - ORTModel returns torch tensors
    from optimum.onnxruntime import ORTModelForSequenceClassification, ORTQuantizer  # noqa: PLC0415 - peer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig  # noqa: PLC0415 - peer
    from transformers import AutoTokenizer  # noqa: PLC0415 - peer

    fp32_dir, int8_dir = work / "optimum-fp32", work / "optimum-int8"
    ORTModelForSequenceClassification.from_pretrained(teacher_dir, export=True).save_pretrained(fp32_dir)
    AutoTokenizer.from_pretrained(teacher_dir).save_pretrained(fp32_dir)
    vnni = "avx512_vnni" in flags
    qcfg = (AutoQuantizationConfig.avx512_vnni if vnni else AutoQuantizationConfig.avx2)(
        is_static=False, per_channel=True
    )
    ORTQuantizer.from_pretrained(fp32_dir).quantize(quantization_config=qcfg, save_dir=int8_dir)
    AutoTokenizer.from_pretrained(teacher_dir).save_pretrained(int8_dir)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    runners = {}
    for name, folder, file in (
        ("optimum-onnx-fp32", fp32_dir, "model.onnx"),
        ("optimum-onnx-int8-dynamic", int8_dir, "model_quantized.onnx"),
    ):
        model = ORTModelForSequenceClassification.from_pretrained(folder, file_name=file, session_options=options)
        tok = AutoTokenizer.from_pretrained(folder)

        def run(text: str, model: object = model, tok: object = tok) -> tuple[int, float]:
            enc = tok(text, truncation=True, max_length=max_length, return_tensors="pt")  # type: ignore[operator]
            began = time.perf_counter()
            logits = model(**enc).logits  # type: ignore[operator]
            inside = time.perf_counter() - began
            return int(torch.softmax(logits, -1)[0].argmax()), inside

        runners[name] = run
    return runners


def bundle_runner(clf: TextClassifier) -> Runner:
    labels = clf.manifest.labels

    def run(text: str) -> tuple[int, float]:
        inside: list[float] = []
        prediction = clf._predict([text], 1, inside)[0]  # noqa: SLF001 - the runtime's own timed path
        return labels.index(prediction.label), sum(inside)

    return run


def time_round(run: Runner, texts: Sequence[str], truth: Sequence[int]) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-text total and in-model seconds and accuracy of one pass over ``texts`` (5 warm-up calls first)."""
    for text in texts[:5]:
        run(text)
    totals, models, right = np.empty(len(texts)), np.empty(len(texts)), 0
    for i, (text, y) in enumerate(zip(texts, truth, strict=True)):
        began = time.perf_counter()
        label, inside = run(text)
        totals[i] = time.perf_counter() - began
        models[i] = inside
        right += label == y
    return totals * 1e3, models * 1e3, right / len(texts)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", type=Path, required=True, help="output directory of python -m export")
    p.add_argument("--n", type=int, default=872, help="eval texts to time (the first n of the split)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--more",
        type=Path,
        nargs="+",
        action="extend",
        default=[],
        help="other runs' output directories (same data and teacher): their student bundles join the table, "
        "named after the run",
    )
    p.add_argument("--no-peers", action="store_true", help="skip the Optimum rows")
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = p.parse_args()
    run_dir: Path = args.run_dir
    cpu = cpu_info()
    peak = core_peak(cpu)
    texts, truth, label_names = eval_split(run_dir)
    texts, truth = texts[: args.n], truth[: args.n]
    teacher_cfg = json.loads((run_dir / "models" / "teacher" / "config.json").read_text())
    max_length = json.loads((run_dir / "report.json").read_text())["config"]["data"]["max_length"]
    teacher_labels = [teacher_cfg["id2label"][str(i)] for i in range(len(teacher_cfg["id2label"]))]
    if [str(x) for x in teacher_labels] != [str(x) for x in label_names]:
        print(f"note: teacher labels {teacher_labels} vs data labels {label_names}", file=sys.stderr)

    def size_mb(paths: Sequence[Path]) -> float:
        return sum(f.stat().st_size for d in paths for f in d.iterdir() if f.is_file()) / 1e6

    rows: list[tuple[Row, Runner]] = []
    teacher_dir = run_dir / "models" / "teacher"
    teacher_tokens = teacher_lengths(teacher_dir, texts, max_length)
    weights = [f for f in teacher_dir.iterdir() if f.suffix in (".safetensors", ".bin")]
    rows.append(
        (
            Row(
                "teacher (PyTorch eager)",
                "pytorch",
                "fp32",
                1,
                teacher_cfg,
                sum(f.stat().st_size for f in weights) / 1e6,
                lengths=teacher_tokens,
            ),
            teacher_runner(teacher_dir, max_length),
        )
    )
    work = Path(tempfile.mkdtemp(prefix="runtime-speed-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # exports of 100+ MB: never left in /tmp
    if not args.no_peers:
        for name, runner in optimum_runners(teacher_dir, work, max_length, cpu.flags).items():
            folder = work / ("optimum-fp32" if "fp32" in name else "optimum-int8")
            model_file = folder / ("model.onnx" if "fp32" in name else "model_quantized.onnx")
            precision = "fp32" if "fp32" in name else "int8-dynamic"
            size = model_file.stat().st_size / 1e6
            rows.append((Row(name, "optimum", precision, 1, teacher_cfg, size, lengths=teacher_tokens), runner))
    for source in (run_dir, *args.more):
        # A run is named after its folder (or the folder above a plain "out").
        named = source.resolve()
        prefix = "" if source == run_dir else f"{named.parent.name if named.name == 'out' else named.name}/"
        for bundle in sorted(d for d in (source / "bundles").iterdir() if (d / "manifest.json").is_file()):
            if prefix and bundle.name.startswith("teacher"):
                continue
            cfg_dir = source / "models" / ("teacher" if bundle.name.startswith("teacher") else "student")
            cfg = json.loads((cfg_dir / "config.json").read_text())
            tokens = bundle_lengths(bundle, texts)
            for threads in (1, 2):
                clf = TextClassifier.load(bundle, threads=threads)
                m = clf.manifest
                row = Row(prefix + bundle.name, m.backend, m.precision, threads, cfg, size_mb([bundle]))
                row.buckets = tuple(m.buckets) or ((m.fixed_length,) if m.fixed_length else ())
                row.first_token = first_token_graph(bundle / m.model_file, m.backend, cfg)
                row.lengths = tokens
                rows.append((row, bundle_runner(clf)))
    for _ in range(args.rounds):
        for row, runner in rows:
            totals, models, acc = time_round(runner, texts, truth)
            row.round_model_ms.append(float(models.mean()))
            if totals.mean() < row.mean_ms:
                row.mean_ms, row.model_ms = float(totals.mean()), float(models.mean())
                row.p50_ms, row.p90_ms = float(np.percentile(totals, 50)), float(np.percentile(totals, 90))
            row.accuracy = acc
    section = render(rows, texts, peak, cpu, args, run_dir, work)
    publish(section, BEGIN, END, write=not args.no_write)
    return 0


def render(
    rows: list[tuple[Row, Runner]],
    texts: Sequence[str],
    peak: Peak,
    cpu: object,
    args: object,
    run_dir: Path,
    work: Path,
) -> str:
    """The BENCHMARKS.md section: the table and the done-when figures of issue 20."""
    lengths = rows[0][0].lengths  # the teacher's, for the header; each row's figures use its own
    m = machine()
    gemms = GemmTimer()
    nominal = cpu.mhz or 1.0  # type: ignore[attr-defined]
    proven, proof = gemms.proven_mhz(peak)
    mhz = max(nominal, proven)
    clock = (
        f"{mhz:.0f} MHz: /proc/cpuinfo says {nominal:.0f} MHz, but the kernels prove at least {proven:.0f} "
        f"({proof}), so the core runs above it; floors use {mhz:.0f}"
        if proven > nominal
        else f"{mhz:.0f} MHz; the kernels prove no higher clock ({proof})"
    )
    base = (
        next(r for r, _ in rows if r.name == "optimum-onnx-int8-dynamic")
        if any(r.name == "optimum-onnx-int8-dynamic" for r, _ in rows)
        else rows[0][0]
    )
    teacher = rows[0][0]
    lines = [
        BEGIN,
        "## Runtime speed (issue 20): the kit against Optimum, batch 1, held-out full sentences",
        "",
        f"Command: `python benchmarks/runtime_speed.py --run-dir {run_dir} --n {args.n} --rounds {args.rounds}"  # type: ignore[attr-defined]
        + (" --more " + " ".join(str(d) for d in args.more) if args.more else "")  # type: ignore[attr-defined]
        + "`"
        f" — {len(texts)} eval texts of that run (mean {np.mean(lengths):.1f} word pieces, max {max(lengths)}), "
        f"every row measured in this one run on {m['cpu']} ({m['cores']} cores, "  # type: ignore[attr-defined]
        f"{nominal:.0f} MHz nominal). Per text, tokenization included, the fastest of "
        f"{args.rounds} rounds taken in turns. "  # type: ignore[attr-defined]
        f"Floor: the path's multiply-adds at each text's length / ({peak.how}) at {clock}. "
        "Last layer: `1 row` where the graph computes it for the first token only (`onnx.first_token_only`: "
        "its key and value projections over every token, the rest over the one row the head reads); its "
        "floor and GEMMs count that, so its floor is lower than the same model's with every row. "
        "GEMMs: the same encoder's weight matmuls alone (4 projections + 2 FFN per layer), fastest of 30 calls: "
        "what the model would take if everything else were free. For TFLite fp32 / int8-dynamic bundles, as "
        "LiteRT runs them in the bundle (a FULLY_CONNECTED chain, dynamic int8 by the kit's quantizer, at each "
        "text's bucket length); for the other rows, through ONNX Runtime's kernels for this CPU at each text's "
        "length, one call each (`MatMulInteger` for int8, `MatMul` for fp32; no activation quantization).",
        "",
        f"| path | precision | threads | mean ms | p50 ms | p90 ms | × {base.name} | model ms | runtime overhead "
        "| last layer | floor ms | model × floor | GEMMs ms | model × GEMMs | accuracy | size MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    fcs = TfliteFcTimer(work)

    def gemm_ms(r: Row) -> float:
        int8 = "int8" in r.precision
        if r.kind == "tflite" and r.precision in ("fp32", "int8-dynamic") and r.buckets:
            return fcs.encoder_ms(r.config, r.lengths, r.buckets, int8, r.threads, r.first_token)
        return gemms.encoder_ms(r.config, r.lengths, int8, r.threads, r.first_token)

    def floor_ms(r: Row, every_row: bool = False) -> float:
        macs = float(np.mean([encoder_macs(r.config, n, r.first_token and not every_row) for n in r.lengths]))
        per_cycle = peak.int8 if "int8" in r.precision else peak.fp32
        return macs / (per_cycle * r.threads * mhz * 1e6) * 1e3

    for r, _ in rows:
        floor = floor_ms(r)
        gemm = gemm_ms(r)
        overhead = 1 - r.model_ms / r.mean_ms
        lines.append(
            f"| {r.name} | {r.precision} | {r.threads} | {r.mean_ms:.2f} | {r.p50_ms:.2f} | {r.p90_ms:.2f} "
            f"| {base.mean_ms / r.mean_ms:.2f}× | {r.model_ms:.2f} | {100 * overhead:.0f}% "
            f"| {'1 row' if r.first_token else 'all rows'} | {floor:.2f} "
            f"| {r.model_ms / floor:.1f}× | {gemm:.2f} | {r.model_ms / gemm:.1f}× | {100 * r.accuracy:.2f}% "
            f"| {r.size_mb:.1f} |"
        )
    kit = [r for r, _ in rows if r.kind in ("onnx", "tflite") and r.threads == 1]
    int8_students = [r for r in kit if "int8" in r.precision and "student" in r.name]
    lines.append("")
    if int8_students and base is not teacher:
        fastest = min(int8_students, key=lambda r: r.mean_ms)
        close = [r for r in int8_students if teacher.accuracy - r.accuracy <= 0.01 + 1e-9]
        best = min(close, key=lambda r: r.mean_ms) if close else fastest
        floor = floor_ms(best)
        gemm = gemms.encoder_ms(best.config, best.lengths, True, 1, best.first_token)
        own = gemm_ms(best)
        one_token = gemms.encoder_ms(best.config, [1], True, 1)
        weights = encoder_weights(best.config)
        gbps = read_gbps(weights)
        read = weights / (gbps * 1e9) * 1e3
        macs = float(np.mean([encoder_macs(best.config, n, best.first_token) for n in best.lengths]))
        every_row = floor_ms(best, every_row=True)
        small = [r for r in kit if r.size_mb <= 10.0 and "student" in r.name]

        def small_line(r: Row) -> str:
            run = r.name.rpartition("/")[0]
            fp32_name = f"{run}/student-onnx-fp32" if run else "student-onnx-fp32"
            fp32 = next((x for x in kit if x.name == fp32_name), None)
            text = f"{r.name} {r.size_mb:.1f} MB, {100 * r.accuracy:.2f}%"
            if fp32 is None:
                return text + " (no fp32 student bundle in its run)"
            drop = 100 * (fp32.accuracy - r.accuracy)
            return text + f" ({-drop:+.2f} vs {fp32_name}) [within 1 point: {verdict(drop <= 1 + 1e-9)}]"

        def verdict(ok: bool) -> str:
            return "met" if ok else "**not met**"

        speedup = base.mean_ms / best.mean_ms
        gap = 100 * (best.accuracy - teacher.accuracy)
        lines += [
            "- Best int8 student bundle at 1 thread (the fastest within 1 point of the teacher"
            + ("" if close else "; none is, so the fastest")
            + f"): **{best.name}**, {best.mean_ms:.2f} ms per text = **{speedup:.2f}×** {base.name} "
            f"({base.mean_ms:.2f} ms) [≥ 3×: {verdict(speedup >= 3)}]; accuracy {100 * best.accuracy:.2f}% against "
            f"the teacher's {100 * teacher.accuracy:.2f}% ({gap:+.2f} points) [within 1: {verdict(gap >= -1 - 1e-9)}]."
            + (
                ""
                if fastest is best
                else f" The fastest, {fastest.name}, takes {fastest.mean_ms:.2f} ms "
                f"({base.mean_ms / fastest.mean_ms:.2f}×) at {100 * fastest.accuracy:.2f}%."
            ),
            f"- Its model time {best.model_ms:.3f} ms is **{best.model_ms / floor:.2f}×** its int8 compute floor "
            f"({floor:.3f} ms at {peak.int8} MAC/cycle) [within 2×: {verdict(best.model_ms <= 2 * floor)}] "
            f"(its {len(best.round_model_ms)} rounds: {min(best.round_model_ms):.3f}–{max(best.round_model_ms):.3f} "
            f"ms, {min(best.round_model_ms) / floor:.2f}–{max(best.round_model_ms) / floor:.2f}×; the verdict "
            "takes the round with the fastest whole time per text)"
            + (
                f" — the multiply-adds its graph does, the last layer on one row; against the same model with "
                f"every row of every layer ({every_row:.3f} ms) it is {best.model_ms / every_row:.1f}×"
                if best.first_token
                else ""
            )
            + ". "
            f"Its weight GEMMs alone take {gemm:.3f} ms through ONNX Runtime's int8 kernels at each text's "
            f"length ({macs / (gemm * 1e-3 * mhz * 1e6):.0f} MAC/cycle, {gemm / floor:.1f}× the floor)"
            + (
                f", and {own:.3f} ms as LiteRT runs them in this bundle (padded to its buckets, activations "
                f"quantized per call: {own / floor:.1f}× the floor)"
                if own != gemm
                else ""
            )
            + f"; the rest of its model time ({100 * (1 - own / best.model_ms):.0f}%) is attention, softmax, "
            "LayerNorm, GELU, reshapes and the ops' dispatch.",
            (
                "- At batch 1 those GEMMs are bound by reading the weights, not by multiply-adds"
                if read > floor
                else "- Reading the weights is not what binds here; the multiply-adds are"
            )
            + f": through ONNX Runtime the GEMMs take {one_token:.3f} ms for a 1-token text against {gemm:.3f} ms "
            "at the eval lengths; "
            f"reading the encoder's {weights / 1e6:.1f} MB of int8 weights once takes {read:.3f} ms on one core "
            f"here ({gbps:.0f} GB/s, numpy's sum of a buffer that size), {read / floor:.1f}× the compute floor. "
            f"Against the larger of the two floors the model time is {best.model_ms / max(read, floor):.1f}×.",
            "- Bundles ≤ 10 MB, each against the fp32 student bundle of its own run (the model it was "
            "quantized from): " + (", ".join(small_line(r) for r in small) if small else "none") + ".",
        ]
    lines.append(END)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

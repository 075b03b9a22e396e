"""How much faster is an MLM training step when only the masked positions are projected?

    .venv/bin/python benchmarks/mlm_step.py [--steps 30] [--batch-size 32]

Domain adaptation (``[adapt]``) trains all-MiniLM-L6-v2 with BERT's masked-LM objective. The
model's own loss projects every position onto the 30,522-word vocabulary; ``masked_lm_loss``
projects only the ~15 % that carry a label. Both are timed here side by side on the same
batches of the offline tweets (full step: forward, backward, AdamW), interleaved so that both
see the same machine state, and their losses are compared. Writes BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from bench_md import write_section

os.environ.setdefault("USE_TF", "0")

import numpy as np
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer, DataCollatorForLanguageModeling

from export.classifier import resolve_model_path
from export.config import BUNDLED_MINILM, load_config
from export.data.dataset import load_data
from export.report.machine import machine
from export.train.adapt import masked_lm_loss

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- mlm-step:begin -->", "<!-- mlm-step:end -->"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=30, help="timed steps per loss (after 3 warm-up steps each)")
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    os.chdir(ROOT)
    cfg = load_config(ROOT / "examples" / "default.toml")
    texts = list(load_data(cfg.data, cfg.seed).train.texts)
    path = resolve_model_path(BUNDLED_MINILM)
    tok = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_pretrained(path).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    collate = DataCollatorForLanguageModeling(tok, mlm_probability=0.15)
    rng = np.random.default_rng(0)
    n = args.steps + 3
    batches = []
    for _ in range(n):
        rows = rng.choice(len(texts), args.batch_size, replace=False)
        enc = tok([texts[i] for i in rows], truncation=True, max_length=cfg.data.max_length)
        batches.append(collate([{k: enc[k][i] for k in enc} for i in range(args.batch_size)]))

    def full(b: dict) -> torch.Tensor:
        return model(**b).loss

    def masked(b: dict) -> torch.Tensor:
        return masked_lm_loss(model, b)

    times: dict[str, list[float]] = {"full": [], "masked": []}
    gap = 0.0
    for i, b in enumerate(batches):
        for name, fn in (("full", full), ("masked", masked)) if i % 2 == 0 else (("masked", masked), ("full", full)):
            torch.manual_seed(i)
            t = time.perf_counter()
            loss = fn(b)
            loss.backward()
            dt = time.perf_counter() - t
            opt.zero_grad()  # no optimizer step: both losses see the same weights
            if i >= 3:
                times[name].append(dt)
        with torch.no_grad():
            model.eval()
            gap = max(gap, abs(full(b).item() - masked(b).item()))
            model.train()
    tokens = float(np.mean([int(b["attention_mask"].sum()) for b in batches]))
    masked_share = float(
        np.mean([float((b["labels"] != -100).sum()) / int(b["attention_mask"].sum()) for b in batches])
    )
    med = {k: float(np.median(v)) for k, v in times.items()}
    m = machine()
    section = "\n".join(
        [
            BEGIN,
            "## Domain adaptation: MLM step time, masked positions only (issue 5)",
            "",
            f"Command: `python benchmarks/mlm_step.py --steps {args.steps} --batch-size {args.batch_size}`",
            f"Machine: {m['cpu']}, {m['cores']} cores, torch {torch.__version__}, {torch.get_num_threads()} threads. "
            f"all-MiniLM-L6-v2 with a new MLM head (vocabulary {model.config.vocab_size:,}); batches of "
            f"{args.batch_size} offline tweets, {tokens:.0f} tokens a batch, {masked_share:.1%} of them masked. "
            "Forward + backward, median of the timed steps, both losses on the same batches in one run.",
            "",
            "| loss | median step | steps / s | speed-up |",
            "|---|---|---|---|",
            f"| the model's own (every position projected onto the vocabulary) | {med['full'] * 1000:.0f} ms | "
            f"{1 / med['full']:.2f} | — |",
            f"| `masked_lm_loss` (masked positions only; what `[adapt]` trains with) | {med['masked'] * 1000:.0f} ms | "
            f"{1 / med['masked']:.2f} | {med['full'] / med['masked']:.2f}x |",
            "",
            f"Largest |loss difference| between the two on these batches (eval mode): {gap:.1e}.",
            END,
        ]
    )
    write_section(section, BEGIN, END)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where an int8-dynamic TFLite student's model time goes, by ablation, into BENCHMARKS.md.

    .venv/bin/python benchmarks/tflite_breakdown.py --student OUT/models/student [--lengths 16,32,48]

The student (a BERT or DistilBERT ``*ForSequenceClassification`` folder, e.g. the SST-2 recipe's)
goes through the kit's own TFLite path — :class:`export.convert.tflite.LogitsOnly` under the
bounded mask fill, litert-torch, :func:`quantize.tflite.quantize_tflite` dynamic int8 — once whole
and once per ablation, one graph per length, and each graph is timed through LiteRT (XNNPACK, 1
thread), all graphs of a length taking turns, fastest round of the median invoke. Each ablation
removes one part, so its time is the whole graph's minus the ablated one's:

- LayerNorm: every ``nn.LayerNorm`` made an identity;
- GELU: the feed-forward activation made an identity;
- attention core: scores, scaling, mask, softmax and the context matmul replaced by ``q + k + v``
  (the four projections and the head reshapes / transposes stay);
- FCs: the encoder's weight matmuls alone, as :class:`runtime_speed.TfliteFcTimer` builds them.

What is left (embeddings, pooler, classifier, reshapes, dispatch) is the whole minus those. The
parts are measured one at a time, so they need not add up exactly.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import copy
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_md import publish

os.environ.setdefault("USE_TF", "0")

import numpy as np
import torch

from export.report.machine import cpu_info, machine

BEGIN, END = "<!-- tflite-breakdown:begin -->", "<!-- tflite-breakdown:end -->"


class _DistilBertCore(torch.nn.Module):
    """DistilBERT's ``MultiHeadSelfAttention`` without its core: ``out_lin(q + k + v)`` per head layout."""

    def __init__(self, attention: torch.nn.Module) -> None:
        super().__init__()
        self.a = attention

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *_: object, **__: object) -> tuple:
        a = self.a
        b, n, d = query.shape
        heads = [lin(x).view(b, n, a.n_heads, d // a.n_heads).transpose(1, 2) for lin, x in
                 ((a.q_lin, query), (a.k_lin, key), (a.v_lin, value))]  # fmt: skip
        context = (heads[0] + heads[1] + heads[2]).transpose(1, 2).reshape(b, n, d)
        return (a.out_lin(context),)


class _BertCore(torch.nn.Module):
    """BERT's self-attention without its core: ``q + k + v`` in the head layout (``BertSelfOutput`` projects it)."""

    def __init__(self, attention: torch.nn.Module) -> None:
        super().__init__()
        self.a = attention

    def forward(self, hidden: torch.Tensor, *_: object, **__: object) -> tuple:
        a = self.a
        b, n, d = hidden.shape
        heads = [lin(hidden).view(b, n, a.num_attention_heads, a.attention_head_size).transpose(1, 2)
                 for lin in (a.query, a.key, a.value)]  # fmt: skip
        return (heads[0] + heads[1] + heads[2]).transpose(1, 2).reshape(b, n, d), None


def _replace(model: torch.nn.Module, match: Callable[[torch.nn.Module], bool], make: Callable) -> int:
    hits = [(name, module) for name, module in model.named_modules() if name and match(module)]
    for name, module in hits:
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, make(module))
    return len(hits)


def ablations(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The whole model and one copy per ablated part (see the module docstring)."""
    from transformers.activations import GELUActivation  # noqa: PLC0415 - the benchmark's own stack

    out = {"whole": model}
    for part, match, make in (
        ("LayerNorm", lambda m: isinstance(m, torch.nn.LayerNorm), lambda _: torch.nn.Identity()),
        ("GELU", lambda m: isinstance(m, (GELUActivation, torch.nn.GELU)), lambda _: torch.nn.Identity()),
        (
            "attention core",
            lambda m: (
                type(m).__name__ in ("MultiHeadSelfAttention", "DistilBertSdpaAttention")
                or type(m).__name__.startswith("Bert")
                and type(m).__name__.endswith("SelfAttention")
            ),
            lambda m: _DistilBertCore(m) if hasattr(m, "q_lin") else _BertCore(m),
        ),
    ):
        ablated = copy.deepcopy(model)
        if not _replace(ablated, match, make):
            raise SystemExit(f"{type(model).__name__}: no {part} module found to ablate (BERT or DistilBERT only)")
        out[part] = ablated
    return out


def int8_graph(model: torch.nn.Module, length: int, work: Path, name: str) -> Path:
    """``model`` through the kit's TFLite path at ``length`` tokens, dynamic int8."""
    import litert_torch  # noqa: PLC0415 - the converter the kit uses

    from export.convert.mask_fill import bounded_mask_fill  # noqa: PLC0415 - as the kit converts
    from export.convert.tflite import LogitsOnly  # noqa: PLC0415 - as above
    from quantize.modes import TfliteQuant  # noqa: PLC0415 - as above
    from quantize.tflite import quantize_tflite  # noqa: PLC0415 - as above

    wrapper = LogitsOnly(model)
    sample = {n: (torch.ones if n == "attention_mask" else torch.zeros)(1, length, dtype=torch.long)
              for n in wrapper.input_names}  # fmt: skip
    fp32 = work / f"{name.replace(' ', '-')}-{length}.tflite"
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), bounded_mask_fill(model, -30.0):
        fp32.write_bytes(bytes(litert_torch.convert(wrapper, (), sample_kwargs=sample).model_content()))
    return quantize_tflite(fp32, fp32.with_suffix(".int8.tflite"), TfliteQuant.DYNAMIC_INT8)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--student", type=Path, required=True, help="a BERT / DistilBERT classifier folder")
    p.add_argument("--lengths", default="16,32,48", help="sequence lengths (bucket sizes), comma-separated")
    p.add_argument("--repeats", type=int, default=200, help="invokes per round (the median is taken)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = p.parse_args()
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 - the engine the bundles run on
    from runtime_speed import TfliteFcTimer  # noqa: PLC0415 - the FC chain runtime_speed times
    from transformers import AutoModelForSequenceClassification  # noqa: PLC0415 - the student

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(args.student, attn_implementation="eager").eval()
    lengths = [int(x) for x in args.lengths.split(",")]
    work = Path(tempfile.mkdtemp(prefix="tflite-breakdown-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # exports of 100+ MB: never left in /tmp
    fcs = TfliteFcTimer(work, reps=args.repeats)
    variants = ablations(model)
    rng = np.random.default_rng(0)
    results: dict[int, dict[str, float]] = {}
    for length in lengths:
        interpreters = {}
        for name, variant in variants.items():
            it = Interpreter(model_path=str(int8_graph(variant, length, work, name)), num_threads=1)
            it.allocate_tensors()
            for d in it.get_input_details():
                ids = rng.integers(1000, 2000, (1, length)) if "input_ids" in d["name"] else np.ones((1, length))
                it.set_tensor(d["index"], ids.astype(d["dtype"]))
            interpreters[name] = it
        best = dict.fromkeys(interpreters, float("inf"))
        for _ in range(args.rounds):
            for name, it in interpreters.items():
                for _ in range(10):
                    it.invoke()
                times = []
                for _ in range(args.repeats):
                    began = time.perf_counter()
                    it.invoke()
                    times.append(time.perf_counter() - began)
                best[name] = min(best[name], statistics.median(times) * 1e3)
        results[length] = {
            "whole": best["whole"],
            "FCs": fcs.encoder_ms(model.config.to_dict(), [length], [length], True, 1),
            **{part: best["whole"] - best[part] for part in variants if part != "whole"},
        }
        print(length, {k: round(v, 4) for k, v in results[length].items()}, flush=True)
    section = render(results, args)
    publish(section, BEGIN, END, write=not args.no_write)
    return 0


def render(results: dict[int, dict[str, float]], args: argparse.Namespace) -> str:
    m, cpu = machine(), cpu_info()
    parts = ["FCs", "attention core", "LayerNorm", "GELU"]
    lines = [
        BEGIN,
        "## Where an int8-dynamic TFLite student's model time goes (issue 20)",
        "",
        f"Command: `python benchmarks/tflite_breakdown.py --student {args.student} --lengths {args.lengths}` — "
        f"on {m['cpu']} ({m['cores']} cores, {cpu.mhz or 0:.0f} MHz), 1 thread, LiteRT XNNPACK, model only (no "
        "tokenizer). Each part's time is the whole graph's minus the graph without it (FCs: the weight matmuls "
        "alone); rest = whole minus the parts: embeddings, pooler, classifier, reshapes, dispatch.",
        "",
        "| length | whole ms | " + " | ".join(f"{p} ms (share)" for p in parts) + " | rest ms |",
        "|---|---|" + "---|" * len(parts) + "---|",
    ]
    for length, r in results.items():
        rest = r["whole"] - sum(r[p] for p in parts)
        cells = " | ".join(f"{r[p]:.3f} ({100 * r[p] / r['whole']:.0f}%)" for p in parts)
        lines.append(f"| {length} | {r['whole']:.3f} | {cells} | {rest:.3f} |")
    lines.append(END)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

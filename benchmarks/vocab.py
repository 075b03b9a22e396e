"""What does vocabulary trimming (``[vocab]``) save on SST-2, and what does it cost?

    .venv/bin/python benchmarks/vocab.py [--student DIR] [--no-write]

all-MiniLM-L6-v2's WordPiece vocabulary (30,522 pieces × 384, shared by teacher and student) is
trimmed to the pieces of SST-2's training split as ``examples/sst2.toml`` splits it (held-out
sentences and their phrases out), at several ``min_count`` values, with and without the character
pieces. Per setting: the pieces kept, the word-embedding table in MB (fp32; int8 = one byte per
weight), and the share of the words of the 861 held-out eval sentences that become [UNK] or are
cut into other pieces than before (their input to the model changed). With a
distilled SST-2 student (``--student``, default: the selection-run student of ``examples/sst2.toml``
in its checkpoint folder, trained on the train split only, so eval is unseen text): its eval
accuracy and label agreement trimmed against untrimmed, and the size of its ONNX int8-dynamic
export. Writes BENCHMARKS.md between ``<!-- vocab:begin -->`` and ``<!-- vocab:end -->``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
from pathlib import Path

from bench_md import write_section

os.environ.setdefault("USE_TF", "0")

from export.classifier import Classifier, correct_predictions, load_classifier, load_pretrained, torch_logits
from export.config import VocabConfig, load_config
from export.convert.onnx import to_onnx
from export.convert.quantized import quantized_onnx
from export.convert.vocab import changed_word_rate, kept_pieces, trim_tokenizer, trim_vocabulary, unknown_word_rate
from export.data.dataset import load_data
from export.report.machine import machine
from export.train.cache import _selection_settings, data_fingerprint, fingerprint
from quantize.modes import OnnxQuant

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- vocab:begin -->", "<!-- vocab:end -->"
SETTINGS = [(1, True), (1, False), (2, True), (5, True), (5, False), (20, True), (20, False)]
ONNX_SETTINGS = ((1, True), (1, False), (5, False), (20, False))
WIDTH = 384


def selection_student(cfg) -> Path:
    """Where the selection-run student of ``cfg`` lives in its checkpoint folder (it may not exist)."""
    data = load_data(cfg.data, cfg.seed)
    fp = data_fingerprint(data, cfg.data.max_length)
    teacher = fingerprint("teacher", cfg.model, _selection_settings(cfg), cfg.seed, fp)
    student = fingerprint("student", teacher, cfg.distill, cfg.seed, fp)
    return ROOT / cfg.checkpoint_dir / f"student-{student}" / "student"


def onnx_int8_mb(clf: Classifier, work: Path, cfg) -> float:
    """Size of the ONNX int8-dynamic export of ``clf`` (the pipeline's default quantized bundle)."""
    onnx = dataclasses.replace(cfg.onnx, quantize=(OnnxQuant.DYNAMIC_INT8,))
    fp32 = to_onnx([clf], onnx, work)
    (q,) = quantized_onnx([clf], fp32, onnx, work, quant=cfg.quantize, max_length=cfg.data.max_length)
    return q.path.stat().st_size / 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--student", type=Path, help="a distilled SST-2 student folder (default: examples/sst2.toml's)")
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    student_arg = args.student.resolve() if args.student else None
    os.chdir(ROOT)  # examples/sst2.toml's paths are relative to the repository
    cfg = load_config(ROOT / "examples" / "sst2.toml")
    data = load_data(cfg.data, cfg.seed)
    train, evals = list(data.train.texts), list(data.eval.texts)
    _, tokenizer = load_pretrained(cfg.model.name_or_path, data.label_names)
    total = len(tokenizer)
    before_unk = unknown_word_rate(tokenizer, evals)
    student_dir = student_arg or selection_student(cfg)
    student = load_classifier("student", student_dir, data.label_names) if student_dir.is_dir() else None
    base = None
    if student is not None:
        base = torch_logits(student, evals, cfg.data.max_length)
        base_acc = float(correct_predictions(student, evals, data.eval.labels, cfg.data.max_length).mean())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for min_count, chars in SETTINGS:
            vc = VocabConfig(trim=True, min_count=min_count, keep_characters=chars)
            kept = kept_pieces(tokenizer, train, vc)
            trimmed_tokenizer = trim_tokenizer(tokenizer, kept, Path(tmp) / f"t{min_count}{chars}")
            row = {"min_count": min_count, "chars": chars, "kept": len(kept)}
            row["unk"] = unknown_word_rate(trimmed_tokenizer, evals)
            row["changed"] = changed_word_rate(tokenizer, trimmed_tokenizer, evals)
            if student is not None:
                trimmed, _ = trim_vocabulary(student, train, vc, Path(tmp) / f"s{min_count}{chars}")
                logits = torch_logits(trimmed, evals, cfg.data.max_length)
                row["acc"] = float((logits.argmax(-1) == data.eval.labels).mean())
                row["agree"] = float((logits.argmax(-1) == base.argmax(-1)).mean())
                if (min_count, chars) in ONNX_SETTINGS:
                    row["onnx_mb"] = onnx_int8_mb(trimmed, Path(tmp) / f"onnx{min_count}{chars}", cfg)
            rows.append(row)
            print(row, flush=True)
        full_onnx = onnx_int8_mb(student, Path(tmp) / "onnx-full", cfg) if student is not None else None
    lines = [
        BEGIN,
        "## Vocabulary trimming (`[vocab]`, SST-2)",
        "",
        f"`benchmarks/vocab.py`: all-MiniLM-L6-v2's {total:,}-piece WordPiece vocabulary, {WIDTH} wide, trimmed to "
        f"the pieces of the {len(train):,} training rows of `examples/sst2.toml`'s split (held-out sentences and "
        f"their phrases out). Words counted on the {len(evals):,} held-out eval sentences: those that become [UNK] "
        f"({before_unk:.2%} untrimmed) and those cut into other pieces than untrimmed, [UNK] included (SST-2 is "
        "6,900 sentences: many words of a held-out sentence occur in no other). Embedding MB: rows × "
        f"{WIDTH} × 4 bytes (fp32) or × 1 (int8).",
        "",
    ]
    if student is not None:
        lines += [
            f"Student: `{student_dir.relative_to(ROOT) if student_dir.is_relative_to(ROOT) else student_dir}` "
            f"(the selection run: trained on the train split, eval unseen), eval accuracy untrimmed "
            f"{base_acc:.2%}; its ONNX int8-dynamic export is {full_onnx:.1f} MB untrimmed.",
            "",
            "| min_count | character pieces | pieces kept | embedding MB fp32 | int8 | eval words [UNK] "
            "| eval words re-cut | eval accuracy | drop (points) | agreement with untrimmed | ONNX int8 MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
    else:
        lines += [
            "| min_count | character pieces | pieces kept | embedding MB fp32 | int8 | eval words [UNK] "
            "| eval words re-cut |",
            "|---|---|---|---|---|---|---|",
        ]
    lines.append(
        f"| (untrimmed) | | {total:,} | {total * WIDTH * 4 / 1e6:.1f} | {total * WIDTH / 1e6:.1f} "
        f"| {before_unk:.2%} | |" + (f" {base_acc:.2%} | | | {full_onnx:.1f} |" if student is not None else "")
    )
    for r in rows:
        cells = f"| {r['min_count']} | {'kept' if r['chars'] else 'dropped'} | {r['kept']:,} | "
        cells += f"{r['kept'] * WIDTH * 4 / 1e6:.1f} | {r['kept'] * WIDTH / 1e6:.1f} "
        cells += f"| {r['unk']:.2%} | {r['changed']:.2%} |"
        if student is not None:
            onnx = f" {r['onnx_mb']:.1f} |" if "onnx_mb" in r else " |"
            cells += f" {r['acc']:.2%} | {100 * (base_acc - r['acc']):+.2f} | {r['agree']:.2%} |{onnx}"
        lines.append(cells)
    m = machine()
    if student is not None:
        lines += [
            "",
            "The drop is what the pipeline's gate judges (`verify.max_drop`, default 1 point) and agreement what "
            "`verify.min_agreement` would: one accuracy point is about 9 of the 861 sentences, and the re-cut words "
            "relabel more sentences than they change the accuracy by (label changes go both ways).",
        ]
    lines += ["", f"Machine: {m['cpu']}, {m['cores']} cores.", END]
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        write_section(section, BEGIN, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())

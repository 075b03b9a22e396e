"""SST-2 accuracy: teacher, distilled student (and what each distillation addition brings),
every exported and quantized artifact — accuracy, agreement with the teacher, size, latency.

    .venv/bin/python benchmarks/accuracy.py [--config examples/sst2.toml] [--out DIR] [--no-ablations]
    .venv/bin/python benchmarks/accuracy.py --from-report DIR/report.json
    .venv/bin/python benchmarks/accuracy.py --nested-only [--seeds 42,7]

0. The nested refit measurement against the plain recipe (issue 18), per training seed: eval
   (A) is never trained on, validation (B) chooses the schedule. Side by side on A: the textbook
   plain HF Trainer recipe trained on train + B (:mod:`recipes`), the kit's teacher and student
   as selected (trained on train, best check on B), and the same refit on train + B up to the
   chosen epochs (``finetune.refit = except-eval``). Paired differences with their standard error.
   Its own BENCHMARKS.md section; ``--no-nested`` keeps the last one.

1. Loads the recipe's data: whole SST-2 sentences held out for validation and eval, with every
   phrase cut from them removed from training (``data.holdout = "sentences"``).
2. Ablations: the recipe's student trained with one distillation setting changed at a time
   (hard labels only, soft labels, + hidden-state and attention transfer, + augmentation), each
   scored on the eval sentences. Same teacher, data, seed and schedule; the variant equal to the
   recipe is the recipe's student (the pipeline reuses it). They have their own BENCHMARKS.md
   section, dated, so ``--no-ablations`` leaves the last measured table in place.
3. The recipe itself through ``python -m export``'s pipeline: fine-tune, distill, export every
   configured ONNX / TFLite precision, verify (accuracy gate on), report.

Training stages are kept in ``<out>.checkpoints`` keyed by their inputs, so a second run, or the
pipeline after an ablation with the very same settings, reuses them; the table gives the wall
time each model took to train when it was trained. Everything else is measured in this run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench_md import config_label, write_section
from recipes import eval_accuracy, nested_stages

os.environ.setdefault("USE_TF", "0")

import numpy as np

from export.classifier import torch_logits
from export.config import PipelineConfig, load_config
from export.data.dataset import load_data
from export.errors import VerificationError
from export.pipeline import run
from export.report.document import saved_results, table
from export.report.machine import machine
from export.train.cache import student_stage, teacher_stage

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- accuracy:begin -->", "<!-- accuracy:end -->"
# Ablations have their own section: a run with --no-ablations leaves the last measured ones (and
# the teacher they were measured against) in place.
ABL_BEGIN, ABL_END = "<!-- accuracy-ablations:begin -->", "<!-- accuracy-ablations:end -->"
NESTED_BEGIN, NESTED_END = "<!-- accuracy-nested:begin -->", "<!-- accuracy-nested:end -->"

# (name, distill overrides): each changes the recipe's distillation in one respect.
ABLATIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("hard labels only (no teacher)", {"alpha": 0.0, "hidden_weight": 0.0, "attention_weight": 0.0, "augment": 0}),
    ("soft labels, T = 2, alpha = 0.5", {"hidden_weight": 0.0, "attention_weight": 0.0, "augment": 0}),
    ("+ hidden-state and attention transfer", {"hidden_weight": 1.0, "attention_weight": 1.0, "augment": 0}),
    # Twice the texts for half the epochs: the same number of optimizer steps as the others.
    (
        "+ 1 teacher-labelled augmented copy per text (half the epochs)",
        {"hidden_weight": 0.0, "attention_weight": 0.0, "augment": 1, "epochs_factor": 0.5},
    ),
)


def ablation_rows(cfg: PipelineConfig, epochs: float) -> list[dict[str, Any]]:
    """Trains (or reuses) each ablation's student for ``epochs`` and scores it on the eval split."""
    data = load_data(cfg.data, cfg.seed)
    teacher = teacher_stage(cfg, data)
    n = cfg.data.max_length
    t_pred = torch_logits(teacher.model, data.eval.texts, n).argmax(-1)
    rows = [_row("teacher (fine-tuned)", teacher, t_pred, t_pred, data.eval.labels)]
    logging.info("teacher: eval accuracy %.4f", rows[0]["accuracy"])
    for name, overrides in ABLATIONS:
        base = {"temperature": 2.0, "alpha": 0.5} | overrides
        base["epochs"] = epochs * base.pop("epochs_factor", 1.0)
        variant = dataclasses.replace(cfg, distill=dataclasses.replace(cfg.distill, **base))
        logging.info("ablation %r: %s", name, base)
        student = student_stage(variant, data, teacher)
        pred = torch_logits(student.model, data.eval.texts, n).argmax(-1)
        rows.append(_row(name, student, pred, t_pred, data.eval.labels) | {"settings": base})
        logging.info("ablation %r: eval accuracy %.4f", name, rows[-1]["accuracy"])
    return rows


def _row(name: str, stage: Any, pred: Any, teacher_pred: Any, labels: Any) -> dict[str, Any]:
    s = stage.summary()
    return {
        "name": name,
        "parameters": s["parameters"],
        "accuracy": float((pred == labels).mean()),
        "agreement": float((pred == teacher_pred).mean()),
        "validation": s.get("best_validation_accuracy"),
        "train_min": s["train_seconds"] / 60,
        "eval_n": int(len(labels)),
    }


def ablation_table(rows: list[dict[str, Any]]) -> list[str]:
    teacher = rows[0]["accuracy"]
    lines = [
        "| model / distillation | params | eval accuracy | vs teacher | agreement with teacher | best validation "
        "| train time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        val = f"{r['validation']:.2%}" if r["validation"] is not None else "—"
        gap = "—" if r is rows[0] else f"{(r['accuracy'] - teacher) * 100:+.2f} pts"
        lines.append(
            f"| {r['name']} | {r['parameters'] / 1e6:.1f} M | {r['accuracy']:.2%} | {gap} | {r['agreement']:.2%} "
            f"| {val} | {r['train_min']:.1f} min |"
        )
    return lines


def nested_rows(cfg: PipelineConfig, seeds: list[int], student_seeds: list[int] = ()) -> list[dict[str, Any]]:
    """Trains (or reuses) every model of the nested measurement for each training seed and scores
    it on the eval sentences; the split stays the same (loaded once, with the configured ``seed``).
    Each of ``student_seeds`` adds the two students trained with that seed from the first seed's
    teachers."""
    data = load_data(cfg.data, cfg.seed)
    runs = [(s, None) for s in seeds] + [(seeds[0], s) for s in student_seeds]
    rows = []
    for teacher_seed, student_seed in runs:
        label = str(teacher_seed) if student_seed is None else f"{teacher_seed}, student {student_seed}"
        stages = nested_stages(dataclasses.replace(cfg, seed=teacher_seed), data, student_seed)
        for name, stage in stages.items():
            s = stage.summary()
            # a refit stops at the epoch its selection run chose
            chosen = stages[name.replace("refit", "selection")].chosen_epoch if "refit" in name else stage.chosen_epoch
            rows.append(
                {
                    "seed": label,
                    "teacher_seed": teacher_seed,
                    "student_seed": student_seed,
                    "name": name,
                    "train_rows": len(data.train) if "selection" in name else len(data.refit_rows(include_eval=False)),
                    "validation": s.get("best_validation_accuracy"),
                    "chosen_epoch": chosen,
                    "steps": s.get("steps"),
                    "train_min": s["train_seconds"] / 60,
                    "eval_n": len(data.eval),
                    "validation_n": len(data.validation),
                }
                | eval_accuracy(stage, data, cfg.data.max_length)
            )
            logging.info("nested seed %s %s: eval accuracy %.4f", label, name, rows[-1]["accuracy"])
    return rows


def paired(rows: list[dict[str, Any]], seed: str, a: str, b: str) -> tuple[float, float]:
    """Accuracy difference a − b (points) on the same eval texts and its paired standard error."""
    by = {r["name"]: np.asarray(r["correct"], dtype=float) for r in rows if r["seed"] == seed}
    d = by[a] - by[b]
    return float(d.mean() * 100), float(d.std(ddof=1) / len(d) ** 0.5 * 100)


def paired_across(rows: list[dict[str, Any]], seeds: list[str], a: str, b: str) -> tuple[float, float]:
    """Accuracy difference a − b (points) averaged over ``seeds``, and its standard error over the
    eval texts (each text's difference averaged over the seeds first: the seeds share the texts)."""
    by = {(r["seed"], r["name"]): np.asarray(r["correct"], dtype=float) for r in rows}
    d = np.mean([by[seed, a] - by[seed, b] for seed in seeds], axis=0)
    return float(d.mean() * 100), float(d.std(ddof=1) / len(d) ** 0.5 * 100)


def render_nested(rows: list[dict[str, Any]], cfg: PipelineConfig) -> str:
    seeds = list(dict.fromkeys(r["seed"] for r in rows))
    m = machine()
    teacher_seeds = dict.fromkeys(str(r["teacher_seed"]) for r in rows if r["student_seed"] is None)
    command = "--nested-only --seeds " + ",".join(teacher_seeds)
    if extra := dict.fromkeys(str(r["student_seed"]) for r in rows if r["student_seed"] is not None):
        command += " --student-seeds " + ",".join(extra)
    lines = [
        NESTED_BEGIN,
        "### Refit and the plain recipe, nested (issue 18)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {m['cpu']}, {m['cores']} cores, no GPU. "
        f"`python benchmarks/accuracy.py {command}`. "
        f"Eval (A): {rows[0]['eval_n']} whole SST-2 sentences, never trained on by any model here. Validation (B): "
        f"{rows[0]['validation_n']} sentences; it chooses the kit's checkpoint (selection) and then the epoch the "
        "refit stops at (the same schedule, on more rows; the refit itself validates nothing). The refit "
        "trains on train + B + B's phrases (`finetune.refit = except-eval`). Plain: the textbook HF Trainer recipe "
        "(lr 5e-5, batch 32, 2 epochs, 6 % warm-up, weight decay 0.01, random batches, last step) on the same rows as "
        'the refit. Training seed varies, the split does not; "42, student 7": the two students trained with seed '
        "7 from the seed-42 teachers.",
        "",
        "| seed | model | trained on rows | eval accuracy (A) | best validation (B) | epoch chosen on B | steps "
        "| train time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        val = f"{r['validation']:.2%}" if r["validation"] is not None else "—"
        epoch = f"{r['chosen_epoch']:g}" if r["chosen_epoch"] is not None else "—"
        lines.append(
            f"| {r['seed']} | {r['name']} | {r['train_rows']:,} | {r['accuracy']:.2%} | {val} | {epoch} "
            f"| {r['steps']} | {r['train_min']:.1f} min |"
        )
    lines += ["", "Paired differences on A (points, ± one paired standard error):", ""]
    pairs = (
        ("teacher (refit)", "teacher (selection)"),
        ("student (refit)", "student (selection)"),
        ("teacher (refit)", "plain"),
        ("teacher (selection)", "plain"),
        ("student (refit)", "plain"),
    )
    names = {(r["seed"], r["name"]) for r in rows}
    for seed in seeds:
        cells = [
            f"{a} − {b}: {d:+.2f} ± {se:.2f}"
            for a, b in pairs
            if (seed, a) in names and (seed, b) in names
            for d, se in [paired(rows, seed, a, b)]
        ]
        lines.append(f"- seed {seed}: " + "; ".join(cells))
    lines += [
        "",
        "Across seeds (per sentence, the difference averaged over the seeds that have both models; ± the "
        "standard error of that average over the sentences, which counts the seeds' shared sentences once):",
        "",
    ]
    for a, b in pairs:
        both = [seed for seed in seeds if (seed, a) in names and (seed, b) in names]
        if len(both) < 2:
            continue
        mean, se = paired_across(rows, both, a, b)
        noise = abs(mean) <= 2 * se
        verdict = "within two standard errors: noise at this size" if noise else "beyond two standard errors"
        lines.append(f"- {a} − {b}: {mean:+.2f} ± {se:.2f} over {len(both)} seeds — {verdict}")
    n = rows[0]["eval_n"]
    lines += [
        "",
        f"One standard error of a single accuracy on {n} sentences is about "
        f"{(0.89 * 0.11 / n) ** 0.5 * 100:.1f} points; the paired error of a difference is smaller when the "
        "two models mostly agree.",
        NESTED_END,
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--config", type=Path, default=ROOT / "examples" / "sst2.toml")
    p.add_argument("--out", help="output directory (default: the config's out; trained models in <out>.checkpoints)")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--no-ablations", dest="ablations", action="store_false")
    p.add_argument("--ablation-epochs", type=float, help="epochs of each ablation's student (default: the recipe's)")
    p.add_argument("--ablations-only", action="store_true", help="train and score the ablations, skip the pipeline")
    p.add_argument("--from-report", type=Path, help="render an earlier run's report.json instead of running")
    p.add_argument("--no-nested", dest="nested", action="store_false", help="skip the nested refit / plain section")
    p.add_argument("--nested-only", action="store_true", help="only the nested refit / plain section")
    p.add_argument("--seeds", default="42", help="training seeds of the nested measurement, e.g. 42,7")
    p.add_argument(
        "--student-seeds",
        default="",
        help="more student seeds for the nested measurement, distilled from the first seed's teachers, e.g. 7",
    )
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    os.chdir(ROOT)  # the config's data path is relative to the repo root
    out = [f"out={args.out}"] if args.out else []
    cfg = load_config(args.config, [*out, "overwrite=true", *args.overrides])
    report_json = args.from_report or cfg.out / "report.json"
    ablations_json = Path(f"{cfg.out}.ablations.json")
    started = time.perf_counter()
    if args.from_report is None and (args.nested or args.nested_only):
        student_seeds = [int(x) for x in args.student_seeds.split(",") if x]
        rows = nested_rows(cfg, [int(x) for x in args.seeds.split(",")], student_seeds)
        Path(f"{cfg.out}.nested.json").write_text(json.dumps(rows) + "\n", encoding="utf-8")
        section = render_nested(rows, cfg)
        write_section(section, NESTED_BEGIN, NESTED_END)
        print(section)
    if args.nested_only:
        return 0
    if args.from_report is None and args.ablations:
        rows = ablation_rows(cfg, args.ablation_epochs or cfg.distill.epochs)
        ablations_json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        section = render_ablations(rows, cfg)
        write_section(section, ABL_BEGIN, ABL_END)
        print(section)
    if args.ablations_only:
        return 0
    if args.from_report is None:
        try:
            run(cfg)
        except VerificationError as e:  # still render the table: failures are part of the result
            logging.error("verification failed: %s", e)
    saved = json.loads(report_json.read_text(encoding="utf-8"))
    section = render(saved, args, time.perf_counter() - started)
    write_section(section, BEGIN, END)
    print(section)
    return 0


def render_ablations(rows: list[dict[str, Any]], cfg: PipelineConfig) -> str:
    teacher = rows[0]
    return "\n".join(
        [
            ABL_BEGIN,
            "### What each distillation setting brings",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} on {machine()['cpu']}: the recipe's teacher "
            f"(lr {cfg.finetune.learning_rate:g}, {cfg.finetune.epochs:g} epochs; {teacher['accuracy']:.2%} on eval) "
            "and a 3-layer DistilBERT student from teacher layers 0, 2, 4; same data, seed and schedule, "
            f"{rows[1]['settings']['epochs']:g} epochs; eval sentences. "
            "`python benchmarks/accuracy.py --ablations-only` re-measures this table alone.",
            "",
            *ablation_table(rows),
            "",
            f"One standard error on {teacher['eval_n']} sentences is about "
            f"{(teacher['accuracy'] * (1 - teacher['accuracy']) / teacher['eval_n']) ** 0.5 * 100:.1f} points. "
            "Train time is wall time and includes other jobs that shared the 2 cores during some of the runs.",
            ABL_END,
        ]
    )


def render(saved: dict[str, Any], args: argparse.Namespace, wall_s: float) -> str:
    config = config_label(args.config, args.overrides)
    results = saved_results(saved)
    by_name = {r.name: r for r in results}
    m = saved.get("machine") or machine()
    times = saved["timings_s"]
    training = saved.get("training", {})
    t, s = training.get("teacher", {}), training.get("student", {})
    trained = (t.get("train_seconds", 0) + s.get("train_seconds", 0)) / 60
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in times.items() if k != "total")
    teacher_acc = by_name["teacher"].accuracy if "teacher" in by_name else None
    student_acc = by_name["student"].accuracy if "student" in by_name else None
    head = []
    sel = saved.get("selection") or {}
    if sel.get("models"):
        t_sel, s_sel = sel["models"]["teacher"]["eval_accuracy"], sel["models"]["student"]["eval_accuracy"]
        head = [
            f"**Unseen sentences (selection run, trained on {sel['models']['teacher']['train_rows']:,} rows): teacher "
            f"{t_sel:.2%}, student {s_sel:.2%} ({(s_sel - t_sel) * 100:+.2f} pts) on {saved['data']['eval']} held-out "
            "SST-2 sentences.**",
            "",
            f"Shipped models: refit (`finetune.refit = {sel['refit']}`) on {sel['shipped_train_rows']:,} rows up to "
            "the epochs validation chose"
            + (
                " — eval included, so **the table's accuracy column is on sentences they trained on** (what it is "
                "for here: every quantized artifact is gated at "
                f"{saved['config']['verify']['max_drop']} point of its fp32 source, column *acc. drop vs source*). "
                "What refit does on unseen sentences: the nested section below."
                if sel.get("eval_trained_on")
                else "; the table's accuracy is on unseen sentences."
            ),
            "",
        ]
    elif teacher_acc is not None and student_acc is not None:
        head = [
            f"**Teacher {teacher_acc:.2%}, student {student_acc:.2%} ({(student_acc - teacher_acc) * 100:+.2f} pts) "
            f"on {saved['data']['eval']} held-out SST-2 sentences.** Every quantized artifact is gated at "
            f"{saved['config']['verify']['max_drop']} point of its fp32 source (column *acc. drop vs source*).",
            "",
        ]
    lines = [
        BEGIN,
        "## SST-2 accuracy (issue 5): teacher, distilled student, every artifact",
        "",
        f"Command: `python benchmarks/accuracy.py --config {config}`",
        f"Machine: {m['cpu']}, {m['cores']} cores, no GPU. Training: teacher {t.get('train_seconds', 0) / 60:.1f} min, "
        f"student {s.get('train_seconds', 0) / 60:.1f} min ({trained:.0f} min together); the pipeline run: "
        f"{times['total'] / 60:.1f} min ({stages})"
        + (f"; this benchmark {wall_s / 60:.0f} min." if args.from_report is None else "."),
        f"Data: GLUE SST-2 train; {saved['data']['train']} training rows, {saved['data']['validation']} validation "
        f"and {saved['data']['eval']} eval sentences — whole sentences held out with every phrase cut from them "
        "removed from training, so eval is unseen text (as GLUE dev is) for the selection run; validation only "
        "chose the best checkpoint and the refit's epochs. Latency: ms per sentence, batch 1, tokenization included.",
        "",
        *head,
        table(results),
        "",
    ]
    checks = (sel.get("models", {}).get("teacher") or {}).get("evaluations") or t.get("evaluations", [])
    curve = ", ".join(f"{e['accuracy']:.1%}" for e in checks)
    lines += [
        "About the teacher's distance from the published 91–91.5 (MiniLM-L6-H384 on GLUE dev):",
        "",
        f"- Its validation accuracy at each check (every half epoch): {curve} — the best is kept. It plateaus "
        "from the second epoch on while the training loss keeps falling (~0.15): the model fits the phrases "
        "and stops improving on whole sentences.",
        "- all-MiniLM-L6-v2 is a sentence-embedding model (contrastive training on 1 B sentence pairs, mean "
        "pooling), not the MLM-pretrained MiniLM-L6-H384 the published figure is for.",
        "- The split is strict: 12,947 phrases of the held-out sentences are not trained on. Holding out full "
        "sentences but keeping their phrases (or a random row split) reads higher and is not comparable.",
        "- Other teacher recipes tried, and what they gave: *Teacher recipe trials* below.",
        "",
        END,
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

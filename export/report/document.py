"""report.json, report.md (with charts) and JUnit XML.

The pipeline and ``python -m export verify`` write the same format: a ``results`` list with
one entry per model or bundle, so either one's report.json can be the baseline of the other
(:mod:`export.verify.drift`). Every artifact shows its 1- and 2-thread p50 / p90 latency and, when
quantized, its speed against its fp32 source, so an int8 model that is slower says so.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.errors import ConfigError
from export.report.machine import machine
from export.verify.budget import Choice
from export.verify.drift import DriftCheck, drift_table
from export.verify.judge import ArtifactResult
from export.verify.latency import Latencies, latency_key
from export.verify.outputs import Confusion

REPORT_VERSION = 1


@dataclass(frozen=True)
class Report:
    """Everything a run proved, what failed and what the accuracy gate left out.

    Attributes:
        kind: ``export`` (the pipeline) or ``verify``.
        drift: Checks against a baseline report; ``notes`` says what could not be compared.
        choice: The bundle chosen (for a budget) by ``verify``.
        confusion: Confusion matrix of the chosen bundle.
        logit_sample: The first texts' logits of every artifact, for later drift checks.
    """

    results: tuple[ArtifactResult, ...]
    data: Mapping[str, Any]
    config: Mapping[str, Any]
    timings_s: Mapping[str, float]
    bundles: tuple[str, ...]
    kind: str = "export"
    drift: tuple[DriftCheck, ...] = ()
    notes: tuple[str, ...] = ()
    choice: Choice | None = None
    confusion: Confusion | None = None
    logit_sample: Mapping[str, Any] | None = None
    training: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Per trained model: parameters, best validation accuracy, train time, whether it was reused."""
    selection: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """What the selection run measured on unseen rows and what the shipped models trained on
    (:func:`export.pipeline.selection_run`)."""
    vocab: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """What vocabulary trimming kept (:func:`export.pipeline.trim_student`); empty when ``vocab.trim`` is off."""
    log: str | None = None
    """The run's full log (dependency output and warnings), relative to the report; None: not kept."""

    @property
    def failures(self) -> list[str]:
        out = [f for r in self.results for f in r.failures]
        out += [d.failure for d in self.drift if d.failure]
        if self.choice is not None and self.choice.failure:
            out.append(f"budget: {self.choice.failure}")
        return out

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def left_out(self) -> list[ArtifactResult]:
        """Artifacts the accuracy gate left out (``on_gate_fail = skip``); never shipped."""
        return [r for r in self.results if r.skipped]

    def to_dict(self) -> dict[str, Any]:
        speed = speed_vs_fp32(self.results)
        out = {
            "report_version": REPORT_VERSION,
            "kind": self.kind,
            "passed": self.passed,
            "failures": self.failures,
            "left_out": [{"artifact": r.name, "reason": r.skipped} for r in self.left_out],
            "results": [
                dataclasses.asdict(r)
                | {"passed": r.passed, "status": r.status, "speed_vs_fp32": _speed_dict(speed.get(r.name))}
                for r in self.results
            ],
            "bundles": list(self.bundles),
            "data": dict(self.data),
            "timings_s": dict(self.timings_s),
            "machine": machine(),
            "config": dict(self.config),
        }
        if self.log:
            out["log"] = self.log
        if self.drift or self.notes:
            out["drift"] = [dataclasses.asdict(d) | {"passed": d.passed} for d in self.drift]
            out["drift_notes"] = list(self.notes)
        if self.choice is not None:
            out["choice"] = dataclasses.asdict(self.choice)
        if self.confusion is not None:
            out["confusion"] = dataclasses.asdict(self.confusion)
        if self.logit_sample is not None:
            out["logit_sample"] = dict(self.logit_sample)
        if self.training:
            out["training"] = dict(self.training)
        if self.selection:
            out["selection"] = dict(self.selection)
        if self.vocab:
            out["vocab"] = dict(self.vocab)
        return out


@dataclass(frozen=True)
class SpeedRatio:
    """A quantized artifact's p50 divided by its fp32 source's, per thread count (> 1: slower).

    Attributes:
        against: The fp32 artifact compared with: the fp32 export of the same model and
            format when there is one, else the artifact's ``source``.
        ratios: Thread-count key (``"1t"``) → p50 ratio.
    """

    against: str
    ratios: Mapping[str, float]


def speed_vs_fp32(results: Sequence[ArtifactResult]) -> dict[str, SpeedRatio]:
    """The :class:`SpeedRatio` of every quantized result whose fp32 source is among ``results``."""
    by = {r.name: r for r in results}
    out = {}
    for r in results:
        if r.precision == "fp32":
            continue
        source = by.get(r.source)
        twins = [p for p in results if p.precision == "fp32" and (p.format, p.model) == (r.format, r.model)]
        peer = source if any(t is source for t in twins) or not twins else twins[0]
        if peer is None:
            continue
        mine, theirs = _latency(r), _latency(peer)
        ratios = {k: v["p50_ms"] / theirs[k]["p50_ms"] for k, v in mine.items() if theirs.get(k, {}).get("p50_ms")}
        if ratios:
            out[r.name] = SpeedRatio(peer.name, ratios)
    return out


def _speed_dict(s: SpeedRatio | None) -> dict[str, Any] | None:
    return None if s is None else {"against": s.against, "p50_ratio": dict(s.ratios)}


def _latency(r: ArtifactResult) -> Latencies:
    """All latency figures of a result (a report written before 2-thread figures has one)."""
    return r.latency or {latency_key(r.threads): {"p50_ms": r.p50_ms, "p90_ms": r.p90_ms}}


def table(results: Sequence[ArtifactResult], chosen: str | None = None, reference: str = "teacher") -> str:
    """The verify table as Markdown; the ``chosen`` artifact's name is marked.

    Latency columns hold p50 / p90 ms at each thread count measured; "p50 vs fp32" is a
    quantized artifact's p50 at the first thread count divided by its fp32 source's; "integer
    ops" says whether the bundle's graph is integer-only (:mod:`quantize.integer_only`).
    """
    keys = sorted({k for r in results for k in _latency(r)}, key=lambda k: int(k.rstrip("t")))
    speed = speed_vs_fp32(results)
    thread_cols = "".join(f" p50 / p90 ms, {k[:-1]} thr |" for k in keys)
    first = keys[0][:-1] if keys else "1"
    head = (
        f"| artifact | format | precision | accuracy | agreement w/ {reference} | agreement w/ source "
        f"| max abs logit Δ vs source (tol) | acc drop vs source (pts) |{thread_cols} p50 vs fp32 ({first} thr) "
        "| integer ops | size MB | status |\n" + "|---" * (12 + len(keys)) + "|\n"
    )
    rows = []
    for r in results:
        delta = "—" if r.max_abs_delta is None else f"{r.max_abs_delta:.2e}"
        if r.tolerance is not None:
            delta += f" (≤ {r.tolerance:g})"
        if r.source:
            delta += f" vs {r.source}"
        drop = "—" if r.accuracy_drop is None else f"{r.accuracy_drop:+.2f}"
        agreement = "—" if r.agreement is None else f"{100 * r.agreement:.2f}%"
        source_agreement = "—" if r.source_agreement is None else f"{100 * r.source_agreement:.2f}%"
        status = {"pass": "pass", "fail": "**FAIL**", "skipped": "skipped (left out)"}[r.status]
        name = f"**{r.name}** (chosen)" if r.name == chosen else r.name
        lat = _latency(r)
        cells = "".join(f" {lat[k]['p50_ms']:.2f} / {lat[k]['p90_ms']:.2f} |" if k in lat else " — |" for k in keys)
        rows.append(
            f"| {name} | {r.format} | {r.precision} | {100 * r.accuracy:.2f}% | {agreement} | {source_agreement} "
            f"| {delta} | {drop} |{cells} {_speed_cell(r, speed.get(r.name), keys)} "
            f"| {r.integer or '—'} | {r.size_bytes / 1e6:.1f} | {status} |"
        )
    return head + "\n".join(rows) + "\n"


def _speed_cell(r: ArtifactResult, s: SpeedRatio | None, keys: Sequence[str]) -> str:
    if s is None or not keys or keys[0] not in s.ratios:
        return "—"
    ratio = s.ratios[keys[0]]
    against = "src" if s.against == r.source else s.against
    return f"**{ratio:.2f}×** {against} (slower)" if ratio > 1 else f"{ratio:.2f}× {against}"


def to_markdown(report: Report, charts: Sequence[tuple[str, str]] = (), charts_note: str | None = None) -> str:
    """report.md; ``charts`` are (caption, file name) pairs beside it, ``charts_note`` why there are none."""
    d, m = report.data, machine()
    result = "PASSED" if report.passed else "FAILED"
    if report.left_out:
        result += f" — {len(report.left_out)} artifact(s) left out by the accuracy gate (see Left out)"
    lines = [f"# {report.kind.capitalize()} report", "", f"**Result: {result}**", ""]
    if report.kind == "export":
        trained_on = bool(report.selection.get("eval_trained_on"))
        lines.append(
            f"Data: {d.get('source')} — labels {d.get('labels')}; train {d.get('train')}, "
            f"validation {d.get('validation')}, eval {d.get('eval')} "
            + ("(the shipped models were refit on eval too: see below)." if trained_on else "(eval never trained on).")
        )
    else:
        lines.append(f"Data: {d.get('source')} — {d.get('rows')} rows, labels {d.get('labels')}.")
    lines += [f"- {n}" for n in d.get("notes", [])]
    lines += [
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores. Latency: batch 1, per text, tokenization included, "
        'median (p50) / p90 in ms at each thread count. "p50 vs fp32": a quantized artifact\'s p50 '
        "divided by its fp32 source's — above 1× it is slower than fp32 on this machine.",
        "",
        table(report.results, report.choice.name if report.choice else None, _reference_name(report)),
    ]
    if report.log:
        lines += ["", f"Full log of the run (dependency output and warnings): [{report.log}]({report.log})"]
    lines += batch_invariance(report.results)
    lines += selection_section(report.selection, report.data)
    lines += vocab_section(report.vocab)
    lines += quantization_notes(report.results)
    if report.left_out:
        lines += [
            "## Left out",
            "",
            "Measured, failed the accuracy gate and left out of the output (`--on-gate-fail skip`):",
            "",
        ]
        lines += [f"- **{r.name}** — skipped: {r.skipped}" for r in report.left_out] + [""]
    if report.choice is not None:
        lines += ["## Chosen bundle", "", report.choice.reason, ""]
    lines += [f"![{caption}]({name})\n" for caption, name in charts]
    if charts_note:
        lines += [f"_{charts_note}_", ""]
    if report.drift or report.notes:
        lines += [f"## Drift against the baseline ({report.config.get('baseline')})", "", drift_table(report.drift)]
        lines += [f"- {n}" for n in report.notes] + [""]
    if report.failures:
        lines += ["## Failures", ""] + [f"- {f}" for f in report.failures] + [""]
    if report.kind == "export":
        lines += ["## Bundles", ""] + [f"- `bundles/{b}`" for b in report.bundles] + [""]
    lines += training_section(report.training)
    lines += ["## Stage times", ""] + [f"- {k}: {v:.1f} s" for k, v in report.timings_s.items()] + [""]
    return "\n".join(lines)


def selection_section(selection: Mapping[str, Any], data: Mapping[str, Any]) -> list[str]:
    """ "Which model each number measures": the selection run's unseen-data accuracy, what the
    shipped (refit) models trained on, and whether the table's accuracy column is on seen rows."""
    if not selection:
        return []
    models = selection.get("models", {})
    unseen = ", ".join(f"{name} **{m['eval_accuracy']:.2%}**{_chosen(m)}" for name, m in models.items())
    rows = selection.get("eval_rows")
    first = (
        f"Selection run (trained on the {next(iter(models.values()), {}).get('train_rows')} train rows, "
        f"the schedule chosen on validation): held-out accuracy on the {rows} eval rows, never trained on: {unseen}."
    )
    refit = selection.get("refit")
    if refit == "off":
        shipped = (
            "Shipped models: the selection run's (`finetune.refit = off`); "
            "the table's accuracy is unseen-data accuracy."
        )
    elif selection.get("eval_trained_on"):
        shipped = (
            f"Shipped models: refit on all {selection['shipped_train_rows']} rows (`finetune.refit = all`), "
            "eval included, each up to the epoch its selection run chose. **The accuracy column above is on rows "
            "the refit models trained on: it is not unseen-data accuracy** (use the selection run's figures, or "
            "`finetune.refit = except-eval`, or a separate `--eval` file). Parity and the int8 gates compare each "
            "artifact with its own fp32 source and hold as stated."
        )
    else:
        carved = data.get("eval_carved", True)
        where = "eval, kept out of the refit" if carved else "the eval file, never trained on"
        shipped = (
            f"Shipped models: refit on {selection['shipped_train_rows']} rows (`finetune.refit = {refit}`), each up to "
            f"the epoch its selection run chose; the accuracy column above is on {where}: unseen-data accuracy."
        )
    return ["## Which model each number measures", "", f"- {first}", f"- {shipped}", ""]


def _chosen(m: Mapping[str, Any]) -> str:
    if m.get("chosen_epoch") is None:
        return ""
    return f" (best validation {m['best_validation_accuracy']:.2%} at epoch {m['chosen_epoch']:g})"


def vocab_section(v: Mapping[str, Any]) -> list[str]:
    """ "Vocabulary trimming": what the student kept, its embedding table before and after, and
    the eval words that became [UNK] or other pieces; nothing when trimming was off."""
    if not v:
        return []
    characters = ", every single-character piece and its ## form" if v["keep_characters"] else ""
    return [
        "## Vocabulary trimming",
        "",
        f"The shipped student keeps {v['pieces_kept']:,} of its {v['pieces_original']:,} word pieces: those that "
        f"{v['source_texts']:,} texts ({v['texts']}) use at least {v['min_count']} time(s), the special tokens"
        f"{characters}. Its word-embedding table: {v['embedding_mb_fp32_before']:g} MB → "
        f"{v['embedding_mb_fp32_after']:g} MB (fp32). Eval words that become [UNK]: "
        f"{v['eval_unknown_words_before']:.2%} before, {v['eval_unknown_words_after']:.2%} after; cut into other "
        f"pieces than before, [UNK] included: {v['eval_changed_words']:.2%} (of the source texts' words: "
        f"{v['source_changed_words']:.2%}). The "
        "`student` row is the trimmed model, gated against `student-untrimmed` (max drop, min agreement); every "
        "export is made from it.",
        "",
    ]


def training_section(training: Mapping[str, Any]) -> list[str]:
    """One line per trained model: size, best validation accuracy, how long it trained."""
    if not training:
        return []
    lines = ["## Training", ""]
    for name, t in training.items():
        best = t.get("best_validation_accuracy")
        how = "reused from an earlier run with the same inputs" if t.get("reused") else "trained in this run"
        lines.append(
            f"- **{name}**: {t['parameters'] / 1e6:.1f} M parameters, best validation accuracy "
            + (f"{best:.2%}" if best is not None else "not measured")
            + f" after {t.get('steps', '?')} steps; {t['train_seconds'] / 60:.1f} min of training, {how} "
            f"(`{t['checkpoint_dir']}`)"
        )
    return [*lines, ""]


def batch_invariance(results: Sequence[ArtifactResult]) -> list[str]:
    """One line: whether batching changed any bundle's labels, and the largest logit change it made."""
    checked = [r for r in results if r.batch_max_delta is not None]
    if not checked:
        return []
    worst = max(checked, key=lambda r: r.batch_max_delta or 0.0)
    changed = [r for r in checked if r.batch_label_changes]
    verdict = (
        "labels changed: " + ", ".join(f"{r.name} ({r.batch_label_changes})" for r in changed)
        if changed
        else "no label changed"
    )
    return [
        "",
        f"Batch invariance: every bundle's eval texts run one per call (the figures above) and again in "
        f"batches of mixed lengths: {verdict}; largest |logit Δ| {worst.batch_max_delta:.3g} ({worst.name}). "
        "ONNX int8 bundles run one text per call in the runtime, whatever the batch size.",
        "",
    ]


def quantization_notes(results: Sequence[ArtifactResult]) -> list[str]:
    """The "Quantization notes" section (what each quantizer decided), or nothing when none has notes."""
    noted = [r for r in results if r.notes]
    if not noted:
        return []
    lines = ["## Quantization notes", ""]
    for r in noted:
        lines += [f"- **{r.name}**"] + [f"  - {n}" for n in r.notes]
    return [*lines, ""]


def _reference_name(report: Report) -> str:
    if report.kind == "export":
        return "teacher"
    refs = report.config.get("references") or []
    return Path(refs[0]).name if len(refs) == 1 else "reference"


def write_report(report: Report, out_dir: Path) -> None:
    """Writes report.json and report.md, and the charts it shows when matplotlib is installed."""
    charts, note = draw_charts(report, out_dir)
    (out_dir / "report.json").write_text(dumps(report.to_dict()), encoding="utf-8")
    (out_dir / "report.md").write_text(to_markdown(report, charts, note), encoding="utf-8")


def dumps(data: Mapping[str, Any]) -> str:
    """Indented JSON with every list of numbers on one line (logit rows, confusion rows)."""
    text = json.dumps(data, indent=2)
    return re.sub(r"\[\s+([-+\d.eE,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"


def draw_charts(report: Report, out_dir: Path) -> tuple[list[tuple[str, str]], str | None]:
    """pareto.png (and confusion.png for a chosen bundle); returns (caption, file) pairs or why not."""
    from export.report import charts  # noqa: PLC0415 - matplotlib is an optional extra

    missing = charts.unavailable()
    if missing:
        return [], f"Charts skipped: {missing}"
    choice = report.choice or Choice(None, "")
    pareto = charts.pareto(report.results, out_dir / "pareto.png", choice.name, choice.budget_ms, choice.budget_mb)
    drawn = [("Accuracy against 1-thread p50 latency; marker area is file size", pareto.name)]
    if report.confusion is not None:
        path = charts.confusion_matrix(report.confusion, out_dir / "confusion.png")
        drawn.append((f"Confusion matrix of {report.confusion.artifact}", path.name))
    return drawn, None


def saved_results(report: Mapping[str, Any]) -> list[ArtifactResult]:
    """The :class:`ArtifactResult` rows of a loaded report.json (keys it does not know are dropped:
    a report written by a newer kit still renders)."""
    names = {f.name for f in dataclasses.fields(ArtifactResult)}
    return [ArtifactResult(**{k: v for k, v in r.items() if k in names}) for r in report["results"]]


def load_report(path: Path) -> dict[str, Any]:
    """Reads a report.json (the pipeline's or verify's) to use as a baseline.

    Raises:
        ConfigError: the file is missing, not JSON, of a newer version, or has no results.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"baseline {path} does not exist; pass a report.json written by the pipeline or verify"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"baseline {path} is not valid JSON ({e})") from None
    version = data.get("report_version") if isinstance(data, dict) else None
    if not isinstance(version, int) or version > REPORT_VERSION:
        raise ConfigError(f"baseline {path}: report_version {version!r} is not supported (this kit writes 1)")
    results = data.get("results")
    if not isinstance(results, list) or not all(isinstance(r, dict) and "name" in r for r in results):
        raise ConfigError(f"baseline {path} has no 'results' list of named results; is it a report.json?")
    return data

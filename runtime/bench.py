"""Per-text latency and throughput of a bundle, the way an app calls it: one text at a time.

Each call is timed end to end (tokenize, run, softmax, build the :class:`Prediction`), and
the time inside the backend is recorded separately, so the runtime's own overhead is a
measured fraction, not a guess.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.classifier import TextClassifier
from runtime.errors import InputError

TEXT_COLUMNS = ("text", "sentence", "review", "content", "tweet")


@dataclass(frozen=True)
class BenchResult:
    """Latency of one bundle at one thread count.

    Attributes:
        name: Bundle name.
        threads: Inference threads.
        texts: Texts timed (after warm-up).
        p50_ms / p90_ms / p99_ms: Per-text end-to-end latency percentiles.
        throughput: Texts per second, one text per call, sequential.
        model_p50_ms: Median time inside the backend alone.
        overhead: Share of total time spent outside the backend (tokenize, feeds, softmax).
    """

    name: str
    threads: int
    texts: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput: float
    model_p50_ms: float
    overhead: float


def read_texts(path: Path, limit: int | None = None) -> list[str]:
    """Texts from a ``.txt`` file (one per line) or a CSV/TSV with a header naming a text column.

    Raises:
        InputError: missing file, no text column, or no texts.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"texts file {path} does not exist")
    raw = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".tsv", ".csv"):
        reader = csv.DictReader(raw.splitlines(), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        columns = reader.fieldnames or []
        column = next((c for c in columns if c.lower() in TEXT_COLUMNS), None)
        if column is None:
            raise InputError(f"{path}: no text column among {columns}; expected one of {', '.join(TEXT_COLUMNS)}")
        texts = [row[column] for row in reader if (row.get(column) or "").strip()]
    else:
        texts = [line for line in raw.splitlines() if line.strip()]
    if not texts:
        raise InputError(f"{path} holds no texts")
    return texts[:limit] if limit else texts


def bench(clf: TextClassifier, texts: Sequence[str], warmup: int = 5) -> BenchResult:
    """Times ``clf.predict([text])`` for every text, after ``warmup`` untimed calls."""
    for text in texts[:warmup]:
        clf.predict([text])
    totals, models = [], []
    for text in texts:
        inside: list[float] = []
        start = time.perf_counter()
        clf._predict([text], 1, inside)  # noqa: SLF001 - same package; records backend time
        totals.append(time.perf_counter() - start)
        models.append(sum(inside))
    total = np.asarray(totals) * 1000.0
    model = np.asarray(models) * 1000.0
    return BenchResult(
        name=clf.manifest.name,
        threads=clf.threads,
        texts=len(texts),
        p50_ms=float(np.percentile(total, 50)),
        p90_ms=float(np.percentile(total, 90)),
        p99_ms=float(np.percentile(total, 99)),
        throughput=float(len(texts) / total.sum() * 1000.0),
        model_p50_ms=float(np.percentile(model, 50)),
        overhead=float(1.0 - model.sum() / total.sum()),
    )

"""Latency figures: p50 / p90 wall time per text at batch 1, at each thread count.

One text per call, tokenization included, after 3 warm-up calls — what an app that classifies
what a user just typed sees. Each thread count gets its own session (or torch thread setting),
so a quantized model that is slower than its fp32 source at 1 or 2 threads shows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from export.classifier import Classifier, torch_logits
from runtime import TextClassifier

Latencies = dict[str, dict[str, float]]
"""Thread-count key (``"1t"``, ``"2t"``, see :func:`latency_key`) → ``{"p50_ms": …, "p90_ms": …}``."""

WARMUP_CALLS = 3


def latency_key(threads: int) -> str:
    """The key of one thread count in :data:`Latencies`, e.g. ``"2t"``."""
    return f"{threads}t"


def latency_ms(predict_one: Callable[[str], Any], texts: Sequence[str]) -> tuple[float, float]:
    """p50 and p90 wall time in ms of ``predict_one(text)`` over ``texts`` after 3 warm-up calls."""
    for t in texts[:WARMUP_CALLS]:
        predict_one(t)
    times = []
    for t in texts:
        start = time.perf_counter()
        predict_one(t)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.percentile(times, 50)), float(np.percentile(times, 90))


def bundle_latency(bundle: Path, sample: Sequence[str], threads: Sequence[int]) -> Latencies:
    """p50 / p90 of one text per call through :class:`runtime.TextClassifier`, per thread count.

    Raises:
        BundleError: the bundle is missing, invalid or tampered with.
    """
    out: Latencies = {}
    for n in threads:
        clf = TextClassifier.load(bundle, threads=n)
        p50, p90 = latency_ms(lambda t, c=clf: c.logits([t]), sample)
        out[latency_key(n)] = {"p50_ms": p50, "p90_ms": p90}
    return out


def torch_latency(clf: Classifier, sample: Sequence[str], max_length: int, threads: Sequence[int]) -> Latencies:
    """Same as :func:`bundle_latency` for a PyTorch model; torch's thread count is restored after."""
    import torch  # noqa: PLC0415 - heavy: only when a torch model is timed

    previous = torch.get_num_threads()
    out: Latencies = {}
    try:
        for n in threads:
            torch.set_num_threads(n)
            p50, p90 = latency_ms(lambda t: torch_logits(clf, [t], max_length), sample)
            out[latency_key(n)] = {"p50_ms": p50, "p90_ms": p90}
    finally:
        torch.set_num_threads(previous)
    return out

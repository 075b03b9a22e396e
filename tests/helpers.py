"""Shared test helpers."""

from __future__ import annotations

import numpy as np


def assert_close(actual: object, expected: object, atol: float, what: str = "") -> None:
    """Asserts two arrays have the same shape and max |Δ| ≤ ``atol``; the message gives both."""
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    label = f"{what}: " if what else ""
    assert a.shape == b.shape, f"{label}shape {a.shape} != expected {b.shape}"
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    # NaN compares False, so a NaN anywhere fails too.
    assert diff <= atol, f"{label}max |Δ| = {diff:.3g} exceeds atol = {atol:.3g}"

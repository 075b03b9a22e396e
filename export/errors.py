"""Typed errors of the export pipeline.

Every error says what was received and what to do about it. The CLI turns an
``ExportError`` into a one-line message and a non-zero exit code; anything else
is a bug and keeps its traceback. The base class and the errors ``quantize`` raises too
(data, conversion, quantization) are defined in :mod:`quantize.errors` and re-exported here.
"""

from __future__ import annotations

from quantize.errors import ConversionError, DataError, ExportError, QuantizationError

__all__ = [
    "ConfigError",
    "ConversionError",
    "DataError",
    "ExportError",
    "ModelLoadError",
    "QuantizationError",
    "UnsupportedArchitectureError",
    "VerificationError",
]


class ConfigError(ExportError, ValueError):
    """A configuration value, TOML key or ``--set`` override is invalid."""


class ModelLoadError(ExportError):
    """A model or tokenizer cannot be loaded (bad path, hub offline, unknown type)."""


class UnsupportedArchitectureError(ModelLoadError):
    """The model's ``model_type`` is not in the architecture table."""


class VerificationError(ExportError):
    """One or more artifacts failed parity or the accuracy gate.

    Raised after every artifact was checked, so the message lists all failures.
    """

    exit_code = 1

    def __init__(self, failures: list[str], report_path: str | None = None) -> None:
        self.failures = list(failures)
        self.report_path = report_path
        where = f"\nFull report: {report_path}" if report_path else ""
        lines = "\n".join(f"  - {f}" for f in self.failures)
        super().__init__(f"verification failed for {len(self.failures)} check(s):\n{lines}{where}")

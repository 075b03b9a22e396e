"""Errors raised on purpose by the build side of the kit (``quantize`` and ``export``).

They live here, in the lower of the two packages, so that ``quantize`` depends on nothing in
``export``; :mod:`export.errors` adds the pipeline's own (config, model loading, verification)
and re-exports these. Every message says what was received and what to do about it. The CLI
turns an :class:`ExportError` into a one-line message and a non-zero exit code; anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["ConversionError", "DataError", "ExportError", "QuantizationError"]


class ExportError(Exception):
    """Base class of every error the exporter and quantizers raise on purpose."""

    exit_code = 2


class DataError(ExportError, ValueError):
    """A data file is missing, unreadable or does not hold usable labelled text."""


class ConversionError(ExportError):
    """An exporter (ONNX, TFLite) or quantizer failed on a model."""


class QuantizationError(ConversionError):
    """A quantizer failed; the message names the model and the mode."""

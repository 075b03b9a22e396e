"""Error hierarchy of the on-device runtime.

Every error raised on purpose by :mod:`runtime` derives from :class:`RuntimeKitError`, so
callers (and the CLI) can catch one type. Messages say what was found and what to do.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "BundleError",
    "GoldenMismatchError",
    "InputError",
    "RuntimeKitError",
]


class RuntimeKitError(Exception):
    """Base class of every error raised on purpose by the runtime."""


class BundleError(RuntimeKitError):
    """A bundle is unusable: manifest missing, malformed or unsupported, or a file is
    missing, tampered with, or does not match what the manifest declares."""


class GoldenMismatchError(BundleError):
    """The bundle loaded, but its golden examples do not reproduce (see
    :meth:`runtime.TextClassifier.selftest`)."""


class BackendUnavailableError(RuntimeKitError):
    """The inference engine a bundle needs (onnxruntime or ai-edge-litert) is not installed."""


class InputError(RuntimeKitError, ValueError):
    """A runtime call got a bad argument, e.g. a bare string or an empty text to ``predict``."""

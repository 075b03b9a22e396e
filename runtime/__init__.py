"""On-device runtime for bert-mobile-kit bundles: tokenize, run ONNX or TFLite, classify.

Depends on numpy, tokenizers and one inference engine (onnxruntime or ai-edge-litert,
imported only when a bundle needs it); never on torch or transformers.

Example:
    >>> from runtime import TextClassifier
    >>> clf = TextClassifier.load("out/student-onnx-int8")  # doctest: +SKIP
    >>> clf.predict(["great phone, awful battery"])  # doctest: +SKIP
"""

from runtime import errors
from runtime.bundle import Manifest, load_manifest
from runtime.classifier import Prediction, TextClassifier
from runtime.errors import (
    BackendUnavailableError,
    BundleError,
    GoldenMismatchError,
    InputError,
    RuntimeKitError,
)

__all__ = [
    "BackendUnavailableError",
    "BundleError",
    "GoldenMismatchError",
    "InputError",
    "Manifest",
    "Prediction",
    "RuntimeKitError",
    "TextClassifier",
    "errors",
    "load_manifest",
]

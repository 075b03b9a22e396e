"""Text classification from a bundle: tokenize, run the backend, softmax.

Example:
    >>> clf = TextClassifier.load("out/student-onnx-int8")  # doctest: +SKIP
    >>> clf.predict(["what a great movie"])[0].label  # doctest: +SKIP
    'positive'
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.backends import Backend, open_backend
from runtime.bundle import MANIFEST_NAME, Manifest, load_manifest
from runtime.errors import BundleError, GoldenMismatchError, InputError
from runtime.tokenizer import BundleTokenizer

__all__ = ["Prediction", "TextClassifier", "batch_dependent", "golden_atol"]

_BACKEND_CHOICES = ("auto", "onnx", "tflite")
_FEEDABLE = ("input_ids", "attention_mask", "token_type_ids")
_DEFAULT_BATCH = 32

# Golden logits are recorded from the same artifact, so float models reproduce them to
# rounding noise. Int8 kernels do not: dynamic quantisation rounds activations per call,
# and ORT/XNNPACK pick different int8 kernels (VNNI, AVX2, NEON) on different CPUs, which
# moves logits by ~1e-2 on the same input. 5e-2 still catches a wrong model or tokenizer.
_ATOL_FLOAT = 1e-3
_ATOL_QUANTIZED = 5e-2
_QUANTIZED_MARKERS = ("int8", "int4", "uint8")

# ONNX Runtime's dynamic quantization takes one activation scale per tensor, over every row
# of the call (padding included): in a batch, a text's int8 rounding depends on its
# batch-mates, and 12 of 872 SST-2 sentences changed label between batch 1 and batch 32
# (issue 20). Such models run one text per call, unpadded, whatever ``batch_size`` says, so
# a text gets the result a phone classifying it alone gets. ONNX static int8 (QDQ:
# ``int8-static``, ``int8-qat``) has fixed scales, yet a padded row is not bit-identical either:
# the float Softmax between its DequantizeLinear and QuantizeLinear sums exp(−30) terms for the
# masked positions (~1e-13 relative), which flips a probability sitting on an int8 rounding
# boundary; on 861 SST-2 sentences the int8-qat student moved by up to 0.18 in logits (no label)
# between batch 1 and batch 32, over the 0.05 tolerance. TFLite's dynamic int8 quantizes each
# token row on its own and its full-integer models pad every text to its length bucket on both
# paths: those batch.
_PER_CALL_SCALES = frozenset({("onnx", "int8-dynamic"), ("onnx", "int8-static"), ("onnx", "int8-qat")})


def batch_dependent(manifest: Manifest) -> bool:
    """Whether a bundle's model, run on a batch, would give a text a batch-dependent result.

    :class:`TextClassifier` runs such bundles one text per call.
    """
    return (manifest.backend, manifest.precision) in _PER_CALL_SCALES


def golden_atol(precision: str) -> float:
    """Returns the logit tolerance :meth:`TextClassifier.selftest` uses for a precision."""
    return _ATOL_QUANTIZED if any(m in precision for m in _QUANTIZED_MARKERS) else _ATOL_FLOAT


@dataclass(frozen=True)
class Prediction:
    """One classified text.

    Attributes:
        label: The most probable label.
        score: Its probability.
        probabilities: Label -> probability (sums to 1).
        truncated: Whether the text was cut at the bundle's ``max_length``; the prediction
            then only saw its beginning.
    """

    label: str
    score: float
    probabilities: Mapping[str, float]
    truncated: bool

    def as_dict(self) -> dict[str, Any]:
        """Returns a JSON-ready dict."""
        return {
            "label": self.label,
            "score": self.score,
            "probabilities": dict(self.probabilities),
            "truncated": self.truncated,
        }


class TextClassifier:
    """A bundle's tokenizer and model, ready to classify texts.

    Build one with :meth:`load`. The tokenizer and backend are created once; ``predict`` and
    ``logits`` may be called from several threads (the TFLite backend serialises them).

    Args:
        manifest: The bundle's manifest.
        tokenizer: Tokenizer for ``manifest.tokenizer_file``.
        backend: Loaded model for ``manifest.model_file``.

    Raises:
        BundleError: The manifest and the model file disagree on inputs or sequence length.
    """

    def __init__(self, manifest: Manifest, tokenizer: BundleTokenizer, backend: Backend, threads: int = 1) -> None:
        self.manifest = manifest
        self.threads = threads
        self._tokenizer = tokenizer
        self._backend = backend
        unknown = [n for n in manifest.input_names if n not in _FEEDABLE]
        if unknown:
            raise BundleError(
                f"manifest input(s) {', '.join(unknown)} cannot be fed; the runtime fills {', '.join(_FEEDABLE)}"
            )
        missing = [n for n in backend.input_names if n not in manifest.input_names]
        if missing:
            raise BundleError(
                f"model {manifest.model_file} takes {', '.join(missing)}, which manifest input_names "
                f"{list(manifest.input_names)} lacks; the bundle is inconsistent, re-export it"
            )
        # By name: a manifest input the model does not take (token_type_ids for DistilBERT)
        # is dropped rather than fed by position.
        self._feed_names = tuple(n for n in manifest.input_names if n in backend.input_names)
        self._one_per_call = batch_dependent(manifest)
        # The single-text path builds its arrays in the model's dtype when all inputs share one
        # (int32 for litert-torch TFLite), so the backend passes them through unconverted. A
        # backend of an older Backend protocol, without input_dtypes, gets int64.
        declared = getattr(backend, "input_dtypes", None) or {}
        dtypes = {np.dtype(declared.get(n, np.int64)) for n in self._feed_names}
        self._feed_dtype = dtypes.pop() if len(dtypes) == 1 else np.dtype(np.int64)
        if backend.fixed_length is not None and backend.fixed_length != manifest.fixed_length:
            raise BundleError(
                f"model {manifest.model_file} takes sequences of {backend.fixed_length} tokens but "
                f"the manifest says fixed_length={manifest.fixed_length}; re-export the bundle"
            )
        # Sequence lengths the model takes (empty: dynamic); each text is padded to the
        # smallest one that holds it.
        self._buckets = manifest.buckets or ((manifest.fixed_length,) if manifest.fixed_length else ())
        if backend.buckets and tuple(backend.buckets) != self._buckets:
            raise BundleError(
                f"model {manifest.model_file} takes sequences of {list(backend.buckets)} tokens but the "
                f"manifest says buckets={list(manifest.buckets)}; re-export the bundle"
            )

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto", threads: int = 1) -> TextClassifier:
        """Loads a bundle directory, checking its manifest and file hashes.

        Args:
            path: The bundle directory (a path to its ``manifest.json`` also works).
            backend: ``"auto"`` (the manifest's backend), ``"onnx"`` or ``"tflite"``; a
                specific one must match the bundle.
            threads: Inference threads.

        Returns:
            The classifier.

        Raises:
            InputError: ``backend`` is not one of the choices.
            BundleError: The bundle is missing, invalid, tampered with, or of another backend.
            BackendUnavailableError: The bundle's inference engine is not installed.
        """
        if backend not in _BACKEND_CHOICES:
            raise InputError(f"backend must be one of {', '.join(_BACKEND_CHOICES)}, got {backend!r}")
        bundle_dir = Path(path)
        if bundle_dir.is_file() and bundle_dir.name == MANIFEST_NAME:
            bundle_dir = bundle_dir.parent
        manifest = load_manifest(bundle_dir)
        if backend not in ("auto", manifest.backend):
            raise BundleError(
                f"bundle {bundle_dir} holds a {manifest.backend} model ({manifest.model_file}), but "
                f"backend={backend!r} was requested; load a {backend} bundle or pass backend='auto'"
            )
        model = open_backend(bundle_dir / manifest.model_file, threads)
        tokenizer = BundleTokenizer(bundle_dir / manifest.tokenizer_file, manifest.max_length)
        return cls(manifest, tokenizer, model, threads)

    def __repr__(self) -> str:
        m = self.manifest
        return (
            f"TextClassifier(name={m.name!r}, backend={m.backend!r}, "
            f"precision={m.precision!r}, labels={list(m.labels)})"
        )

    def predict(self, texts: Sequence[str], batch_size: int = _DEFAULT_BATCH) -> list[Prediction]:
        """Classifies texts.

        Args:
            texts: Non-empty list of non-blank strings.
            batch_size: Texts per tokenizer call; ONNX pads each batch to its longest text,
                TFLite pads each text to the smallest of the model's length buckets that
                holds it (one backend call per bucket used). Bundles whose model would
                give a batch-dependent result (:func:`batch_dependent`: ONNX int8)
                run one text per call whatever ``batch_size`` is, so a text's label and
                logits never depend on the texts it is batched with.

        Returns:
            One :class:`Prediction` per text, in order.

        Raises:
            InputError: ``texts`` is a bare string, empty, or holds a non-string or blank item;
                or ``batch_size`` is not positive.
        """
        return self._predict(texts, batch_size, None)

    def _predict(self, texts: Sequence[str], batch_size: int, model_time: list[float] | None) -> list[Prediction]:
        # model_time, when given, collects the seconds spent in the backend (for ``bench``).
        logits, truncated = self._infer(texts, batch_size, model_time)
        labels = self.manifest.labels
        out = []
        # Python floats, not numpy: a handful of labels per row, and right after the model has
        # run numpy's per-call dispatch costs more than the arithmetic (issue 20's overhead).
        for row, cut in zip(logits.tolist(), truncated, strict=True):
            probs = _softmax_row(row)
            best = row.index(max(row))  # the most probable label is the largest logit's
            out.append(
                Prediction(
                    label=labels[best],
                    score=probs[best],
                    probabilities=dict(zip(labels, probs, strict=True)),
                    truncated=cut,
                )
            )
        return out

    def logits(self, texts: Sequence[str], batch_size: int = _DEFAULT_BATCH) -> np.ndarray:
        """Returns raw float32 logits ``[len(texts), num_labels]``.

        Args:
            texts: As for :meth:`predict`.
            batch_size: As for :meth:`predict`.

        Raises:
            InputError: As for :meth:`predict`.
        """
        return self._infer(texts, batch_size)[0]

    def selftest(self) -> list[tuple[str, float]]:
        """Re-runs the manifest's golden examples.

        Token ids must match exactly; logits must match within :func:`golden_atol` for the
        bundle's precision (1e-3 for float models, 5e-2 for int8 ones, whose kernels differ
        between CPUs).

        Returns:
            ``(text, max |Δ| logits)`` for each golden example.

        Raises:
            BundleError: The bundle has no golden examples.
            GoldenMismatchError: Some examples fail; the message lists each one with its
                max |Δ| against the tolerance.
        """
        m = self.manifest
        if not m.golden:
            raise BundleError(f"bundle {m.name!r} has no golden examples to check; re-export it with some")
        atol = golden_atol(m.precision)
        texts = [g["text"] for g in m.golden]
        encoded = self._tokenizer.encode(texts, pad_to=None)
        logits = self.logits(texts).astype(np.float64)
        results: list[tuple[str, float]] = []
        failures: list[str] = []
        for i, example in enumerate(m.golden):
            where = f"golden[{i}] {_short(example['text'])!r}"
            length = int(encoded.attention_mask[i].sum())
            ids = tuple(int(x) for x in encoded.input_ids[i, :length])
            if not self._ids_match(example["input_ids"], ids):
                expected = _short(example["input_ids"])
                failures.append(f"{where}: input_ids differ (expected {expected}, got {_short(ids)})")
            delta = float(np.max(np.abs(logits[i] - np.asarray(example["logits"], dtype=np.float64))))
            if not delta <= atol:  # also catches NaN
                failures.append(f"{where}: max |Δ| logits {delta:.3g} > atol {atol:g}")
            results.append((example["text"], delta))
        if failures:
            raise GoldenMismatchError(
                f"bundle {m.name!r} ({m.backend}, {m.precision}): {len(failures)} golden check(s) failed "
                f"of {len(m.golden)} examples:\n  " + "\n  ".join(failures)
            )
        return results

    def _ids_match(self, expected: Sequence[int], ids: tuple[int, ...]) -> bool:
        # Golden ids are unpadded; ids padded with the pad token are accepted too.
        n = len(ids)
        pad = self._tokenizer.pad_id
        return tuple(expected[:n]) == ids and all(x == pad for x in expected[n:])

    def _infer(
        self, texts: Sequence[str], batch_size: int, model_time: list[float] | None = None
    ) -> tuple[np.ndarray, list[bool]]:
        items = _check_texts(texts)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
        num_labels = len(self.manifest.labels)
        if len(items) == 1 or self._one_per_call:
            # One text per call (a phone's way; and every ONNX int8 bundle's, batch invariance):
            # one tokenizer call padded straight to the text's bucket, one array build.
            rows, cut = [], []
            for text in items:
                one = self._tokenizer.encode_one(text, self._buckets, self._feed_dtype)
                feeds = {n: getattr(one, n) for n in self._feed_names}
                rows.append(self._timed_backend(feeds, 1, num_labels, model_time))
                cut.append(one.truncated[0])
            return (rows[0] if len(rows) == 1 else np.concatenate(rows, axis=0)), cut
        chunks: list[np.ndarray] = []
        truncated: list[bool] = []
        pad_to = self._buckets[-1] if self._buckets else None
        for start in range(0, len(items), batch_size):
            encoded = self._tokenizer.encode(items[start : start + batch_size], pad_to=pad_to)
            feeds = encoded.as_feeds()
            feeds = {n: feeds[n] for n in self._feed_names}
            logits = self._run(feeds, encoded.attention_mask, num_labels, model_time)
            chunks.append(logits)
            truncated.extend(encoded.truncated)
        return (chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=0)), truncated

    def _run(
        self,
        feeds: dict[str, np.ndarray],
        attention_mask: np.ndarray,
        num_labels: int,
        model_time: list[float] | None,
    ) -> np.ndarray:
        """Runs the backend, each row padded to the smallest bucket that holds its ``lengths`` tokens.

        ``feeds`` are right-padded to the largest bucket (or the batch's longest row), so
        cutting columns gives the same rows padded to a smaller bucket. ``model_time``, when
        given, collects the seconds spent inside the backend alone.
        """
        rows = attention_mask.shape[0]
        if not self._buckets:  # dynamic axes: one call, no regrouping
            return self._timed_backend(feeds, rows, num_labels, model_time)
        which = np.searchsorted(self._buckets, attention_mask.sum(axis=1))
        out = np.empty((rows, num_labels), dtype=np.float32)
        for index in np.unique(which):
            width = self._buckets[index]
            idx = np.flatnonzero(which == index)
            one_group = len(idx) == rows
            part = {n: v[:, :width] if one_group else v[idx, :width] for n, v in feeds.items()}
            out[idx] = self._timed_backend(part, len(idx), num_labels, model_time)
        return out

    def _timed_backend(
        self, feeds: dict[str, np.ndarray], rows: int, num_labels: int, model_time: list[float] | None
    ) -> np.ndarray:
        began = time.perf_counter()
        logits = self._backend.run(feeds)
        if model_time is not None:
            model_time.append(time.perf_counter() - began)
        if logits.shape != (rows, num_labels):
            raise BundleError(
                f"model {self.manifest.model_file} returned logits of shape {logits.shape}, expected "
                f"({rows}, {num_labels}) for {num_labels} labels; the manifest does not fit the model"
            )
        return logits


def _check_texts(texts: Any) -> list[str]:
    if type(texts) is list and len(texts) == 1 and type(texts[0]) is str and texts[0] and not texts[0].isspace():
        return texts  # predict([text]): the common case, without the generic checks below (issue 20)
    if isinstance(texts, str):
        raise InputError("texts must be a list of strings, got a single str; pass [text]")
    if isinstance(texts, (bytes, bytearray, Mapping)) or not isinstance(texts, Iterable):
        raise InputError(f"texts must be a list of strings, got {type(texts).__name__}")
    items = list(texts)
    if not items:
        raise InputError("texts is empty; pass at least one text")
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise InputError(f"texts[{i}] is a {type(text).__name__}, expected str")
        if not text.strip():
            raise InputError(f"texts[{i}] is empty or whitespace-only; there is nothing to classify")
    return items


def _softmax_row(row: list[float]) -> list[float]:
    """Softmax of one row of logits in double precision; the largest logit is subtracted first."""
    top = max(row)
    exps = [math.exp(x - top) for x in row]  # exp never overflows
    total = math.fsum(exps)
    return [e / total for e in exps]


def _short(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else str(list(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."

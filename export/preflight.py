"""Checks that need neither torch nor transformers, run before those are imported: a bad path, an
unwritable output or an unreachable hub id answers in well under a second, with one line.

:func:`preflight` is what ``python -m export`` calls first; :func:`export.pipeline.run` repeats the
cheap ones for callers that use the API directly.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from export.classifier import resolve_model_path
from export.config import OnnxConfig, OnnxExporter, PipelineConfig, TfliteConverter
from export.convert.tflite_tensorflow import tensorflow_installed
from export.data.dataset import Dataset, load_data
from export.errors import ConfigError, ModelLoadError

log = logging.getLogger(__name__)

_TRUE = ("1", "true", "yes", "on")
#: The ONNX opset each exporter writes natively (onnx.opset unset).
NATIVE_OPSET = {OnnxExporter.OPTIMUM: 17, OnnxExporter.DYNAMO: 18}
_PROBE_TIMEOUT_S = 3.0
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def preflight(cfg: PipelineConfig) -> Dataset:
    """Checks the output folder and every model source, then reads the data (or fails on it).

    Returns:
        The loaded dataset, so that the pipeline does not read it twice.

    Raises:
        ConfigError: the output path is a file or a non-empty folder (without ``overwrite``).
        ModelLoadError: a model folder is missing or not a model, or a hub id cannot be fetched
            (offline, or the hub unreachable) and is not in the local Hugging Face cache.
        DataError: the data files are missing or malformed.
    """
    check_output_dir(cfg.out, cfg.overwrite)
    resolve_toolchain(cfg)
    check_model_source(cfg.model.name_or_path, "model.name_or_path (--model)")
    if cfg.distill.student_model:
        check_model_source(cfg.distill.student_model, "distill.student_model")
    return load_data(cfg.data, cfg.seed)


def installed(distribution: str) -> str | None:
    """The installed version of a distribution (read from its metadata, nothing imported), or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def transformers_major() -> int:
    """The installed transformers' major version (0 without transformers)."""
    version = installed("transformers")
    return int(version.split(".")[0]) if version else 0


def resolve_toolchain(cfg: PipelineConfig) -> PipelineConfig:
    """``cfg`` with ``onnx.exporter = auto`` and an unset ``onnx.opset`` made concrete, after
    checking that the converters it names are installed and fit the installed transformers.

    ``auto`` is optimum-onnx where it is installed (the ``optimum`` extra; it pins transformers
    4.57), else torch's dynamo exporter, which works on transformers 4 and 5 alike.

    Raises:
        ConfigError: ``onnx.exporter = optimum`` without optimum-onnx, or ``tflite.converter =
            tensorflow`` without TensorFlow or on transformers 5 (which has no TF classes).
    """
    if cfg.tflite.enabled and cfg.tflite.converter is TfliteConverter.TENSORFLOW:
        if not tensorflow_installed():
            raise ConfigError(
                "tflite.converter=tensorflow needs TensorFlow: pip install 'bert-mobile-kit[tf]' "
                "(or use tflite.converter=litert-torch)"
            )
        if transformers_major() >= 5:
            raise ConfigError(
                f"tflite.converter=tensorflow needs transformers 4.x (installed: {installed('transformers')}; "
                "5.x removed the TF model classes): pip install 'bert-mobile-kit[tf]' pins it, or use "
                "tflite.converter=litert-torch"
            )
    return dataclasses.replace(cfg, onnx=resolve_onnx(cfg.onnx))


def resolve_onnx(onnx_cfg: OnnxConfig) -> OnnxConfig:
    """``onnx_cfg`` with a concrete exporter and opset (see :func:`resolve_toolchain`).

    Raises:
        ConfigError: ``onnx.exporter = optimum`` without optimum-onnx.
    """
    exporter = onnx_cfg.exporter
    has_optimum = installed("optimum-onnx") is not None and transformers_major() < 5
    if exporter is OnnxExporter.OPTIMUM and not has_optimum:
        raise ConfigError(
            "onnx.exporter=optimum needs optimum-onnx, which needs transformers 4.57 (installed: "
            f"{installed('transformers') or 'none'}): pip install 'bert-mobile-kit[optimum]', or set "
            "onnx.exporter=dynamo (or auto)"
        )
    if exporter is OnnxExporter.AUTO:
        exporter = OnnxExporter.OPTIMUM if has_optimum else OnnxExporter.DYNAMO
        log.info(
            "onnx.exporter=auto: %s%s",
            exporter.value,
            "" if has_optimum else " (optimum-onnx, which needs transformers 4.57, is not installed)",
        )
    if exporter is onnx_cfg.exporter and onnx_cfg.opset is not None:
        return onnx_cfg
    opset = onnx_cfg.opset if onnx_cfg.opset is not None else NATIVE_OPSET[exporter]
    return dataclasses.replace(onnx_cfg, exporter=exporter, opset=opset)


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Refuses to write into a non-empty directory unless ``overwrite`` is set."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output path {out} is a file; pass a directory with --out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"output directory {out} is not empty; choose another --out or pass --overwrite")


def check_model_source(name_or_path: str, key: str) -> None:
    """A local model folder must exist and hold a ``config.json``; a hub id must be in the local
    Hugging Face cache or fetchable now (the hub on, and reachable: one connection attempt of a few
    seconds, skipped behind a proxy, instead of the download's retries).

    Raises:
        ModelLoadError: naming ``key``, the value and what to do.
    """
    source = resolve_model_path(name_or_path)
    path = Path(source).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"{key}: model folder {source} has no config.json (is it a Hugging Face model folder?)"
            )
        return
    if _looks_like_path(source):
        raise ModelLoadError(
            f"{key}: model folder {source} does not exist; pass an existing folder or a hub id such as "
            "'google/bert_uncased_L-4_H-256_A-4'"
        )
    if _cached(source):
        return
    if offline():
        raise ModelLoadError(
            f"{key}: {source!r} is not a local folder and not in the Hugging Face cache, and the hub is switched "
            "off (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE); pass a local model folder, or download it once online"
        )
    reason = hub_unreachable()
    if reason:
        raise ModelLoadError(
            f"{key}: {source!r} is not a local folder and not in the Hugging Face cache, and the hub cannot be "
            f"reached ({reason}); pass a local model folder, or run once with network access"
        )


def offline() -> bool:
    """Whether the user switched the Hugging Face hub off."""
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_unreachable() -> str | None:
    """Why the hub's host cannot be reached (one TCP connection, a few seconds at most), or None if it
    can — or if a proxy is configured, which a direct connection would not test."""
    if any(os.environ.get(v) for v in _PROXY_VARS):
        return None
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S):
            return None
    except OSError as e:
        return f"{host}:{port}: {e.strerror or type(e).__name__}"


def _looks_like_path(source: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else with a separator is meant as a folder."""
    return source.startswith((".", "/", "~")) or source.count("/") > 1 or os.sep != "/" and os.sep in source


def _cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache  # noqa: PLC0415 - light; only for hub ids
    except ImportError:  # pragma: no cover - transformers depends on it
        return False
    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - an invalid repo id is simply not cached
        return False

"""A quiet console for ``python -m export``: the kit's own stage lines, progress bars and result on
screen; everything the dependencies print — Python warnings, their logging, and what native code
(TensorFlow Lite, absl, XNNPACK, torch's C++) writes straight to file descriptors 1 and 2 — into a
log file.

Inside :func:`quiet_console` the process's stdout and stderr (file descriptors *and*
``sys.stdout`` / ``sys.stderr``) are the log file; the console is a duplicate of the original
descriptors that only the kit writes to: log records of the ``export``, ``quantize`` and
``runtime`` loggers, every tqdm progress bar (the kit's training, logits, calibration and search
bars, and the quantizer's own), and :attr:`Console.out` / :attr:`Console.err` for the result and
errors. The log file gets every record at INFO and above from every logger, with its time and
name. On leaving, the original descriptors come back (a traceback then reaches the terminal).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

KIT_LOGGERS = ("export", "quantize", "runtime", "__main__")
"""Loggers whose records reach the console; every other logger's go to the log file only."""

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_CONSOLE_FORMAT = "%(asctime)s %(message)s"


@dataclass(frozen=True)
class Console:
    """Where the kit writes for the user while dependencies write to :attr:`log`."""

    out: TextIO
    err: TextIO
    log: Path | None
    """The log file, or None when nothing is redirected (``-v``)."""


class _KitOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".")[0] in KIT_LOGGERS


@contextlib.contextmanager
def quiet_console(log_path: Path, *, level: int = logging.INFO, bars: bool = True) -> Iterator[Console]:
    """Sends the process's stdout / stderr to ``log_path`` (appended) for the block; yields the console.

    ``level``: the lowest level of the kit's records shown on the console (``WARNING`` for ``-q``).
    ``bars``: progress bars on the console (else in the log file, as on a non-terminal).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    log = open(log_path, "a", buffering=1, encoding="utf-8", errors="replace")
    # The console is the terminal (a duplicate of fd 1 / 2) unless sys.stdout / sys.stderr were
    # replaced before the run (a notebook, pytest's capsys, contextlib.redirect_stdout): then the
    # kit's lines go to the replacement, where its owner expects them.
    own: list[TextIO] = []

    def console(current: TextIO, original: TextIO | None, fd: int) -> TextIO:
        if current is not original:
            return current
        stream = os.fdopen(os.dup(saved[fd]), "w", buffering=1, encoding="utf-8", errors="replace")
        own.append(stream)
        return stream

    out = console(sys.stdout, sys.__stdout__, 1)
    err = console(sys.stderr, sys.__stderr__, 2)
    old_streams = sys.stdout, sys.stderr
    root = logging.getLogger()
    old_root = root.level, list(root.handlers)
    restore_tqdm = _tqdm_to(err if bars else log)
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = sys.stderr = log
        to_file = logging.StreamHandler(log)
        to_file.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))
        to_console = logging.StreamHandler(err)
        to_console.setFormatter(logging.Formatter(_CONSOLE_FORMAT, "%H:%M:%S"))
        to_console.addFilter(_KitOnly())
        to_console.setLevel(level)
        root.handlers = [to_file, to_console]
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        yield Console(out, err, log_path)
    finally:
        logging.captureWarnings(False)
        root.setLevel(old_root[0])
        root.handlers = old_root[1]
        restore_tqdm()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = old_streams
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        for stream in (*own, log):
            with contextlib.suppress(Exception):
                stream.close()


@contextlib.contextmanager
def plain_console(level: int = logging.INFO) -> Iterator[Console]:
    """Everything on the terminal, as before (``-v``): logging to stderr at ``level``."""
    logging.basicConfig(level=level, format=_FORMAT, datefmt="%H:%M:%S")
    yield Console(sys.stdout, sys.stderr, None)


def _tqdm_to(stream: TextIO) -> Any:
    """Makes every tqdm bar created from now on write to ``stream`` unless given a file; returns the undo.

    When ``stream`` is not a terminal (CI logs, ``| tee``), transient bars (``leave=False``, e.g. the
    Trainer's evaluation bar inside the training bar) are not drawn: a nested bar moves the cursor
    with a newline per update, which a terminal redraws in place and a log file keeps as a line
    each (about 80 of the default run's lines); bars that stay are drawn at most every 10 s.
    """
    try:
        terminal = bool(stream.isatty())
    except (AttributeError, ValueError):
        terminal = False
    try:
        from tqdm import std  # noqa: PLC0415 - only when tqdm is installed (always, with the training extras)
    except ImportError:  # pragma: no cover - the runtime alone does not need it
        return lambda: None
    original = std.tqdm.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) < 5 and kwargs.get("file") is None:  # file is tqdm's 5th parameter
            kwargs["file"] = stream
            if not terminal:
                if kwargs.get("leave") is False or (kwargs.get("position") or 0) > 0:
                    kwargs["disable"] = True
                kwargs.setdefault("mininterval", 10.0)
        original(self, *args, **kwargs)

    std.tqdm.__init__ = init  # type: ignore[method-assign]

    def undo() -> None:
        std.tqdm.__init__ = original  # type: ignore[method-assign]

    return undo

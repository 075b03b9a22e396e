"""What the benchmarks share: writing one section into BENCHMARKS.md between its own begin/end
markers, and timing ONNX Runtime sessions in turns."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def config_label(config: Path, overrides: list[str]) -> str:
    """How the command line named the config: repo-relative, with its ``--set`` overrides."""
    root = BENCHMARKS_MD.parent
    label = str(config.relative_to(root) if config.is_relative_to(root) else config)
    return " ".join([label, *(f"--set {o}" for o in overrides)])


def write_section(section: str, begin: str, end: str, path: Path = BENCHMARKS_MD) -> None:
    """Replaces the text between ``begin`` and ``end`` (markers included) or appends ``section``."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if begin in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def publish(section: str, begin: str, end: str, write: bool) -> None:
    """Prints a finished section and, unless ``write`` is False (``--no-write``), writes it."""
    if write:
        write_section(section, begin, end)
    print(section)


def time_in_turns(
    sessions: Mapping[str, Any], feeds: Sequence[Mapping[str, np.ndarray]], rounds: int
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Times ONNX Runtime sessions one text per call, taking turns for ``rounds`` rounds (10
    warm-up calls each time), so a burst of load does not land on one session only.

    Returns:
        Each session's fastest round in ms per text, and its first-row logits of the last round
        (``[texts, labels]``). Every session is fed only the inputs it declares.
    """
    names = {k: [i.name for i in s.get_inputs()] for k, s in sessions.items()}
    best = dict.fromkeys(sessions, float("inf"))
    outputs: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for k, s in sessions.items():
            mine = [{n: f[n] for n in names[k]} for f in feeds]
            for f in mine[:10]:
                s.run(None, f)
            logits, began = [], time.perf_counter()
            for f in mine:
                logits.append(s.run(None, f)[0][0])
            best[k] = min(best[k], (time.perf_counter() - began) / len(mine) * 1e3)
            outputs[k] = np.asarray(logits)
    return best, outputs

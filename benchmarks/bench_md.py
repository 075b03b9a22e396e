"""Writes one benchmark's section into BENCHMARKS.md, between its own begin/end markers."""

from __future__ import annotations

import re
from pathlib import Path

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

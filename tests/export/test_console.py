"""The quiet console: the kit's lines on the console, everything else in the log file."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

from export.console import quiet_console


def test_a_replaced_stdout_gets_the_kits_lines_and_the_log_gets_the_rest(tmp_path: Path) -> None:
    """In a notebook, under capsys or redirect_stdout, sys.stdout is not the terminal: the kit's
    console lines go where the caller pointed sys.stdout / sys.stderr, not to fd 1 / 2."""
    out, err = io.StringIO(), io.StringIO()
    log_path = tmp_path / "run.log"
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        with quiet_console(log_path) as con:
            print("dependency chatter")  # what a library prints: the log
            logging.getLogger("a_dependency.module").warning("dependency warning")
            logging.getLogger("export.pipeline").info("kit stage line")
            print("verify table", file=con.out)
    log = log_path.read_text(encoding="utf-8")
    assert out.getvalue() == "verify table\n", out.getvalue()
    assert "kit stage line" in err.getvalue() and "dependency" not in err.getvalue(), err.getvalue()
    assert "dependency chatter" in log and "dependency warning" in log and "kit stage line" in log, log


def test_off_a_terminal_transient_bars_are_not_drawn(tmp_path: Path) -> None:
    """A nested bar writes a newline per update (redrawn in place on a terminal, a line each in a log
    file): off a terminal the kit's console leaves transient bars out and keeps the others."""
    from tqdm.auto import tqdm

    err = io.StringIO()
    with contextlib.redirect_stderr(err), quiet_console(tmp_path / "run.log"):
        for _ in tqdm(range(3), desc="training"):
            for _ in tqdm(range(20), desc="evaluating", leave=False):
                pass
    text = err.getvalue()
    assert "training" in text and "evaluating" not in text, text
    assert text.count("\n") <= 2, f"{text.count(chr(10))} lines: {text!r}"

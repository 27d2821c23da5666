"""A kafkalike CLI command run inside the test process (its ``main``), for tests that check a
tool's output and exit code without paying a Python start-up per command."""

from __future__ import annotations

import contextlib
import io


def run_main(*argv: str) -> tuple[int, str, str]:
    """``kafkalike <argv...>`` run in this process (kafkalike.cli.main.main): (exit code, stdout,
    stderr)."""
    from kafkalike.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()

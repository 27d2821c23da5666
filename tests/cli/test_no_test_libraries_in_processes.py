"""A process started through ``kafkalike`` (brokers, controllers, tools) does not import
hypothesis through kio, so trio's scheduler stays in its normal mode (hypothesis' import runs
trio's plugin, which makes every batch of runnable tasks sorted and shuffled: its test mode)
and the process does not carry hypothesis' 14 MiB; a process that has hypothesis already
(pytest) keeps it. Real interpreters, the project's own venv."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent("""
    import sys
    {before}
    from kafkalike.cli.main import main
    try:
        main(["--help"])  # builds the parser: imports every command module, kio included
    except SystemExit:
        pass
    import trio._core._run as run
    loaded = sys.modules.get("hypothesis") is not None
    print("kio" in sys.modules, loaded, run._ALLOW_DETERMINISTIC_SCHEDULING)
""")


def _probe(before: str = "") -> str:
    done = subprocess.run([sys.executable, "-c", PROBE.format(before=before)], capture_output=True, text=True,
                          timeout=120, check=True)
    return done.stdout.strip().splitlines()[-1]


def test_a_kafkalike_process_loads_kio_without_hypothesis_and_keeps_trios_normal_scheduling() -> None:
    """After main() has imported every command module: kio is loaded, hypothesis is not, and
    trio's deterministic (test) scheduling is off."""
    assert _probe() == "True False False"


def test_a_process_that_already_has_hypothesis_keeps_it() -> None:
    """pytest's case: hypothesis imported first stays importable and in use (trio's plugin ran)."""
    assert _probe("import hypothesis.strategies") == "True True True"

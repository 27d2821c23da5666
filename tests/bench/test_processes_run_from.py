"""bench.systems.processes_run_from: started processes import another checkout's code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kafkalike.bench.systems import processes_run_from


def test_processes_started_inside_import_the_checkout_and_the_environment_is_restored(tmp_path: Path) -> None:
    """A `python -m kafkalike` started inside the block imports the checkout's kafkalike
    package; afterwards (also after an exception) cwd and PYTHONPATH are as before."""
    checkout = tmp_path / "checkout"
    (checkout / "kafkalike").mkdir(parents=True)
    (checkout / "kafkalike" / "__init__.py").write_text("MARK = 'checkout'\n")
    cwd, pythonpath = os.getcwd(), os.environ.get("PYTHONPATH")
    with processes_run_from(checkout):
        out = subprocess.run([sys.executable, "-c", "import kafkalike; print(kafkalike.__file__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert Path(out) == checkout / "kafkalike" / "__init__.py"
    assert os.getcwd() == cwd and os.environ.get("PYTHONPATH") == pythonpath
    with pytest.raises(RuntimeError), processes_run_from(checkout):
        raise RuntimeError("boom")
    assert os.getcwd() == cwd and os.environ.get("PYTHONPATH") == pythonpath

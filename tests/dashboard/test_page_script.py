"""The page's JavaScript parses: Node.js checks the script of kafkalike.dashboard.page.PAGE
(a quoting slip in the Python string leaves the page stuck at "connecting..." in every
browser, which only the slower browser test would otherwise show)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kafkalike.dashboard.page import PAGE


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js (node --check)")
def test_the_pages_script_is_valid_javascript(tmp_path: Path) -> None:
    script = PAGE.split("<script>", 1)[1].split("</script>", 1)[0]
    path = tmp_path / "page.js"
    path.write_text(script)
    result = subprocess.run(["node", "--check", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

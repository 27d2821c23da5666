"""The full-disk fault's filler (kafkalike/chaos/local.py fill_filesystem, used by the local
and compose backends) on a real 1 MiB tmpfs. Regression for a bug the focus campaign found
(seed 401): when posix_fallocate lost a race with the broker's own appends, the write loop
ended with a partial write whose tail sat in Python's write buffer; flushing it when the file
closed raised ENOSPC out of the fill, so the fault was reported "not applied" while the
filler stayed and kept the broker's disk full, unrecorded. Needs root (mount)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkalike.chaos.local import FILLER_NAME, fill_filesystem

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "fs"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "kafkalike-test-fill", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def _free(d: Path) -> int:
    st = os.statvfs(d)
    return st.f_bavail * st.f_frsize


@pytest.mark.parametrize("free_kib", [60, 124, 4, 1024])
def test_filling_without_preallocation_takes_every_byte_and_never_raises(small_fs: Path, free_kib: int) -> None:
    """The fallocate-lost-the-race path, made deterministic: no preallocation, and free space
    that ends a 64 KiB write partially (60 KiB, 124 KiB: the old buffered loop raised ENOSPC
    when the file closed)."""
    other = small_fs / "segment"
    other.write_bytes(b"x" * (_free(small_fs) - free_kib * 1024))
    assert _free(small_fs) == free_kib * 1024
    text = fill_filesystem(small_fs, preallocate=False)
    assert _free(small_fs) == 0
    assert (small_fs / FILLER_NAME).stat().st_size == free_kib * 1024
    assert text == f"filled {free_kib * 1024} bytes; 0 of 1048576 left"


def test_filling_with_preallocation_takes_every_byte(small_fs: Path) -> None:
    text = fill_filesystem(small_fs)
    assert _free(small_fs) == 0
    assert text.endswith("; 0 of 1048576 left")
    (small_fs / FILLER_NAME).unlink()
    assert _free(small_fs) == 1048576

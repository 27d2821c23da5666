"""Shared helpers for storage tests: batch builders and a controllable clock (imported by test modules)."""

from __future__ import annotations

import attrs

from kafkalike.protocol.record_batch import SimpleRecord, build_batch


@attrs.define
class FakeClock:
    """A manual wall clock in ms (the log only reads it; nothing is mocked)."""

    now: int = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


def batch(n: int = 1, *, value: bytes = b"v", key: bytes | None = b"k", ts: int = 1_700_000_000_000) -> bytearray:
    """A writable uncompressed batch of n records."""
    return bytearray(build_batch([SimpleRecord(value=value, key=key, timestamp=ts)] * n))

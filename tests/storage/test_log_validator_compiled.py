"""The mypyc-compiled record walk (kafkalike/storage/log_validator.*.so, built by
scripts/build-native) against its own source run as pure Python: identical outcomes (passes,
or the same error type, message, record_errors and position) on hypothesis-generated batches,
valid and corrupt (single-byte mutations with the CRC redone, truncations, false counts, any
codec, compacted or not); the extension is built from the source beside it (not stale); no
built file is tracked by git. The comparisons are skipped when no extension is built."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import struct
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import crc32c
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kafkalike.storage.log_validator as compiled
from kafkalike.protocol import records as codecs
from kafkalike.protocol.record_batch import (ATTRIBUTES_AT, CRC_AT, HEADER_SIZE, LOG_OVERHEAD, RECORDS_COUNT_AT,
                                             SimpleRecord, build_batch)

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "kafkalike" / "storage" / "log_validator.py"
IS_COMPILED = not compiled.__file__.endswith(".py") if compiled.__file__ else False

needs_extension = pytest.mark.skipif(not IS_COMPILED, reason="no compiled log_validator (scripts/build-native)")


def _load_pure() -> ModuleType:
    """log_validator.py loaded by path under another name: the same code, interpreted."""
    spec = importlib.util.spec_from_file_location("kafkalike_log_validator_pure", SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pure = _load_pure()


def _outcome(module: Any, data: bytes | bytearray, compacted: bool) -> tuple[Any, ...]:
    """What validate_records does with `data`: ("ok",) or the error's class name, message,
    record_errors and position (the classes differ between the two modules, their names not)."""
    try:
        module.validate_records(memoryview(bytearray(data)), compacted_topic=compacted)
    except Exception as exc:  # noqa: BLE001 - every outcome is compared, whatever it is
        errors = tuple((e.batch_index, e.message) for e in getattr(exc, "record_errors", ()))
        return (type(exc).__name__, str(exc), errors, getattr(exc, "position", None))
    return ("ok",)


def _recrc(data: bytearray) -> bytearray:
    struct.pack_into(">I", data, CRC_AT, crc32c.crc32c(memoryview(data)[ATTRIBUTES_AT:]))
    return data


def _batch(recs: list[SimpleRecord], codec: int) -> bytearray:
    data = bytearray(build_batch(recs))
    if codec:
        data = bytearray(data[:HEADER_SIZE]) + codecs.compress(codec, bytes(data[HEADER_SIZE:]))
        struct.pack_into(">i", data, 8, len(data) - LOG_OVERHEAD)
        struct.pack_into(">h", data, ATTRIBUTES_AT, codec)
    return _recrc(data)


_records = st.lists(
    st.builds(SimpleRecord,
              value=st.one_of(st.none(), st.binary(max_size=300)),
              key=st.one_of(st.none(), st.binary(max_size=10)),
              headers=st.lists(st.tuples(st.text(max_size=5), st.one_of(st.none(), st.binary(max_size=5))),
                               max_size=3).map(tuple),
              timestamp=st.integers(min_value=0, max_value=2**42)),
    min_size=1, max_size=80)


@needs_extension
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=_records, codec=st.sampled_from([0, 0, 1, 2, 3, 4]), compacted=st.booleans(),
       mutation=st.sampled_from(["none", "byte", "truncate", "count"]), where=st.integers(min_value=0),
       byte=st.integers(0, 255))
def test_compiled_and_pure_walks_agree_on_valid_and_corrupt_batches(recs: list[SimpleRecord], codec: int,
                                                                     compacted: bool, mutation: str, where: int,
                                                                     byte: int) -> None:
    data = _batch(recs, codec)
    if mutation == "byte":
        at = ATTRIBUTES_AT + where % (len(data) - ATTRIBUTES_AT)
        data[at] = byte
        _recrc(data)
    elif mutation == "truncate":
        cut = HEADER_SIZE + where % (len(data) - HEADER_SIZE)
        data = data[:cut]
        struct.pack_into(">i", data, 8, len(data) - LOG_OVERHEAD)
        _recrc(data)
    elif mutation == "count":
        struct.pack_into(">i", data, RECORDS_COUNT_AT, byte - 3)
        _recrc(data)
    assert _outcome(compiled, data, compacted) == _outcome(pure, data, compacted)


@needs_extension
@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=200), count=st.integers(-2, 40))
def test_compiled_and_pure_walks_agree_on_arbitrary_record_bytes(body: bytes, count: int) -> None:
    for buf in (body, b"\x00" + body, b"\x7f\xff\xff\xff\xff\xff\xff\xff\xff\x01" + body):
        results: list[tuple[str, ...]] = []
        for module in (compiled, pure):
            try:
                module.walk_records(buf, 0, len(buf), count, True)
                results.append(("ok",))
            except Exception as exc:  # noqa: BLE001
                results.append((type(exc).__name__, str(exc)))
        assert results[0] == results[1]


@needs_extension
def test_compiled_extension_is_built_from_the_source_beside_it() -> None:
    """A stale extension would hide an edited log_validator.py: scripts/build-native rebuilds it."""
    loader = importlib.machinery.SourceFileLoader("kafkalike_build_native", str(ROOT / "scripts" / "build-native"))
    spec = importlib.util.spec_from_loader("kafkalike_build_native", loader)
    assert spec is not None
    build_native = importlib.util.module_from_spec(spec)
    loader.exec_module(build_native)
    stamp = SOURCE.with_suffix(".native-sha256")
    assert stamp.exists(), "extension without a stamp: run scripts/build-native"
    assert stamp.read_text().strip() == build_native.source_stamp(SOURCE), \
        "log_validator.py changed since its extension was built: run .venv/bin/python scripts/build-native"


def test_no_built_extension_is_tracked_by_git() -> None:
    tracked = subprocess.run(["git", "ls-files", "*.so", "*.native-sha256", "build"], cwd=ROOT,
                             capture_output=True, text=True, check=False)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    assert tracked.stdout == ""

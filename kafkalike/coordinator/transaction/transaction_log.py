"""``__transaction_state`` records in Kafka's layout (Kafka 3.9's TransactionLog,
TransactionLogKey.json and TransactionLogValue.json), so ``kafka-dump-log.sh
--transaction-log-decoder`` reads what kafkalike writes.

Key, version 0 (int16 version prefix, then the struct; never flexible)::

    TransactionLogKey   v0: transactional_id string (int16 length)

Value (int16 version prefix, then the struct)::

    TransactionLogValue v0: producer_id int64, producer_epoch int16,
                            transaction_timeout_ms int32, transaction_status int8,
                            transaction_partitions [topic string, partition_ids [int32]] (nullable),
                            transaction_last_update_timestamp_ms int64,
                            transaction_start_timestamp_ms int64
                        v1: the same fields, flexible (compact strings and arrays with
                            unsigned-varint lengths + 1, a tagged-field section after each
                            struct); tagged fields are skipped on read

Kafka 3.9 writes value version 0 (version 1 only with the transaction.version feature, which a
ZooKeeper-mode cluster does not have); kafkalike writes 0 too and reads both. The partitions
are null exactly when the status is Empty (Kafka's valueToBytes). A null value is a
tombstone (an expired transactional id). Decoding errors raise TransactionLogError.
"""

from __future__ import annotations

import struct

import attrs

__all__ = ["TransactionLogError", "TransactionLogKey", "TransactionLogValue", "PartitionsSchema",
           "encode_key", "decode_key", "encode_value", "decode_value", "KEY_VERSION",
           "VALUE_VERSION"]

KEY_VERSION = 0
VALUE_VERSION = 0
_MAX_VALUE_VERSION = 1

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class TransactionLogError(ValueError):
    """A __transaction_state key or value that does not decode (truncated, bad version)."""


@attrs.frozen
class TransactionLogKey:
    """The key of a __transaction_state record: the transactional id."""

    transactional_id: str


@attrs.frozen
class PartitionsSchema:
    """TransactionLogValue.PartitionsSchema: one topic's partitions in the transaction."""

    topic: str
    partition_ids: tuple[int, ...]


@attrs.frozen
class TransactionLogValue:
    """A transaction's stored state. ``transaction_status`` is TransactionState's id (int8);
    times are wall-clock ms (-1: none); ``transaction_partitions`` None only for Empty."""

    producer_id: int
    producer_epoch: int
    transaction_timeout_ms: int
    transaction_status: int
    transaction_partitions: tuple[PartitionsSchema, ...] | None
    transaction_last_update_timestamp_ms: int
    transaction_start_timestamp_ms: int


class _Writer:
    def __init__(self, flexible: bool) -> None:
        self.out = bytearray()
        self.flexible = flexible

    def uvarint(self, v: int) -> None:
        while v >= 0x80:
            self.out.append((v & 0x7F) | 0x80)
            v >>= 7
        self.out.append(v)

    def fixed(self, s: struct.Struct, v: int) -> None:
        self.out += s.pack(v)

    def string(self, v: str) -> None:
        b = v.encode("utf-8")
        if self.flexible:
            self.uvarint(len(b) + 1)
        else:
            if len(b) > 32767:
                raise TransactionLogError(f"string of {len(b)} bytes is too long for an int16 length")
            self.fixed(_I16, len(b))
        self.out += b

    def array_len(self, n: int | None) -> None:
        if self.flexible:
            self.uvarint(0 if n is None else n + 1)
        else:
            self.fixed(_I32, -1 if n is None else n)

    def no_tags(self) -> None:
        if self.flexible:
            self.uvarint(0)


class _Reader:
    def __init__(self, data: bytes | memoryview, what: str, flexible: bool = False) -> None:
        self.data = bytes(data)
        self.pos = 0
        self.what = what
        self.flexible = flexible

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise TransactionLogError(f"{self.what}: truncated at byte {self.pos} (needs {n} more)")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def fixed(self, s: struct.Struct) -> int:
        return int(s.unpack(self.take(s.size))[0])

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise TransactionLogError(f"{self.what}: unsigned varint longer than 5 bytes")

    def string(self) -> str:
        n = self.uvarint() - 1 if self.flexible else self.fixed(_I16)
        if n < 0:
            raise TransactionLogError(f"{self.what}: null string in a non-nullable field")
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TransactionLogError(f"{self.what}: invalid UTF-8: {exc}") from None

    def array_len(self) -> int | None:
        n = self.uvarint() - 1 if self.flexible else self.fixed(_I32)
        if n < 0:
            return None
        if n > len(self.data) - self.pos:  # every element takes at least one byte
            raise TransactionLogError(f"{self.what}: array of {n} elements in {len(self.data) - self.pos} bytes")
        return n

    def skip_tags(self) -> None:
        if not self.flexible:
            return
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.take(self.uvarint())

    def done(self) -> None:
        if self.pos != len(self.data):
            raise TransactionLogError(f"{self.what}: {len(self.data) - self.pos} bytes left over")


def encode_key(key: TransactionLogKey) -> bytes:
    """TransactionLogKey v0 with its int16 version prefix."""
    w = _Writer(flexible=False)
    w.fixed(_I16, KEY_VERSION)
    w.string(key.transactional_id)
    return bytes(w.out)


def decode_key(data: bytes | memoryview) -> TransactionLogKey:
    """A __transaction_state key. Raises TransactionLogError (unknown version, bad bytes)."""
    r = _Reader(data, "TransactionLogKey")
    version = r.fixed(_I16)
    if version != KEY_VERSION:
        raise TransactionLogError(f"TransactionLogKey: unknown version {version}")
    key = TransactionLogKey(r.string())
    r.done()
    return key


def encode_value(value: TransactionLogValue, version: int = VALUE_VERSION) -> bytes:
    """TransactionLogValue of ``version`` (0 or 1) with its int16 version prefix."""
    if version not in (0, 1):
        raise TransactionLogError(f"TransactionLogValue: cannot write version {version}")
    w = _Writer(flexible=version >= 1)
    w.fixed(_I16, version)
    w.fixed(_I64, value.producer_id)
    w.fixed(_I16, value.producer_epoch)
    w.fixed(_I32, value.transaction_timeout_ms)
    w.fixed(_I8, value.transaction_status)
    parts = value.transaction_partitions
    w.array_len(None if parts is None else len(parts))
    for p in parts or ():
        w.string(p.topic)
        w.array_len(len(p.partition_ids))
        for pid in p.partition_ids:
            w.fixed(_I32, pid)
        w.no_tags()
    w.fixed(_I64, value.transaction_last_update_timestamp_ms)
    w.fixed(_I64, value.transaction_start_timestamp_ms)
    w.no_tags()
    return bytes(w.out)


def decode_value(data: bytes | memoryview) -> TransactionLogValue:
    """TransactionLogValue v0 or v1. Raises TransactionLogError."""
    r = _Reader(data, "TransactionLogValue")
    version = r.fixed(_I16)
    if not 0 <= version <= _MAX_VALUE_VERSION:
        raise TransactionLogError(f"TransactionLogValue: unknown version {version}")
    r.flexible = version >= 1
    producer_id = r.fixed(_I64)
    epoch = r.fixed(_I16)
    timeout = r.fixed(_I32)
    status = r.fixed(_I8)
    n = r.array_len()
    parts: list[PartitionsSchema] | None = None if n is None else []
    for _ in range(n or 0):
        topic = r.string()
        m = r.array_len()
        ids = tuple(r.fixed(_I32) for _ in range(m or 0))
        r.skip_tags()
        assert parts is not None
        parts.append(PartitionsSchema(topic, ids))
    last_update = r.fixed(_I64)
    start = r.fixed(_I64)
    r.skip_tags()
    r.done()
    return TransactionLogValue(producer_id, epoch, timeout, status,
                               None if parts is None else tuple(parts), last_update, start)

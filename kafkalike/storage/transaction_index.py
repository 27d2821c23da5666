"""A segment's index of aborted transactions: ``<base>.txnindex`` (Kafka's TransactionIndex, KIP-98).

One entry per transaction that an ABORT marker completed in the segment, appended when the
marker is appended (``UnifiedLog.append``), in Kafka's file format: 34 bytes, big-endian,

    version int16 (0) | producerId int64 | firstOffset int64 | lastOffset int64 | lastStableOffset int64

``firstOffset`` is the transaction's first data offset in this partition, ``lastOffset`` the
offset of its ABORT marker, ``lastStableOffset`` the partition's LSO once the transaction
ended (the first offset of the next still-open transaction of another producer, or
lastOffset + 1). A read_committed Fetch collects the entries overlapping its range
(``collect_aborted_txns``, Kafka's TransactionIndex.collectAbortedTxns) and sends
(producerId, firstOffset) so the client can drop the aborted records.

The file exists only once a segment has an aborted transaction (Kafka creates it lazily too).
Entries are kept in memory after the first read (they are few: one per aborted transaction).
A torn tail (a size that is not a multiple of 34 after a crash) is ignored on read; log
recovery rewrites the file from the batches (``UnifiedLog`` rebuilds it with the producer
state), so the entries always match the log. Errors: OSError from the file system surfaces
as KafkaStorageError naming the file.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import attrs

from kafkalike.storage.errors import KafkaStorageError

ENTRY = struct.Struct(">hqqqq")
ENTRY_SIZE = ENTRY.size  # 34
CURRENT_VERSION = 0
TXN_INDEX_SUFFIX = ".txnindex"


@attrs.frozen
class AbortedTxn:
    """One .txnindex entry (offsets absolute; last_offset = the ABORT marker's offset)."""

    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


@attrs.frozen
class TxnIndexSearchResult:
    """Aborted transactions overlapping a fetch range; ``is_complete`` when an entry's LSO is at
    or past the range's upper bound, so later segments need not be searched (Kafka's rule)."""

    aborted: tuple[AbortedTxn, ...]
    is_complete: bool


def encode_entry(txn: AbortedTxn) -> bytes:
    """The 34-byte entry for ``txn`` (version 0)."""
    return ENTRY.pack(CURRENT_VERSION, txn.producer_id, txn.first_offset, txn.last_offset,
                      txn.last_stable_offset)


def decode_entries(data: bytes | memoryview) -> list[AbortedTxn]:
    """Entries of a .txnindex file's bytes; a partial last entry (torn write) is ignored.
    Raises ValueError for an entry whose version is not 0 (Kafka: "Unexpected aborted
    transaction version")."""
    out = []
    for pos in range(0, len(data) - len(data) % ENTRY_SIZE, ENTRY_SIZE):
        version, pid, first, last, lso = ENTRY.unpack_from(data, pos)
        if version != CURRENT_VERSION:
            raise ValueError(f"unexpected aborted transaction version {version} at byte {pos}")
        out.append(AbortedTxn(pid, first, last, lso))
    return out


class TransactionIndex:
    """The aborted transactions of one segment (see the module doc). ``start_offset`` is the
    segment's base offset."""

    def __init__(self, path: Path, start_offset: int) -> None:
        self.path = Path(path)
        self.start_offset = start_offset
        self._entries: list[AbortedTxn] | None = None
        self._dirty = False

    @property
    def entries(self) -> list[AbortedTxn]:
        """All entries, oldest first (read from the file on first use)."""
        if self._entries is None:
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                data = b""
            except OSError as exc:
                raise KafkaStorageError(f"cannot read transaction index ({exc.strerror})", self.path) from exc
            try:
                self._entries = decode_entries(data)
            except ValueError as exc:
                raise KafkaStorageError(str(exc), self.path) from exc
        return self._entries

    def append(self, txn: AbortedTxn) -> None:
        """Add an entry. Raises ValueError when its last offset does not follow the previous
        entry's (Kafka: "The last offset of appended transactions must increase
        sequentially"), KafkaStorageError when the write fails."""
        entries = self.entries
        if entries and txn.last_offset <= entries[-1].last_offset:
            raise ValueError(f"last offset {txn.last_offset} of an appended transaction does not follow "
                             f"{entries[-1].last_offset} in {self.path}")
        try:
            with open(self.path, "ab") as f:
                f.write(encode_entry(txn))
        except OSError as exc:
            raise KafkaStorageError(f"cannot append to transaction index ({exc.strerror})", self.path) from exc
        entries.append(txn)
        self._dirty = True

    def replace(self, entries: list[AbortedTxn]) -> bool:
        """Make the file hold exactly ``entries`` (recovery); no file when empty. Written to a
        .tmp file and renamed. Returns True if anything changed."""
        try:
            on_disk = self.path.read_bytes() if self.path.exists() else b""
        except OSError as exc:
            raise KafkaStorageError(f"cannot read transaction index ({exc.strerror})", self.path) from exc
        wanted = b"".join(encode_entry(t) for t in entries)
        self._entries = list(entries)
        if on_disk == wanted and (entries or not self.path.exists()):
            return False
        try:
            if not entries:
                self.path.unlink(missing_ok=True)
            else:
                tmp = self.path.with_name(self.path.name + ".tmp")
                with open(tmp, "wb") as f:
                    f.write(wanted)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
        except OSError as exc:
            raise KafkaStorageError(f"cannot rewrite transaction index ({exc.strerror})", self.path) from exc
        return True

    def truncate_to(self, offset: int) -> None:
        """Drop the entries whose ABORT marker is at or after ``offset`` (log truncation;
        Kafka's TransactionIndex.truncateTo)."""
        kept = [t for t in self.entries if t.last_offset < offset]
        if len(kept) != len(self.entries):
            self.replace(kept)

    def collect_aborted_txns(self, fetch_offset: int, upper_bound_offset: int) -> TxnIndexSearchResult:
        """Entries with last_offset >= fetch_offset and first_offset < upper_bound_offset."""
        found = []
        for t in self.entries:
            if t.last_offset >= fetch_offset and t.first_offset < upper_bound_offset:
                found.append(t)
            if t.last_stable_offset >= upper_bound_offset:
                return TxnIndexSearchResult(tuple(found), True)
        return TxnIndexSearchResult(tuple(found), False)

    def flush(self) -> None:
        """fsync the file if entries were appended since the last flush."""
        if not self._dirty:
            return
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self._dirty = False
            return
        except OSError as exc:
            raise KafkaStorageError(f"cannot open transaction index ({exc.strerror})", self.path) from exc
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._dirty = False

    def rename(self, path: Path) -> None:
        """Move the file (if any) to ``path`` (segment suffix changes)."""
        if self.path.exists():
            os.replace(self.path, path)
        self.path = Path(path)

    def delete(self) -> None:
        """Remove the file (segment deletion)."""
        self.path.unlink(missing_ok=True)
        self._entries = []
        self._dirty = False

    def sanity_check(self) -> None:
        """Raise KafkaStorageError if the file size is not a multiple of 34 bytes."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size % ENTRY_SIZE:
            raise KafkaStorageError(
                f"transaction index size {size} is not a multiple of {ENTRY_SIZE}", self.path)

    def __repr__(self) -> str:
        return f"TransactionIndex({self.path.name}, entries={len(self._entries or ())})"

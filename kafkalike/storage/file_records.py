"""A segment's .log file: batches exactly as stored, appended at the end (Kafka's FileRecords).

Appends are all or nothing: a failed write is cut back to the old end (a full disk leaves no
bytes after the log end); when even that fails the caller gets LogDirFailureError.
`scan_valid_batches` is the validity walk recovery and clean-load tail checks share.

Also `FileSlice`, what reads hand to the network layer: (file, position, length) ready for
os.sendfile, and `SegmentFile`, the open descriptor, which stays open as long as any slice
references it — so a segment deleted by retention while a fetch response is being sent keeps
its bytes readable (POSIX unlink semantics) without Kafka's file.delete.delay.ms timer.
"""

from __future__ import annotations

import errno
import mmap
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import attrs
import structlog

from kafkalike.protocol.record_batch import (
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    Buffer,
    CorruptBatchError,
    RecordBatch,
    RecordBatchError,
    iter_batches,
)
from kafkalike.storage.errors import KafkaStorageError, LogDirFailureError

log = structlog.get_logger(__name__)

INT32_MAX = 2**31 - 1


class SegmentFile:
    """An open file descriptor, closed when closed explicitly or when the last user drops it."""

    __slots__ = ("fd", "path", "__weakref__")

    def __init__(self, path: Path, flags: int = os.O_RDWR | os.O_CREAT) -> None:
        self.path = path
        try:
            self.fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise KafkaStorageError(f"cannot open log segment ({exc.strerror})", path) from exc

    def fileno(self) -> int:
        """The descriptor (-1 once closed)."""
        return self.fd

    def close(self) -> None:
        """Close the descriptor now (idempotent)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


@attrs.frozen
class FileSlice:
    """`length` bytes at byte `position` of `file` (use file.fileno() with os.sendfile).

    The bytes are whole v2 batches, except that the last batch may be cut at max_bytes (Kafka's
    rule: consumers drop a partial trailing batch). If the log is truncated before the slice is
    sent, the file may hold fewer bytes than `length` (sendfile returns short).
    """

    file: SegmentFile
    position: int
    length: int

    def fileno(self) -> int:
        """The segment file's descriptor, for os.sendfile."""
        return self.file.fd

    def read_bytes(self) -> bytes:
        """Copy the slice's bytes (for tests, tools and transports without sendfile)."""
        return os.pread(self.file.fd, self.length, self.position)


def read_slices(slices: list[FileSlice]) -> bytes:
    """Concatenate the bytes of several slices (tests and non-sendfile transports)."""
    return b"".join(s.read_bytes() for s in slices)


@attrs.frozen
class BatchHeaderInfo:
    """What the log needs from a stored batch's header: positions in bytes, offsets, ms."""

    position: int
    size: int
    base_offset: int
    last_offset: int
    max_timestamp: int
    partition_leader_epoch: int


class FileRecords:
    """The .log file of one segment. Sizes and positions are bytes."""

    def __init__(self, path: Path, size: int | None = None) -> None:
        self.path = Path(path)
        self.file = SegmentFile(self.path)
        try:
            self.size = os.fstat(self.file.fd).st_size if size is None else size
        except OSError as exc:
            raise KafkaStorageError(f"cannot stat log segment ({exc.strerror})", self.path) from exc

    def append(self, data: memoryview | bytes) -> int:
        """Write data at the end (byte `size`); returns bytes written.

        All or nothing: a write that fails part-way (ENOSPC, EIO, a short write) is rolled back
        by cutting the file at the old end again, `size` unchanged, and KafkaStorageError
        (KAFKA_STORAGE_ERROR) is raised; if the cut fails too, LogDirFailureError (the bytes
        after the log end are unknown: the log must go offline). Kafka has no rollback: any
        IOException takes the log dir offline (LogDirFailureChannel) and the next start-up,
        unclean, recovers the tail.
        """
        fd = self.file.fd
        pos = self.size
        view = memoryview(data)
        total = len(view)
        written = 0
        try:
            while written < total:
                n = os.pwrite(fd, view[written:], pos + written)
                if n <= 0:
                    raise OSError(errno.ENOSPC, "short write")
                written += n
        except OSError as exc:
            self._roll_back(pos, written, exc)
        self.size += total
        return total

    def _roll_back(self, size: int, written: int, cause: OSError) -> NoReturn:
        """Undo a failed append: cut the file at `size` bytes, then raise (see append)."""
        try:
            os.ftruncate(self.file.fd, size)
        except OSError as exc:
            log.error("write_rollback_failed", file=str(self.path), size=size, written=written,
                      error=cause.strerror, rollback_error=exc.strerror)
            raise LogDirFailureError(
                f"write failed ({cause.strerror}) and could not be rolled back to byte {size} ({exc.strerror})",
                self.path) from cause
        log.warning("write_rolled_back", file=str(self.path), size=size, written=written, error=cause.strerror)
        raise KafkaStorageError(f"write failed ({cause.strerror}); rolled back to byte {size}", self.path) from cause

    def flush(self) -> None:
        """fsync the file. A failed fsync raises LogDirFailureError: after it the kernel may have
        dropped the dirty pages, so what is on disk is unknown (Kafka: the log dir goes offline)."""
        try:
            os.fsync(self.file.fd)
        except OSError as exc:
            raise LogDirFailureError(f"fsync failed ({exc.strerror})", self.path) from exc

    def truncate_to(self, size: int) -> int:
        """Cut the file at `size` bytes; returns bytes removed."""
        if size >= self.size:
            return 0
        try:
            os.ftruncate(self.file.fd, size)
        except OSError as exc:
            raise KafkaStorageError(f"truncate failed ({exc.strerror})", self.path) from exc
        removed = self.size - size
        self.size = size
        return removed

    def slice(self, position: int, length: int) -> FileSlice:
        """A FileSlice of this file: `length` bytes from byte `position`."""
        return FileSlice(self.file, position, length)

    def read_header(self, position: int) -> BatchHeaderInfo | None:
        """Header of the batch at `position`, or None past the end / on a short header."""
        if position + HEADER_SIZE > self.size:
            return None
        try:
            raw = os.pread(self.file.fd, HEADER_SIZE, position)
        except OSError as exc:
            raise KafkaStorageError(f"read failed ({exc.strerror})", self.path) from exc
        if len(raw) < HEADER_SIZE:
            return None
        f = HEADER.unpack(raw)
        return BatchHeaderInfo(position, f[1] + LOG_OVERHEAD, f[0], f[0] + f[6], f[8], f[2])

    def iter_headers(self, start: int = 0, end: int | None = None, chunk: int = 8192) -> Iterator[BatchHeaderInfo]:
        """Headers of the stored batches from byte `start` (a batch boundary) to `end`.

        Reads `chunk` bytes at a time so a walk over small batches costs one pread per chunk,
        not one per batch. Stops at a short or malformed header (the loader validates fully).
        """
        end = self.size if end is None else end
        pos = start
        buf = b""
        buf_start = 0
        unpack = HEADER.unpack_from
        while pos + HEADER_SIZE <= end:
            rel = pos - buf_start
            if rel < 0 or rel + HEADER_SIZE > len(buf):
                try:
                    buf = os.pread(self.file.fd, max(chunk, HEADER_SIZE), pos)
                except OSError as exc:
                    raise KafkaStorageError(f"read failed ({exc.strerror})", self.path) from exc
                buf_start, rel = pos, 0
                if len(buf) < HEADER_SIZE:
                    return
            f = unpack(buf, rel)
            size = f[1] + LOG_OVERHEAD
            if size < HEADER_SIZE:
                return
            yield BatchHeaderInfo(pos, size, f[0], f[0] + f[6], f[8], f[2])
            pos += size

    def read_all(self, start: int = 0, end: int | None = None) -> bytes:
        """Copy bytes [start, end) of the file (cleaner, ListOffsets, tests)."""
        end = self.size if end is None else end
        try:
            return os.pread(self.file.fd, end - start, start)
        except OSError as exc:
            raise KafkaStorageError(f"read failed ({exc.strerror})", self.path) from exc

    def map_for_scan(self) -> mmap.mmap | None:
        """A read-only mmap of the file for a recovery scan (None if empty)."""
        if self.size == 0:
            return None
        return mmap.mmap(self.file.fd, self.size, access=mmap.ACCESS_READ)

    def close(self) -> None:
        """Close the descriptor."""
        self.file.close()

    def rename(self, new_path: Path) -> None:
        """Rename the file (the descriptor stays valid)."""
        os.replace(self.path, new_path)
        self.path = Path(new_path)
        self.file.path = self.path

    def delete(self) -> None:
        """Unlink the file; the descriptor stays open for slices in flight and closes with them."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def scan_valid_batches(buffer: Buffer, callback: Callable[[RecordBatch], object], *, start: int = 0,
                       base_offset: int = 0) -> tuple[int, RecordBatchError | None]:
    """Walk the valid batches of buffer from byte `start` (a batch boundary), calling
    callback(batch) for each; returns (byte end of the last valid batch, the error that stopped
    the walk or None).

    Valid: complete, magic 2, length and CRC-32C right (record_batch.iter_batches), and offsets
    in order: lastOffsetDelta >= 0, base offset >= `base_offset` (the segment's) and >= the
    previous batch's last offset + 1, last offset - `base_offset` within int32 (Kafka's
    LogSegment.recover ensureOffsetInRange). A batch failing a check gets CorruptBatchError.
    """
    end = start
    expected = base_offset
    try:
        for batch in iter_batches(buffer, start):
            last = batch.last_offset
            if batch.last_offset_delta < 0 or batch.base_offset < expected or last - base_offset > INT32_MAX:
                return batch.position, CorruptBatchError(
                    f"batch offsets {batch.base_offset}..{last} out of order (expected >= {expected},"
                    f" segment base {base_offset})", batch.position)
            callback(batch)
            expected = last + 1
            end = batch.end_position
    except RecordBatchError as exc:
        return exc.position, exc.with_traceback(None)
    return end, None

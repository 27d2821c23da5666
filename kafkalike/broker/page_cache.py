"""Reads of log data that is no longer in the page cache, kept off the event loop.

A Fetch answer's records leave with ``os.sendfile`` from the segment file (socket_server). When
the bytes are in the page cache that costs a copy; when they are not (a consumer catching up on
data older than what memory holds, a follower rebuilding after a restart) ``sendfile`` waits
for the disk, and in kafkalike's single event loop every other request of the broker waits
with it. Kafka's brokers block the same way, but in one of several network threads while the
others go on (num.network.threads, num.io.threads).

So before a file region is sent: ``is_resident(fd, position, size)`` asks the kernel, without
waiting, whether its first and last bytes are cached (``preadv2`` with ``RWF_NOWAIT``, Linux
4.14+: EAGAIN when the read would touch the disk); when they are not, ``load`` (run in a trio
worker thread) reads the region into the page cache, with ``POSIX_FADV_WILLNEED`` first so the
kernel reads ahead in large requests, and the event loop serves other requests meanwhile. The
``sendfile`` that follows is then a copy from memory. The probe costs two system calls per
region; where ``RWF_NOWAIT`` is not available every region counts as resident (as before).
"""

from __future__ import annotations

import os

__all__ = ["is_resident", "load", "LOAD_CHUNK"]

LOAD_CHUNK = 1 << 20
"""Bytes read per system call while loading a region (a buffer of this size per call)."""

_NOWAIT = getattr(os, "RWF_NOWAIT", None)
_probe = bytearray(1)


def is_resident(fd: int, position: int, size: int) -> bool:
    """True when the first and the last byte of ``size`` bytes of file ``fd`` at byte
    ``position`` are in the page cache (or when the kernel cannot tell without reading: no
    RWF_NOWAIT); False when reading either would wait for the disk. Never blocks."""
    if _NOWAIT is None or size <= 0:
        return True
    for at in (position, position + size - 1):
        try:
            os.preadv(fd, [_probe], at, _NOWAIT)
        except BlockingIOError:
            return False
        except OSError:  # EOPNOTSUPP on a file system without it: treat as resident
            return True
    return True


def load(fd: int, position: int, size: int) -> int:
    """Read ``size`` bytes of ``fd`` from ``position`` into the page cache (the data itself is
    dropped); blocking: call it in a worker thread. Returns the bytes read (fewer at end of
    file). OSError as os.pread raises it."""
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, position, size, os.POSIX_FADV_WILLNEED)
    done = 0
    while done < size:
        data = os.pread(fd, min(LOAD_CHUNK, size - done), position + done)
        if not data:
            break
        done += len(data)
    return done

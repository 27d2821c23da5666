"""Kafka's framing: an int32 size prefix, then that many bytes. Incremental, sans-IO reader.

Holds ``FrameReader`` (bytes in, complete frames out, in the manner of h11's
``receive_data()`` / ``next_event()``) and ``frame()`` (prefix a payload with its size).

Rules (Kafka's ``NetworkReceive`` / ``SocketServer``):

- The 4-byte big-endian signed size counts the bytes after it. A negative size, or one above
  ``socket.request.max.bytes`` (default 104857600), is refused with ``FrameSizeError``
  *before* any buffer of that size is allocated; after that the reader is poisoned and the
  connection must be closed.
- Each frame's body is received straight into its own ``bytearray`` of the announced size:
  ``feed(data)`` copies ``data`` there once; ``writable()`` + ``commit(n)`` let a socket
  ``recv_into`` the body directly, so the payload is copied exactly once (kernel -> frame).
  ``next_frame()`` hands the body out as a ``memoryview`` over that bytearray (never copied
  again, and writable: the broker patches batch offsets in place).

Sans-IO: this module never touches sockets, files or trio.
"""

from __future__ import annotations

import struct
from collections import deque

from kafkalike.protocol.errors import FrameSizeError

__all__ = ["DEFAULT_MAX_FRAME_SIZE", "FrameReader", "frame", "SIZE_PREFIX"]

DEFAULT_MAX_FRAME_SIZE = 104857600
"""Kafka's ``socket.request.max.bytes`` default (100 MiB), in bytes."""

SIZE_PREFIX = struct.Struct(">i")
"""The frame size prefix: int32, big-endian."""


def frame(payload: bytes | bytearray | memoryview) -> bytes:
    """Return ``payload`` prefixed with its int32 size (one whole Kafka frame)."""
    return SIZE_PREFIX.pack(len(payload)) + bytes(payload)


class FrameReader:
    """Incremental frame reader: ``feed()`` bytes, pull frames with ``next_frame()``.

    ``max_frame_size`` is ``socket.request.max.bytes`` (bytes). Raises FrameSizeError from
    ``feed()`` / ``commit()`` as soon as a bad size prefix is complete; later calls raise it
    again (the connection must be closed).
    """

    __slots__ = ("max_frame_size", "_header", "_header_filled", "_body", "_body_filled",
                 "_ready", "_error")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self._header = bytearray(4)
        self._header_filled = 0
        self._body: bytearray | None = None
        self._body_filled = 0
        self._ready: deque[memoryview] = deque()
        self._error: FrameSizeError | None = None

    # -- state
    @property
    def pending_frames(self) -> int:
        """Complete frames waiting to be taken with next_frame()."""
        return len(self._ready)

    @property
    def in_progress(self) -> bool:
        """True while part of a frame (prefix or body) has been received."""
        return self._header_filled > 0 or self._body is not None

    # -- input
    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes (copied once into the frame being assembled).

        Raises FrameSizeError for a negative size or one above max_frame_size.
        """
        if self._error is not None:
            raise self._error
        mv = memoryview(data)
        if mv.ndim != 1 or mv.itemsize != 1:
            mv = mv.cast("B")
        pos = 0
        end = len(mv)
        while pos < end:
            body = self._body
            if body is None:
                take = min(4 - self._header_filled, end - pos)
                self._header[self._header_filled:self._header_filled + take] = mv[pos:pos + take]
                self._header_filled += take
                pos += take
                if self._header_filled == 4:
                    self._start_body()
            else:
                take = min(len(body) - self._body_filled, end - pos)
                body[self._body_filled:self._body_filled + take] = mv[pos:pos + take]
                self._body_filled += take
                pos += take
                if self._body_filled == len(body):
                    self._finish_body()

    def writable(self) -> memoryview:
        """Where the next received bytes should go, for ``sock.recv_into(reader.writable())``.

        While a size prefix is incomplete this is the rest of the 4-byte prefix; then it is the
        rest of the frame body (the body buffer itself: no later copy). Follow with
        ``commit(n)`` for the n bytes received.
        """
        if self._error is not None:
            raise self._error
        if self._body is None:
            return memoryview(self._header)[self._header_filled:]
        return memoryview(self._body)[self._body_filled:]

    def commit(self, n: int) -> None:
        """Account for ``n`` bytes written into the view last returned by ``writable()``.

        Raises FrameSizeError when this completes a bad size prefix; ValueError when ``n`` is
        larger than that view.
        """
        if self._error is not None:
            raise self._error
        if self._body is None:
            if n < 0 or self._header_filled + n > 4:
                raise ValueError("commit() beyond the size prefix")
            self._header_filled += n
            if self._header_filled == 4:
                self._start_body()
        else:
            if n < 0 or self._body_filled + n > len(self._body):
                raise ValueError("commit() beyond the frame body")
            self._body_filled += n
            if self._body_filled == len(self._body):
                self._finish_body()

    # -- output
    def next_frame(self) -> memoryview | None:
        """The next complete frame body (without its size prefix), or None.

        The view is writable and owned by the caller from then on.
        """
        if self._ready:
            return self._ready.popleft()
        if self._error is not None:
            raise self._error
        return None

    # -- internals
    def _start_body(self) -> None:
        size = SIZE_PREFIX.unpack(self._header)[0]
        self._header_filled = 0
        if size < 0 or size > self.max_frame_size:
            self._error = FrameSizeError(size, self.max_frame_size)
            raise self._error
        if size == 0:
            self._ready.append(memoryview(bytearray(0)))
            return
        self._body = bytearray(size)
        self._body_filled = 0

    def _finish_body(self) -> None:
        assert self._body is not None
        self._ready.append(memoryview(self._body))
        self._body = None
        self._body_filled = 0

"""Kafka's framing: an int32 size prefix, then that many bytes. Incremental, sans-IO reader.

Holds ``FrameReader`` (bytes in, complete frames out, in the manner of h11's
``receive_data()`` / ``next_event()``), ``MemoryPool`` (the broker-wide budget of request
bytes, Kafka's ``queued.max.request.bytes``) and ``frame()`` (prefix a payload with its size).

Rules (Kafka's ``NetworkReceive`` / ``SocketServer`` / ``SimpleMemoryPool``):

- The 4-byte big-endian signed size counts the bytes after it. A negative size, or one above
  ``socket.request.max.bytes`` (default 104857600), is refused with ``FrameSizeError``
  *before* any buffer of that size is allocated; after that the reader is poisoned and the
  connection must be closed.
- A frame body's buffer is never allocated at the *declared* size before the bytes arrive
  (a peer announcing 100 MiB and sending nothing costs nothing). Nothing is allocated until
  the first body byte; a frame of at most ``EAGER_FRAME_BYTES`` (2 MiB: every ordinary
  request) then gets its whole ``bytearray`` at once (copied straight out of the received
  chunk when the whole frame is in it); for a larger one ``feed()`` appends each received
  chunk (the bytearray is resized in place: no zero-fill, no copy of what it holds), so it
  holds exactly what has arrived; ``writable()`` grows it ahead of the socket in steps
  (2 MiB first, then doubling, at most ``MAX_GROW_STEP`` = 16 MiB). When the frame is
  complete its buffer is exactly the body: ``next_frame()`` hands it out as a writable
  ``memoryview`` (never copied again; the broker patches batch offsets in place).
- ``feed(data)`` copies ``data`` into the body once; ``writable()`` + ``commit(n)`` let a
  socket ``recv_into`` the body directly.
- With a ``MemoryPool``, every body allocation is taken from the pool first. When the pool
  refuses, the reader keeps the unconsumed input (at most one ``feed()``'s worth) and reports
  ``waiting_for_memory``: the connection must stop reading (Kafka mutes the channel) and call
  ``resume()`` after memory is released. Frames handed out stay counted until the caller
  gives them back with ``release()``.

Sans-IO: this module never touches sockets, files or trio.
"""

from __future__ import annotations

import struct
from collections import deque

from kafkalike.protocol.errors import FrameSizeError

__all__ = ["DEFAULT_MAX_FRAME_SIZE", "EAGER_FRAME_BYTES", "MAX_GROW_STEP", "FrameReader",
           "MemoryPool", "frame", "SIZE_PREFIX"]

DEFAULT_MAX_FRAME_SIZE = 104857600
"""Kafka's ``socket.request.max.bytes`` default (100 MiB), in bytes."""

EAGER_FRAME_BYTES = 2 * 1024 * 1024
"""Frames up to this many bytes get their whole buffer on their first body byte (one copy);
larger ones start at this size and grow as their bytes arrive."""

MAX_GROW_STEP = 16 * 1024 * 1024
"""The most a large frame's buffer grows by at once (bytes)."""

SIZE_PREFIX = struct.Struct(">i")
"""The frame size prefix: int32, big-endian."""


def frame(payload: bytes | bytearray | memoryview) -> bytes:
    """Return ``payload`` prefixed with its int32 size (one whole Kafka frame)."""
    return SIZE_PREFIX.pack(len(payload)) + bytes(payload)


class MemoryPool:
    """A budget of bytes for request frames being received or held (``queued.max.request.bytes``).

    Follows Kafka's ``SimpleMemoryPool`` as the SocketServer uses it (non-strict): an
    allocation is granted while the pool is not exhausted (``used < capacity``), so ``used``
    may pass ``capacity`` by one allocation (here at most ``MAX_GROW_STEP`` bytes: a 2 MiB
    first buffer, one received chunk, or one ``writable()`` step). ``capacity`` <= 0 means
    unbounded (Kafka's ``MemoryPool.NONE``); ``used`` is still counted.

    Unlike Kafka, which reserves a frame's declared size when its prefix arrives, memory is
    counted as a frame's buffer grows, i.e. as its bytes arrive, so size prefixes alone cannot
    exhaust the pool. To stay live when partial frames fill the pool, refused readers queue
    in arrival order and only the first may take memory next; when every counted byte
    belongs to a waiting reader (nothing else can ever release), the first one is granted
    anyway and may keep allocating until its frame is complete, so some frame always
    completes and the overdraft is at most one frame (<= socket.request.max.bytes).
    """

    __slots__ = ("capacity", "used", "_waiting", "_privileged")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._waiting: dict[FrameReader, None] = {}
        self._privileged: FrameReader | None = None  # granted past the budget until its frame is done

    @property
    def bounded(self) -> bool:
        """False for capacity <= 0 (unbounded)."""
        return self.capacity > 0

    @property
    def available(self) -> int:
        """Bytes left before the pool is exhausted (negative when overdrawn); huge if unbounded."""
        return self.capacity - self.used if self.capacity > 0 else 2**62

    @property
    def waiting(self) -> int:
        """Readers waiting for memory."""
        return len(self._waiting)

    def try_allocate(self, reader: "FrameReader", nbytes: int) -> bool:
        """Take ``nbytes`` for ``reader``'s frame, or queue the reader and return False."""
        if self.capacity <= 0 or reader is self._privileged:
            self.used += nbytes
            return True
        first = next(iter(self._waiting), None)
        if first is None or first is reader:
            grant = self.used < self.capacity
            if not grant and first is reader and self._privileged is None:
                held_by_waiting = sum(r.held for r in self._waiting)
                if held_by_waiting >= self.used:  # no one else can release: deadlock breaker
                    grant = True
                    self._privileged = reader  # it may now finish its frame whatever it takes
            if grant:
                self._waiting.pop(reader, None)
                self.used += nbytes
                return True
        self._waiting.setdefault(reader, None)
        return False

    def release(self, nbytes: int) -> None:
        """Give back ``nbytes`` taken earlier (a handled frame, a closed connection's buffer)."""
        self.used -= nbytes

    def frame_done(self, reader: "FrameReader") -> None:
        """``reader`` completed (or dropped) its frame: it loses any overdraft privilege."""
        if self._privileged is reader:
            self._privileged = None

    def forget(self, reader: "FrameReader") -> None:
        """Drop ``reader`` from the waiting queue (its connection is closing)."""
        self._waiting.pop(reader, None)
        self.frame_done(reader)


class FrameReader:
    """Incremental frame reader: ``feed()`` bytes, pull frames with ``next_frame()``.

    ``max_frame_size`` is ``socket.request.max.bytes`` (bytes). Raises FrameSizeError from
    ``feed()`` / ``commit()`` as soon as a bad size prefix is complete; later calls raise it
    again (the connection must be closed). ``pool``: a MemoryPool every body buffer is taken
    from (None: no budget); then give each frame back with ``release(frame)`` once handled
    and call ``close()`` when the connection ends.
    """

    __slots__ = ("max_frame_size", "pool", "held", "_header", "_header_filled", "_size", "_body",
                 "_body_filled", "_ready", "_error", "_pending", "_waiting")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
                 pool: MemoryPool | None = None) -> None:
        self.max_frame_size = max_frame_size
        self.pool = pool
        self.held = 0
        """Bytes of the pool held by the frame being assembled."""
        self._header = bytearray(4)
        self._header_filled = 0
        self._size = -1  # declared size of the body being assembled, -1 between frames
        self._body: bytearray | None = None  # allocated lazily, grows up to _size
        self._body_filled = 0
        self._ready: deque[memoryview] = deque()
        self._error: FrameSizeError | None = None
        self._pending: bytes | None = None
        self._waiting = False

    # -- state
    @property
    def pending_frames(self) -> int:
        """Complete frames waiting to be taken with next_frame()."""
        return len(self._ready)

    @property
    def in_progress(self) -> bool:
        """True while part of a frame (prefix or body) has been received."""
        return self._header_filled > 0 or self._size >= 0

    @property
    def waiting_for_memory(self) -> bool:
        """True when the pool refused memory: stop reading until ``resume()`` returns True."""
        return self._waiting

    @property
    def allocated(self) -> int:
        """Bytes allocated for the frame being assembled (its buffer's current size)."""
        return len(self._body) if self._body is not None else 0

    # -- input
    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes (copied once into the frame being assembled).

        Raises FrameSizeError for a negative size or one above max_frame_size. When the pool
        refuses memory the rest of ``data`` is kept (``waiting_for_memory`` becomes True) and
        consumed by ``resume()``; feeding more before that raises RuntimeError.
        """
        if self._error is not None:
            raise self._error
        if self._waiting:
            raise RuntimeError("feed() while waiting for memory: call resume() first")
        mv = memoryview(data)
        if mv.ndim != 1 or mv.itemsize != 1:
            mv = mv.cast("B")
        pos = 0
        end = len(mv)
        ready = self._ready
        pool = self.pool
        while pos < end:
            if self._size < 0:
                if self._header_filled == 0 and end - pos >= 4:
                    size = SIZE_PREFIX.unpack_from(mv, pos)[0]
                    pos += 4
                    if 0 < size <= EAGER_FRAME_BYTES and size <= end - pos and (
                            pool is None or pool.try_allocate(self, size)):
                        # fast path: the whole frame is here; one copy, no zero-fill
                        ready.append(memoryview(bytearray(mv[pos:pos + size])))
                        pos += size
                    else:
                        self._begin(size)
                    continue
                take = min(4 - self._header_filled, end - pos)
                self._header[self._header_filled:self._header_filled + take] = mv[pos:pos + take]
                self._header_filled += take
                pos += take
                if self._header_filled == 4:
                    self._start_body()
                continue
            filled = self._body_filled
            take = min(self._size - filled, end - pos)
            body = self._body
            if self._size > EAGER_FRAME_BYTES and (body is None or len(body) == filled):
                # a large frame holds what has arrived: append (resized in place, no zero-fill)
                if pool is not None and not pool.try_allocate(self, take):
                    self._waiting = True
                    self._pending = bytes(mv[pos:])
                    return
                if body is None:
                    self._body = bytearray(mv[pos:pos + take])
                else:
                    body += mv[pos:pos + take]
                self.held += take
            else:
                if (body is None or len(body) < filled + take) and not self._grow(take):
                    self._pending = bytes(mv[pos:])
                    return
                body = self._body
                assert body is not None
                body[filled:filled + take] = mv[pos:pos + take]
            self._body_filled = filled + take
            pos += take
            if self._body_filled == self._size:
                self._finish_body()

    def resume(self) -> bool:
        """Retry after memory was released; True when the reader no longer waits.

        Consumes the input kept by ``feed()`` (which may complete frames), or retries the
        allocation ``writable()`` could not make.
        """
        if not self._waiting:
            return True
        self._waiting = False
        pending, self._pending = self._pending, None
        if pending is not None:
            self.feed(pending)
        elif self._size >= 0:
            self._grow(1)
        return not self._waiting

    def writable(self) -> memoryview:
        """Where the next received bytes should go, for ``sock.recv_into(reader.writable())``.

        While a size prefix is incomplete this is the rest of the 4-byte prefix; then it is
        (part of) the rest of the frame body (the body buffer itself: no later copy). Empty
        when the pool refused memory (``waiting_for_memory``). Follow with ``commit(n)`` for
        the n bytes received.
        """
        if self._error is not None:
            raise self._error
        if self._size < 0:
            return memoryview(self._header)[self._header_filled:]
        if self._waiting:
            return memoryview(b"")
        body = self._body
        if body is None or len(body) == self._body_filled:
            if not self._grow(1):
                return memoryview(b"")
            body = self._body
            assert body is not None
        return memoryview(body)[self._body_filled:]

    def commit(self, n: int) -> None:
        """Account for ``n`` bytes written into the view last returned by ``writable()``.

        Raises FrameSizeError when this completes a bad size prefix; ValueError when ``n`` is
        larger than that view.
        """
        if self._error is not None:
            raise self._error
        if self._size < 0:
            if n < 0 or self._header_filled + n > 4:
                raise ValueError("commit() beyond the size prefix")
            self._header_filled += n
            if self._header_filled == 4:
                self._start_body()
        else:
            if n < 0 or self._body_filled + n > self.allocated:
                raise ValueError("commit() beyond the frame body")
            self._body_filled += n
            if self._body_filled == self._size:
                self._finish_body()

    # -- output
    def next_frame(self) -> memoryview | None:
        """The next complete frame body (without its size prefix), or None.

        The view is writable and owned by the caller from then on (with a pool, give it back
        with ``release()``).
        """
        if self._ready:
            return self._ready.popleft()
        if self._error is not None:
            raise self._error
        return None

    def release(self, frame_view: memoryview) -> None:
        """Return a frame's bytes to the pool once it has been handled (no-op without a pool)."""
        if self.pool is not None:
            self.pool.release(len(frame_view))

    def close(self) -> None:
        """Return everything this reader holds to the pool: the frame being assembled and
        frames not taken yet. The reader must not be used afterwards."""
        if self.pool is not None:
            self.pool.forget(self)
            self.pool.release(self.held + sum(len(f) for f in self._ready))
        self.held = 0
        self._ready.clear()
        self._body = None
        self._pending = None
        self._waiting = False

    # -- internals
    def _start_body(self) -> None:
        self._header_filled = 0
        self._begin(SIZE_PREFIX.unpack(self._header)[0])

    def _begin(self, size: int) -> None:
        if size < 0 or size > self.max_frame_size:
            self._error = FrameSizeError(size, self.max_frame_size)
            raise self._error
        if size == 0:
            self._ready.append(memoryview(bytearray(0)))
            return
        self._size = size
        self._body = None
        self._body_filled = 0

    def _grow(self, incoming: int) -> bool:
        """Make room for ``incoming`` more body bytes (at least one step); False if the pool
        refused (``_waiting`` is then set)."""
        size = self._size
        body = self._body
        current = len(body) if body is not None else 0
        need = min(size, self._body_filled + max(incoming, 1))
        if size <= EAGER_FRAME_BYTES:
            target = size
        else:
            target = min(size, max(need, EAGER_FRAME_BYTES, current + min(current, MAX_GROW_STEP)))
        delta = target - current
        if delta <= 0:
            return True
        if self.pool is not None and not self.pool.try_allocate(self, delta):
            self._waiting = True
            return False
        if body is None:
            self._body = bytearray(target)
        else:
            try:
                body.extend(bytes(delta))  # resized in place (no copy of what was received)
            except BufferError:  # a writable() view is still alive: copy into a new buffer
                grown = bytearray(target)
                grown[:self._body_filled] = memoryview(body)[:self._body_filled]
                self._body = grown
        self.held += delta
        return True

    def _finish_body(self) -> None:
        body = self._body
        assert body is not None and len(body) == self._size
        self._ready.append(memoryview(body))
        self._body = None
        self._body_filled = 0
        self._size = -1
        self.held = 0
        if self.pool is not None:
            self.pool.frame_done(self)

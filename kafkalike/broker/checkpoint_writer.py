"""CheckpointWriter: the broker's periodic checkpoint files (high watermarks, recovery points,
log start offsets) written off the event loop, in trio worker threads, one file at a time.

Kafka writes these files from its scheduler threads ("highwatermark-checkpoint",
"kafka-log-flush-start-offset-checkpoint" and the like), so that a request is never held up by
an fsync. kafkalike reads the offsets on the event loop (LogManager.high_watermark_checkpoint
and the like return a CheckpointSnapshot) and hands the snapshot to this writer; its task runs
LogManager.write_checkpoint in a worker thread (``trio.to_thread.run_sync``). A newer snapshot
of a file replaces one that is queued and not started, so a slow disk delays the files but does
not pile them up. A write that has started is never abandoned: cancelling the task waits for it
(trio.to_thread's default), so no worker thread writes a file after the broker's task tree is
gone.

``close()`` (ReplicaManager.shutdown) waits for the queued and running writes and takes no
more: the LogManager's shutdown then writes the final files itself, with no writer thread
racing it for the same file.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from kafkalike.storage.log_manager import CheckpointSnapshot


class CheckpointWriter:
    """``write(snapshot)``: a blocking function that writes one checkpoint file in every dir
    (LogManager.write_checkpoint); it is called in a worker thread. ``written``: snapshots
    written so far."""

    def __init__(self, write: Callable[[CheckpointSnapshot], None]) -> None:
        self._write = write
        self._due: dict[str, CheckpointSnapshot] = {}
        self._queued = trio.Event()
        self._idle = trio.Event()
        self._idle.set()
        self._running = False
        self._closed = False
        self.written = 0

    def queue(self, snapshot: CheckpointSnapshot) -> None:
        """Have ``snapshot`` written soon; replaces a queued snapshot of the same file. Ignored
        after ``close()``."""
        if self._closed:
            return
        self._due[snapshot.file_name] = snapshot
        self._queued.set()
        if self._idle.is_set():
            self._idle = trio.Event()

    async def run(self) -> None:
        """The writer task: writes queued snapshots in a worker thread until cancelled."""
        self._running = True
        try:
            while True:
                await self._queued.wait()
                self._queued = trio.Event()
                while self._due:
                    snapshot = self._due.pop(next(iter(self._due)))
                    await trio.to_thread.run_sync(self._write, snapshot)
                    self.written += 1
                self._idle.set()
        finally:
            self._running = False
            self._due.clear()
            self._idle.set()

    async def close(self) -> None:
        """Take no more snapshots and wait until the queued ones are written (none are when
        the task is not running)."""
        self._closed = True
        if not self._running:
            self._due.clear()
            return
        await self._idle.wait()

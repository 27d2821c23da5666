"""Raft voters as real processes (``python -m kafkalike.raft.node``) on loopback, for tests/raft.

``raft_cluster(tmp_path, n)`` starts n voters on free ports and always stops them by pid (SIGKILL
after a grace period), even when a test fails. ``describe(node)`` asks a node DescribeQuorum over a
real socket; ``wait_for`` polls with a bounded wait (no timed assertions: only "eventually").
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio

from kafkalike.client.connection import KafkaConnection
from kafkalike.client.messages import build_request
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from kafkalike.protocol.records import DecodedBatch, decode_batches
from kafkalike.raft.kafka_metadata_log import METADATA_PARTITION_DIR, Batch
from kafkalike.raft.kafka_raft_client import LeaderAndEpoch

REPO = Path(__file__).resolve().parents[2]
STARTUP_S = 120.0
"""Bound for a node's start (imports alone take 10 s on a loaded 2-core machine)."""

T = TypeVar("T")
N = TypeVar("N", bound="RaftNode")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@attrs.define
class RaftNode:
    node_id: int
    port: int
    dir: Path
    voters: str
    args: list[str]
    process: subprocess.Popen[bytes] | None = None
    out_path: Path | None = None
    starts: int = 0

    @property
    def segments(self) -> list[Path]:
        return sorted((self.dir / METADATA_PARTITION_DIR).glob("*.log"))

    def start(self) -> None:
        self.starts += 1
        self.out_path = self.dir.parent / f"node{self.node_id}.{self.starts}.out"
        with open(self.out_path, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kafkalike.raft.node", "--node-id", str(self.node_id), "--voters",
                 self.voters, "--dir", str(self.dir), *self.args],
                stdout=out, stderr=subprocess.STDOUT, cwd=REPO)

    def kill9(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM (after SIGCONT), SIGKILL if it has not exited in 20 s."""
        p = self.process
        if p is None or p.poll() is not None:
            return
        self.resume()
        terminate(p, 20)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """JSON lines this node printed (all its runs), optionally only events called ``name``."""
        found = []
        for path in sorted(self.dir.parent.glob(f"node{self.node_id}.*.out")):
            for line in path.read_text(errors="replace").splitlines():
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(event, dict) and (name is None or event.get("event") == name):
                    found.append(event)
        return found

    def batches(self) -> list[DecodedBatch]:
        """The batches in this node's segments now, in offset order (a torn tail ignored)."""
        found: list[DecodedBatch] = []
        for path in sorted((self.dir / METADATA_PARTITION_DIR).glob("*.log")):
            found += decode_batches(path.read_bytes(), allow_truncated_tail=True)
        return found


def terminate(process: subprocess.Popen[Any], timeout_s: float) -> None:
    """SIGTERM ``process`` unless it has exited, wait up to ``timeout_s`` s, then SIGKILL it
    and wait for it."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@attrs.define
class Recorder:
    """A KafkaRaftClient listener that keeps what it is given: every committed batch
    (``handle_commit``, control batches included) and every leader change, in order."""

    batches: list[Batch] = attrs.field(factory=list)
    leaders: list[LeaderAndEpoch] = attrs.field(factory=list)

    def handle_commit(self, batch: Batch) -> None:
        self.batches.append(batch)

    def handle_leader_change(self, leader: LeaderAndEpoch) -> None:
        self.leaders.append(leader)

    def data_offsets(self) -> list[int]:
        """The last offset of each committed batch that has records (control batches left out)."""
        return [b.last_offset for b in self.batches if b.records]


@contextlib.contextmanager
def raft_cluster(tmp_path: Path, n: int = 3, args: tuple[str, ...] = (),
                 prepare: Callable[[list[N]], None] | None = None,
                 make_node: Callable[[int, int, Path, str], N] | None = None) -> Iterator[list[N]]:
    """n voters (ids 1..n) under tmp_path (dirs ``node<id>``), started in order, stopped (SIGTERM,
    then SIGKILL) at exit; ``prepare`` may write their dirs before they start. ``make_node(node_id,
    port, dir, voters)`` makes each node (default: a RaftNode with ``args``; kraft_helpers'
    controller_quorum makes ControllerNodes)."""
    make: Callable[[int, int, Path, str], Any] = make_node or (
        lambda node_id, port, path, voters: RaftNode(node_id, port, path, voters, list(args)))
    ports = free_ports(n)
    voters = ",".join(f"{i + 1}@127.0.0.1:{port}" for i, port in enumerate(ports))
    nodes = [make(i + 1, port, tmp_path / f"node{i + 1}", voters) for i, port in enumerate(ports)]
    for node in nodes:
        node.dir.mkdir(parents=True, exist_ok=True)
    if prepare is not None:
        prepare(nodes)
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@attrs.frozen
class Quorum:
    """A node's DescribeQuorum answer."""

    error: ErrorCode
    leader_id: int
    epoch: int
    high_watermark: int
    voters: dict[int, int]  # voter id -> log end offset the leader knows


async def describe(node: RaftNode, timeout_s: float = 10.0) -> Quorum | None:
    """DescribeQuorum v1 to ``node``; None when it does not answer."""
    request = build_request(ApiKey.DESCRIBE_QUORUM, 1, topics=[
        {"topic_name": "__cluster_metadata", "partitions": [{"partition_index": 0}]}])
    with trio.move_on_after(timeout_s):
        try:
            async with KafkaConnection.open("127.0.0.1", node.port, negotiate=False,
                                            connect_timeout_ms=timeout_s * 1000) as conn:
                response = await conn.send(request, timeout_ms=timeout_s * 1000)
        except Exception:  # refused, reset: the node is not up (yet)
            return None
        p = response.topics[0].partitions[0]
        return Quorum(ErrorCode(p.error_code), p.leader_id, p.leader_epoch, p.high_watermark,
                      {v.replica_id: v.log_end_offset for v in p.current_voters})
    return None


async def wait_for(check: Callable[[], Awaitable[T | None]], what: str, timeout_s: float = 90.0,
                   interval_s: float = 0.2) -> T:
    """Poll ``check`` until it returns something other than None/False; fail after timeout_s."""
    with trio.move_on_after(timeout_s):
        while True:
            result = await check()
            if result is not None and result is not False:
                return result
            await trio.sleep(interval_s)
    raise AssertionError(f"gave up after {timeout_s} s waiting for {what}")


async def leader_of(nodes: list[RaftNode], min_epoch: int = 0, min_hw: int = 0) -> tuple[RaftNode, Quorum]:
    """Wait until exactly one running node answers DescribeQuorum as leader of an epoch >= min_epoch
    with a high watermark >= min_hw, and every other running node names it; returns it."""
    async def check() -> tuple[RaftNode, Quorum] | None:
        answers = {}
        for node in nodes:
            if node.process is not None and node.process.poll() is None:
                answers[node.node_id] = await describe(node, timeout_s=5)
        leaders = [(n, q) for n in nodes if (q := answers.get(n.node_id)) is not None and q.error == ErrorCode.none]
        if len(leaders) != 1:
            return None
        leader, quorum = leaders[0]
        if quorum.epoch < min_epoch or quorum.high_watermark < min_hw:
            return None
        if any(q is None or (q.leader_id, q.epoch) != (leader.node_id, quorum.epoch) for q in answers.values()):
            return None
        return leader, quorum
    return await wait_for(check, f"one leader of epoch >= {min_epoch} with high watermark >= {min_hw}",
                          timeout_s=STARTUP_S)

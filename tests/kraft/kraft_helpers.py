"""KRaft controller processes for tests/kraft: ``process.roles=controller`` nodes started with
``kafkalike broker start --config`` after ``kafkalike storage format``, on free loopback ports, always
stopped by pid. ``DrivenBroker`` is a broker's control-plane side played by the test over real
sockets: BrokerRegistration, BrokerHeartbeat, AlterPartition, AllocateProducerIds."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import trio

from kafkalike.cli.main import main as cli_main
from kafkalike.client.connection import KafkaConnection
from kafkalike.client.messages import build_request
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.errors import ErrorCode
from tests.raft.raft_helpers import REPO, RaftNode, leader_of, raft_cluster, wait_for

CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qg"
BROKER_REGISTRATION, BROKER_HEARTBEAT, ALTER_PARTITION, ALLOCATE_PRODUCER_IDS = 62, 63, 56, 67


@attrs.define
class ControllerNode(RaftNode):
    """A controller process; ``dir`` is its log dir (metadata.log.dir), ``config`` its properties."""

    extra: str = ""

    @property
    def config(self) -> Path:
        return self.dir.parent / f"controller{self.node_id}.properties"

    def write_config(self) -> None:
        self.config.write_text(
            f"process.roles=controller\nnode.id={self.node_id}\ncontroller.quorum.voters={self.voters}\n"
            f"listeners=CONTROLLER://127.0.0.1:{self.port}\ncontroller.listener.names=CONTROLLER\n"
            f"log.dirs={self.dir}\n{self.extra}")

    def start(self) -> None:
        self.starts += 1
        self.out_path = self.dir.parent / f"node{self.node_id}.{self.starts}.out"
        with open(self.out_path, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "import sys; from kafkalike.cli.main import main; sys.exit(main())",
                 "--log-format", "json", "broker", "start", "--config", str(self.config)],
                stdout=out, stderr=subprocess.STDOUT, cwd=REPO)

    def records(self) -> list[mr.ApiMessage]:
        """The metadata records in this node's segments (control batches skipped)."""
        out: list[mr.ApiMessage] = []
        for batch in self.batches():
            if not batch.is_control:
                out += [mr.deserialize_record(r.value or b"").message for r in batch.records]
        return out


@contextlib.contextmanager
def controller_quorum(tmp_path: Path, n: int = 3, extra: str = "") -> Iterator[list[ControllerNode]]:
    """n formatted controllers (ids 1..n) under tmp_path, started; stopped (SIGTERM, then SIGKILL) at exit."""
    def format_storage(nodes: list[ControllerNode]) -> None:
        for node in nodes:
            node.write_config()
            assert cli_main(["storage", "format", "-t", CLUSTER_ID, "-c", str(node.config)]) == 0

    with raft_cluster(tmp_path, n, prepare=format_storage,
                      make_node=lambda node_id, port, path, voters: ControllerNode(
                          node_id, port, path, voters, [], extra=extra)) as nodes:
        yield nodes


async def send(node: RaftNode, request: Any, timeout_s: float = 30.0) -> Any:
    """One request to ``node`` on a fresh connection."""
    async with KafkaConnection.open("127.0.0.1", node.port, negotiate=False,
                                    connect_timeout_ms=timeout_s * 1000) as conn:
        return await conn.send(request, timeout_ms=timeout_s * 1000)


async def active_controller(nodes: list[ControllerNode], min_epoch: int = 0) -> ControllerNode:
    """The Raft leader once it serves controller requests (an AllocateProducerIds of an unknown
    broker answers STALE_BROKER_EPOCH instead of NOT_CONTROLLER)."""
    async def check() -> ControllerNode | None:
        raft_leader, _quorum = await leader_of([n for n in nodes if n.process and n.process.poll() is None], min_epoch)
        leader = next(n for n in nodes if n.node_id == raft_leader.node_id)
        try:
            r = await send(leader, build_request(ALLOCATE_PRODUCER_IDS, 0, broker_id=999, broker_epoch=-1), 10)
        except Exception:
            return None
        return leader if r.error_code == ErrorCode.stale_broker_epoch else None
    return await wait_for(check, "an active controller", timeout_s=120)


@attrs.define
class DrivenBroker:
    """A broker's requests to the controllers, played by the test."""

    broker_id: int
    incarnation_id: uuid.UUID = attrs.field(factory=uuid.uuid4)
    log_dir: uuid.UUID = attrs.field(factory=uuid.uuid4)
    epoch: int = -1

    def registration(self, cluster_id: str = CLUSTER_ID) -> Any:
        return build_request(BROKER_REGISTRATION, 4, broker_id=self.broker_id, cluster_id=cluster_id,
                             incarnation_id=self.incarnation_id, listeners=[{
                                 "name": "PLAINTEXT", "host": "127.0.0.1", "port": 19000 + self.broker_id,
                                 "security_protocol": 0}],
                             features=[{"name": "metadata.version", "min_supported_version": 1,
                                        "max_supported_version": 21}],
                             rack=None, is_migrating_zk_broker=False, log_dirs=[self.log_dir],
                             previous_broker_epoch=-1)

    async def register(self, node: RaftNode, cluster_id: str = CLUSTER_ID) -> Any:
        r = await send(node, self.registration(cluster_id))
        if r.error_code == ErrorCode.none:
            self.epoch = r.broker_epoch
        return r

    async def heartbeat(self, node: RaftNode, offset: int, *, want_fence: bool = False,
                        want_shut_down: bool = False, epoch: int | None = None) -> Any:
        return await send(node, build_request(
            BROKER_HEARTBEAT, 1, broker_id=self.broker_id, broker_epoch=self.epoch if epoch is None else epoch,
            current_metadata_offset=offset, want_fence=want_fence, want_shut_down=want_shut_down,
            offline_log_dirs=[]))


async def heartbeat_until(node: RaftNode, brokers: list[DrivenBroker], *, offset: int, fenced: bool,
                          timeout_s: float = 60) -> None:
    """Heartbeat every broker (at ``offset``) until each is answered with is_fenced == ``fenced``."""
    async def check() -> bool:
        answers = [await b.heartbeat(node, offset) for b in brokers]
        return all(a.error_code == ErrorCode.none and a.is_fenced == fenced for a in answers)
    await wait_for(check, f"brokers {[b.broker_id for b in brokers]} fenced={fenced}", timeout_s=timeout_s)


@contextlib.asynccontextmanager
async def keep_heartbeating(nodes: list[ControllerNode], brokers: list[DrivenBroker], offset: int = 2**40,
                            interval_s: float = 0.3) -> Any:
    """Heartbeat ``brokers`` to whichever node answers (NOT_CONTROLLER: try the next) in the background."""
    async def loop() -> None:
        while True:
            for b in brokers:
                for node in nodes:
                    if node.process is None or node.process.poll() is not None:
                        continue
                    with contextlib.suppress(Exception):
                        r = await b.heartbeat(node, offset)
                        if r.error_code == ErrorCode.none:
                            break
            await trio.sleep(interval_s)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(loop)
            yield
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await fence(nodes, brokers)


async def fence(nodes: list[ControllerNode], brokers: list[DrivenBroker]) -> None:
    """Heartbeat wantFence for each broker (so that later tests place replicas on their own brokers)."""
    for b in brokers:
        for node in nodes:
            if node.process is None or node.process.poll() is not None:
                continue
            with contextlib.suppress(Exception):
                with trio.move_on_after(10):
                    if (await b.heartbeat(node, 2**40, want_fence=True)).error_code == ErrorCode.none:
                        break

"""KRaft clusters for tests/kraft/test_kraft_broker*: the controller processes of kraft_helpers plus
``process.roles=broker`` processes (``kafkalike storage format`` then ``kafkalike broker start``), on
free loopback ports, always stopped by pid (brokers first), even when a test fails."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import attrs

from kafkalike.cli.main import main as cli_main
from tests.kraft.kraft_helpers import CLUSTER_ID, ControllerNode, controller_quorum
from tests.raft.raft_helpers import free_ports, wait_for


@attrs.define
class BrokerNode(ControllerNode):
    """A KRaft broker process; ``dir`` holds logs/ and metadata/."""

    @property
    def config(self) -> Path:
        return self.dir.parent / f"broker{self.node_id}.properties"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def write_config(self) -> None:
        self.config.write_text(
            f"process.roles=broker\nnode.id={self.node_id}\ncontroller.quorum.voters={self.voters}\n"
            f"controller.listener.names=CONTROLLER\nlisteners=PLAINTEXT://127.0.0.1:{self.port}\n"
            f"log.dirs={self.dir / 'logs'}\nmetadata.log.dir={self.dir / 'metadata'}\n"
            f"kafkalike.metrics.port=-1\n{self.extra}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def started(self, timeout_s: float = 180) -> None:
        """Wait until this run logged broker_started (unfenced)."""
        async def check() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"broker {self.node_id} exited: {self.out_path and self.out_path.read_text()[-3000:]}")
            return len(self.events("broker_started")) >= self.starts
        await wait_for(check, f"broker {self.node_id} started", timeout_s=timeout_s)


@contextlib.contextmanager
def kraft_cluster(tmp_path: Path, brokers: int = 1, controllers: int = 3,
                  broker_extra: str = "") -> Iterator[tuple[list[ControllerNode], list[BrokerNode]]]:
    """``controllers`` controllers (ids 1..n) and ``brokers`` brokers (ids 101..), all formatted
    with one cluster id and started; at exit brokers are stopped (SIGTERM, then SIGKILL), then
    the controllers."""
    with controller_quorum(tmp_path, controllers) as voters:
        nodes = [BrokerNode(101 + i, port, tmp_path / f"broker{101 + i}", voters[0].voters, [], extra=broker_extra)
                 for i, port in enumerate(free_ports(brokers))]
        try:
            for node in nodes:
                node.dir.mkdir(parents=True, exist_ok=True)
                node.write_config()
                assert cli_main(["storage", "format", "-t", CLUSTER_ID, "-c", str(node.config)]) == 0
                node.start()
            yield voters, nodes
        finally:
            for node in nodes:
                node.stop()

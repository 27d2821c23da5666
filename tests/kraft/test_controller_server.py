"""ControllerServer's start-up checks and the KRaft keys of KafkaConfig (no processes: the server is
run in the test's trio loop until it refuses to start)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkalike.broker.controller_server import ControllerServer, ControllerStartupError
from kafkalike.broker.kafka_config import ConfigError, KafkaConfig
from kafkalike.cli.main import main as cli_main
from tests.raft.raft_helpers import free_ports


def _config(tmp_path: Path, node_id: int = 1, voters: str | None = None, extra: str = "") -> KafkaConfig:
    [port] = free_ports(1)
    voters = voters or f"1@127.0.0.1:{port}"
    text = (f"process.roles=controller\nnode.id={node_id}\ncontroller.quorum.voters={voters}\n"
            f"listeners=CONTROLLER://127.0.0.1:{port}\ncontroller.listener.names=CONTROLLER\n"
            f"log.dirs={tmp_path / 'meta'}\n{extra}")
    (tmp_path / "controller.properties").write_text(text)
    return KafkaConfig.from_properties(text)


def test_kraft_keys_need_no_zookeeper_but_a_controller_needs_voters_and_a_listener() -> None:
    config = KafkaConfig.from_properties("process.roles=controller\nnode.id=3\ncontroller.quorum.voters=3@h:9093\n"
                                         "controller.listener.names=CONTROLLER\nlisteners=CONTROLLER://h:9093\n")
    assert config.process_roles == {"controller"} and config.node_id == 3
    assert config.listener_security_protocol_map["CONTROLLER"] == "PLAINTEXT"
    assert config["broker.session.timeout.ms"] == 9000 and config["broker.heartbeat.interval.ms"] == 2000
    with pytest.raises(ConfigError, match="controller.quorum.voters"):
        KafkaConfig.from_properties("process.roles=controller\nnode.id=1\ncontroller.listener.names=C\n")
    with pytest.raises(ConfigError, match="node.id"):
        KafkaConfig.from_properties("process.roles=broker\n")
    with pytest.raises(ConfigError, match="zookeeper.connect"):
        KafkaConfig.from_properties("broker.id=1\n")


async def test_an_unformatted_metadata_dir_stops_the_controller_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(ControllerStartupError, match=r"No `meta.properties` found in .*meta"):
        await ControllerServer(_config(tmp_path)).run()


async def test_another_node_id_in_meta_properties_stops_the_controller(tmp_path: Path) -> None:
    _config(tmp_path, node_id=1)
    assert cli_main(["storage", "format", "-t", "MkU3OEVBNTcwNTJENDM2Qg", "-c",
                     str(tmp_path / "controller.properties")]) == 0
    [port] = free_ports(1)
    with pytest.raises(ControllerStartupError, match="Stored node id 1 doesn't match previous node id 2"):
        await ControllerServer(_config(tmp_path, node_id=2, voters=f"2@127.0.0.1:{port}")).run()


async def test_a_node_that_is_not_a_voter_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, node_id=1)
    assert cli_main(["storage", "format", "-t", "MkU3OEVBNTcwNTJENDM2Qg", "-c",
                     str(tmp_path / "controller.properties")]) == 0
    config = KafkaConfig.from_mapping({**config.originals, "controller.quorum.voters": "5@127.0.0.1:1"})
    with pytest.raises(ControllerStartupError, match=r"node.id 1 is not among controller.quorum.voters \[5\]"):
        await ControllerServer(config).run()

"""Issue 21: bugs `kafkalike compare` found in KRaft mode (unit tests, no processes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from kafkalike.broker.forwarding_manager import (ForwardingManager, NodeToControllerChannel,
                                                 forwarding_error_response)
from kafkalike.broker.kraft_metadata_cache import KRaftMetadataCache
from kafkalike.cli.main import main as cli_main
from kafkalike.client.messages import build_request
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.codec import encode_response_body
from kafkalike.protocol.errors import ErrorCode
from tests.kraft.kraft_broker_helpers import BrokerNode
from tests.kraft.kraft_helpers import CLUSTER_ID, controller_quorum, send
from tests.raft.raft_helpers import free_ports, wait_for

TIMED_OUT = ErrorCode.request_timed_out


def _no_controller(nursery: trio.Nursery) -> ForwardingManager:
    """A ForwardingManager whose channel never knows an active controller (times out fast)."""
    channel = NodeToControllerChannel(1, {3000: ("127.0.0.1", 1)}, lambda: -1, nursery,
                                      request_timeout_ms=200, retry_backoff_ms=20)
    return ForwardingManager(None, channel, KRaftMetadataCache(broker_id=1), describe=None)  # type: ignore[arg-type]


def _encodes(request: Any, response: Any) -> None:
    cls = type(request)
    assert encode_response_body(cls.__api_key__, cls.__version__, response)


@pytest.mark.parametrize("version", [2, 5, 7])
async def test_create_topics_without_a_controller_answers_request_timed_out_per_topic(version: int) -> None:
    async with trio.open_nursery() as nursery:
        forwarding = _no_controller(nursery)
        request = build_request(ApiKey.CREATE_TOPICS, version, timeout=1000, validate_only=False, topics=[
            {"name": n, "num_partitions": 3, "replication_factor": 3, "assignments": [], "configs": []}
            for n in ("a", "b")])
        response = await forwarding.create_topics(None, request)
        nursery.cancel_scope.cancel()
    assert [(t.name, t.error_code) for t in response.topics] == [("a", TIMED_OUT), ("b", TIMED_OUT)]
    _encodes(request, response)


async def test_delete_topics_and_create_partitions_without_a_controller_answer_request_timed_out() -> None:
    async with trio.open_nursery() as nursery:
        forwarding = _no_controller(nursery)
        delete = build_request(ApiKey.DELETE_TOPICS, 5, topic_names=["a", "b"], timeout=1000)
        deleted = await forwarding.delete_topics(None, delete)
        grow = build_request(ApiKey.CREATE_PARTITIONS, 3, timeout=1000, validate_only=False,
                             topics=[{"name": "a", "count": 6, "assignments": None}])
        grown = await forwarding.create_partitions(None, grow)
        nursery.cancel_scope.cancel()
    assert [(r.name, r.error_code) for r in deleted.responses] == [("a", TIMED_OUT), ("b", TIMED_OUT)]
    assert [(r.name, r.error_code) for r in grown.results] == [("a", TIMED_OUT)]
    _encodes(delete, deleted)
    _encodes(grow, grown)


async def test_alter_configs_without_a_controller_answer_request_timed_out_per_resource() -> None:
    async with trio.open_nursery() as nursery:
        forwarding = _no_controller(nursery)
        incremental = build_request(ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, validate_only=False, resources=[
            {"resource_type": 2, "resource_name": "a",
             "configs": [{"name": "retention.ms", "config_operation": 0, "value": "1000"}]}])
        answer = await forwarding.alter_configs(None, incremental, incremental=True)
        legacy = build_request(ApiKey.ALTER_CONFIGS, 1, validate_only=False, resources=[
            {"resource_type": 2, "resource_name": "b", "configs": [{"name": "retention.ms", "value": "1000"}]}])
        legacy_answer = await forwarding.alter_configs(None, legacy, incremental=False)
        nursery.cancel_scope.cancel()
    assert [(r.resource_name, r.error_code) for r in answer.responses] == [("a", TIMED_OUT)]
    assert [(r.resource_name, r.error_code) for r in legacy_answer.responses] == [("b", TIMED_OUT)]
    _encodes(incremental, answer)
    _encodes(legacy, legacy_answer)


def test_elect_leaders_error_answer_names_every_partition() -> None:
    request = build_request(ApiKey.ELECT_LEADERS, 2, election_type=0, timeout=1000,
                            topic_partitions=[{"topic": "a", "partitions": [0, 1]}])
    response = forwarding_error_response(request, TIMED_OUT, "no controller")
    assert response.error_code == TIMED_OUT
    assert [(t.topic, [(p.partition_id, p.error_code) for p in t.partition_result])
            for t in response.replica_election_results] == [("a", [(0, TIMED_OUT), (1, TIMED_OUT)])]
    _encodes(request, response)
    everything = build_request(ApiKey.ELECT_LEADERS, 2, election_type=0, timeout=1000, topic_partitions=None)
    assert forwarding_error_response(everything, TIMED_OUT).replica_election_results == ()


async def test_a_kraft_broker_answers_metadata_only_once_the_controller_unfenced_it(tmp_path: Path) -> None:
    """Kafka enables request processing after unfencing; a restarted kafkalike broker answered
    Metadata at once from its local metadata log (its old incarnation listed as alive) while the
    controller still refused to place replicas on it (INVALID_REPLICATION_FACTOR, issue 21)."""
    with controller_quorum(tmp_path, 1) as voters:
        controller = voters[0]
        controller.stop()  # the broker starts with no controller: it cannot register
        broker = BrokerNode(101, free_ports(1)[0], tmp_path / "broker101", controller.voters, [])
        try:
            broker.dir.mkdir(parents=True)
            broker.write_config()
            assert cli_main(["storage", "format", "-t", CLUSTER_ID, "-c", str(broker.config)]) == 0
            broker.start()

            async def listening() -> bool:
                try:
                    await send(broker, build_request(ApiKey.API_VERSIONS, 3, client_software_name="t",
                                                     client_software_version="1"), 5)
                except Exception:  # not listening yet (refused, possibly in a group)
                    return False
                return True
            await wait_for(listening, "the fenced broker's listener", timeout_s=120)
            answer: list[Any] = []

            async def ask_metadata() -> None:
                answer.append(await send(broker, build_request(ApiKey.METADATA, 12, topics=None,
                                                               allow_auto_topic_creation=False), 180))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask_metadata)
                await trio.sleep(1.0)  # the request is in (a broker serving early answers it now)
                assert answer == [], "Metadata answered before any controller could register the broker"
                controller.start()
                await broker.started()
            assert len(answer) == 1  # answered once unfenced

            async def lists_itself() -> bool:
                md = await send(broker, build_request(ApiKey.METADATA, 12, topics=None,
                                                      allow_auto_topic_creation=False), 30)
                return [b.node_id for b in md.brokers] == [101]
            await wait_for(lists_itself, "the broker in its own Metadata", timeout_s=60)
        finally:
            broker.stop()

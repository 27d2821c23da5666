"""The controller's channel encodes a request naming thousands of partitions (and decodes its
answer) in a worker thread, not on the event loop the controller shares with its broker
(issue 15: no event-loop stall over ~100 ms at 10,000 topics; encoding one 10,000-partition
UpdateMetadata took 0.1-0.2 s of the loop). Checked structurally: which thread ran
``encode_request`` for each request, not how long anything took."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import trio

from kafkalike.client import connection
from kafkalike.controller.controller_channel_manager import BUILD_OFF_LOOP_PARTITIONS, ControllerChannelManager
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.update_metadata import (
    UpdateMetadataBroker,
    UpdateMetadataEndpoint,
    UpdateMetadataPartitionState,
    UpdateMetadataRequest,
    UpdateMetadataTopicState,
)
from tests.controller.test_state_machines_standalone import RecordingBroker


def update_metadata(partitions: int) -> UpdateMetadataRequest:
    """An UpdateMetadata (v5+ shape) naming ``partitions`` single-partition topics."""
    return UpdateMetadataRequest(
        controller_id=100, controller_epoch=1, broker_epoch=-1,
        topic_states=tuple(UpdateMetadataTopicState(topic_name=f"t-{i:05d}", partition_states=(
            UpdateMetadataPartitionState(partition_index=0, controller_epoch=1, leader=1, leader_epoch=0, isr=(1,),
                                         zk_version=0, replicas=(1,), offline_replicas=()),)) for i in range(partitions)),
        live_brokers=(UpdateMetadataBroker(id=1, endpoints=(UpdateMetadataEndpoint(port=9092, host="127.0.0.1"),)),))


async def test_a_request_naming_thousands_of_partitions_is_encoded_off_the_event_loop_and_a_small_one_on_it(
        nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two UpdateMetadata requests through a real channel to a real TCP receiver: the one
    naming BUILD_OFF_LOOP_PARTITIONS partitions is encoded in another thread than the event
    loop's, the 10-partition one on the loop's; the receiver gets both whole."""
    encoded_in: dict[int, int] = {}  # topics in the request -> thread ident that encoded it
    original = connection.encode_request

    def recording(request: Any, **kwargs: Any) -> bytes:
        if isinstance(request, UpdateMetadataRequest):
            encoded_in[len(request.topic_states)] = threading.get_ident()
        return original(request, **kwargs)

    monkeypatch.setattr(connection, "encode_request", recording)
    broker = RecordingBroker()
    await broker.start(nursery)
    channel = ControllerChannelManager(100, request_timeout_ms=60_000)
    channel.start(nursery)
    channel.add_broker(1, "127.0.0.1", broker.port)
    answers: list[int] = []
    try:
        for n in (BUILD_OFF_LOOP_PARTITIONS, 10):
            assert channel.send(1, ApiKey.UPDATE_METADATA, lambda _version, n=n: update_metadata(n),
                                lambda _broker, response: answers.append(response.error_code), partitions=n)
        with trio.fail_after(60):
            while len(answers) < 2:
                await trio.sleep(0.02)
    finally:
        channel.shutdown()
    loop_thread = threading.get_ident()
    assert encoded_in[BUILD_OFF_LOOP_PARTITIONS] != loop_thread, "the big request was encoded on the event loop"
    assert encoded_in[10] == loop_thread
    got = broker.received[ApiKey.UPDATE_METADATA]
    assert [len(r.topic_states) for r in got] == [BUILD_OFF_LOOP_PARTITIONS, 10]
    assert answers == [0, 0]

"""client.messages.build_request: plain values to kio entities, with each class's fields
classified once (a per-class plan) rather than on every build."""

from __future__ import annotations

import datetime

from kio.index import load_payload_module
from kio.static.constants import EntityType

from kafkalike.client.messages import build_request
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.codec import encode_request, parse_request


def test_a_follower_fetch_from_dicts_equals_the_entity_built_by_hand() -> None:
    """Fetch v12 as the replica fetcher sends it: nested dicts become FetchTopic/FetchPartition,
    max_wait milliseconds a timedelta, left-out fields their defaults (cluster_id None, rack_id
    ""); the same entity and the same bytes as kio's classes called directly, every time."""
    mod = load_payload_module(ApiKey.FETCH, 12, EntityType.request)
    fields = dict(replica_id=2, max_wait=500, min_bytes=1, max_bytes=10485760, isolation_level=0, session_id=5,
                  session_epoch=7, forgotten_topics_data=[],
                  topics=[{"topic": "t", "partitions": [
                      {"partition": p, "current_leader_epoch": 0, "fetch_offset": 10 + p, "last_fetched_epoch": -1,
                       "log_start_offset": 0, "partition_max_bytes": 1048576} for p in range(3)]}])
    by_hand = mod.FetchRequest(
        cluster_id=None, replica_id=2, max_wait=datetime.timedelta(milliseconds=500), min_bytes=1,
        max_bytes=10485760, isolation_level=0, session_id=5, session_epoch=7, forgotten_topics_data=(), rack_id="",
        topics=(mod.FetchTopic(topic="t", partitions=tuple(mod.FetchPartition(
            partition=p, current_leader_epoch=0, fetch_offset=10 + p, last_fetched_epoch=-1, log_start_offset=0,
            partition_max_bytes=1048576) for p in range(3))),))
    for _ in range(3):  # the first build works the plan out, the later ones use it
        built = build_request(ApiKey.FETCH, 12, **fields)
        assert built == by_hand
        assert encode_request(built, correlation_id=3, client_id="f", api_version=12) == \
            encode_request(by_hand, correlation_id=3, client_id="f", api_version=12)


def test_every_request_of_every_version_builds_from_defaults_and_parses_back() -> None:
    """build_request with no fields for every API key and version kio has: an entity whose
    frame the broker's parser reads back as the same entity."""
    built = 0
    for api_key in ApiKey:
        for version in range(0, 20):
            try:
                load_payload_module(int(api_key), version, EntityType.request)
            except Exception:  # noqa: BLE001 -- no schema for that version
                continue
            request = build_request(int(api_key), version)
            frame = encode_request(request, correlation_id=1, client_id="c", api_version=version)
            try:
                _header, parsed = parse_request(memoryview(bytearray(frame[4:])))
            except Exception:  # noqa: BLE001 -- versions the broker does not serve are refused
                continue
            assert parsed == request, (api_key, version)
            built += 1
    assert built > 150  # 189 request versions on 2026-12-07

"""The registry's state as rebuilt from ``_schemas`` records (Confluent's key/value JSON),
without a cluster: versions, soft and permanent deletes, configs, Confluent's DELETE_SUBJECT
records, and the first-writer-wins rule that lets several instances share the topic."""

from __future__ import annotations

import json

from kafkalike.schema_registry.in_memory_cache import (InMemoryCache, SchemaVersion, config_key, config_value,
                                                      schema_key, schema_value)


def sv(subject: str, version: int, schema_id: int, schema: str = '"string"', **kw: object) -> SchemaVersion:
    return SchemaVersion(subject, version, schema_id, schema, **kw)  # type: ignore[arg-type]


def test_records_use_confluents_key_and_value_json() -> None:
    assert json.loads(schema_key("orders-value", 3)) == {"keytype": "SCHEMA", "subject": "orders-value",
                                                         "version": 3, "magic": 1}
    assert list(json.loads(schema_key("s", 1))) == ["keytype", "subject", "version", "magic"]
    assert json.loads(schema_value(sv("s", 1, 7))) == {"subject": "s", "version": 1, "id": 7,
                                                       "schema": '"string"', "deleted": False}
    assert json.loads(schema_value(sv("s", 1, 7, schema_type="JSON")))["schemaType"] == "JSON"
    assert json.loads(config_key(None)) == {"keytype": "CONFIG", "magic": 0}
    assert json.loads(config_value(None, "FULL")) == {"compatibilityLevel": "FULL"}


def test_versions_soft_and_permanent_deletes() -> None:
    cache = InMemoryCache()
    cache.apply(0, schema_key("s", 1), schema_value(sv("s", 1, 1)))
    cache.apply(1, schema_key("s", 2), schema_value(sv("s", 2, 2, '"long"')))
    cache.apply(2, schema_key("s", 1), schema_value(sv("s", 1, 1, deleted=True)))
    assert [v.version for v in cache.live_versions("s")] == [2]
    cache.apply(3, schema_key("s", 1), None)
    assert sorted(cache.subjects["s"]) == [2]
    cache.apply(4, schema_key("s", 2), None)
    assert "s" not in cache.subjects and cache.offset == 5
    assert cache.next_id() == 3  # ids are never reused after a permanent delete


def test_configs_and_confluents_delete_subject_record() -> None:
    cache = InMemoryCache()
    cache.apply(0, config_key(None), config_value(None, "FULL"))
    cache.apply(1, config_key("s"), config_value("s", "NONE"))
    assert cache.configs == {None: "FULL", "s": "NONE"}
    cache.apply(2, config_key("s"), None)
    assert cache.configs == {None: "FULL"}
    for v in (1, 2, 3):
        cache.apply(2 + v, schema_key("s", v), schema_value(sv("s", v, v, f'"{["int", "long", "string"][v - 1]}"')))
    cache.apply(6, json.dumps({"keytype": "DELETE_SUBJECT", "subject": "s", "magic": 0}).encode(),
                json.dumps({"subject": "s", "version": 2}).encode())
    assert [v.version for v in cache.live_versions("s")] == [3]


def test_first_writer_wins_a_race_between_instances() -> None:
    cache = InMemoryCache()
    assert cache.apply(0, schema_key("a", 1), schema_value(sv("a", 1, 1, '"int"')))
    # another instance claimed version 1 of "a" with another id: refused
    assert not cache.apply(1, schema_key("a", 1), schema_value(sv("a", 1, 2, '"long"')))
    # another instance gave id 1 to another schema: refused
    assert not cache.apply(2, schema_key("b", 1), schema_value(sv("b", 1, 1, '"long"')))
    assert cache.ignored == 2
    assert cache.subjects["a"][1].schema == '"int"' and "b" not in cache.subjects
    # the same id for the same schema in another subject is fine
    assert cache.apply(3, schema_key("c", 1), schema_value(sv("c", 1, 1, '"int"')))


def test_garbage_records_are_skipped_not_fatal() -> None:
    cache = InMemoryCache()
    assert not cache.apply(0, b"\xff\x00", b"{")
    assert not cache.apply(1, json.dumps({"keytype": "NOOP", "magic": 0}).encode(), None)
    assert not cache.apply(2, schema_key("s", 1), b'{"id": "x"}')
    assert cache.subjects == {} and cache.offset == 3

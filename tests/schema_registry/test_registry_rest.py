"""The registry's REST API against a real 1-broker kafkalike cluster: Confluent's answers and
error shapes ({"error_code", "message"}), deletes, configs, compatibility tests, and ids kept
across a restart (the state lives in the _schemas topic only)."""

from __future__ import annotations

import json
from pathlib import Path


from kafkalike.cluster.local_cluster import LocalCluster
from tests.schema_registry.registry_helpers import http, running_registry

V1 = {"type": "record", "name": "Order", "namespace": "shop",
      "fields": [{"name": "order_id", "type": "long"}, {"name": "status", "type": "string"}]}
V2_DEFAULT = {**V1, "fields": V1["fields"] + [{"name": "user_id", "type": "long", "default": 0}]}
V2_NO_DEFAULT = {**V1, "fields": V1["fields"] + [{"name": "user_id", "type": "long"}]}


def body(schema: object, **extra: object) -> dict:
    return {"schema": json.dumps(schema), **extra}


def test_register_fetch_and_lookup_answer_confluents_shapes(registry: str) -> None:
    s = "rest-shapes-value"
    assert http("POST", f"{registry}/subjects/{s}/versions", body(V1)) == (200, {"id": 1})
    # the same schema again (other whitespace): same id, no new version
    assert http("POST", f"{registry}/subjects/{s}/versions", {"schema": json.dumps(V1, indent=2)}) == (200, {"id": 1})
    status, v = http("GET", f"{registry}/subjects/{s}/versions/latest")
    assert status == 200 and (v["subject"], v["version"], v["id"]) == (s, 1, 1)
    assert json.loads(v["schema"]) == V1 and "schemaType" not in v
    assert http("GET", f"{registry}/subjects/{s}/versions/1/schema") == (200, V1)
    assert http("GET", f"{registry}/schemas/ids/1") == (200, {"schema": v["schema"]})
    assert http("GET", f"{registry}/schemas/ids/1/versions") == (200, [{"subject": s, "version": 1}])
    assert http("POST", f"{registry}/subjects/{s}", body(V1))[1]["version"] == 1
    assert s in http("GET", f"{registry}/subjects")[1]
    assert http("GET", f"{registry}/schemas/types") == (200, ["JSON", "PROTOBUF", "AVRO"])
    # the same schema in another subject shares the id
    assert http("POST", f"{registry}/subjects/rest-shapes-other/versions", body(V1)) == (200, {"id": 1})


def test_not_found_errors_carry_confluents_codes(registry: str) -> None:
    assert http("GET", f"{registry}/subjects/nope/versions") == (
        404, {"error_code": 40401, "message": "Subject 'nope' not found."})
    http("POST", f"{registry}/subjects/nf-value/versions", body("string"))
    assert http("GET", f"{registry}/subjects/nf-value/versions/7") == (
        404, {"error_code": 40402, "message": "Version 7 not found."})
    assert http("GET", f"{registry}/schemas/ids/9999") == (
        404, {"error_code": 40403, "message": "Schema 9999 not found"})
    assert http("POST", f"{registry}/subjects/nf-value", body("long"))[1]["error_code"] == 40403
    status, err = http("GET", f"{registry}/subjects/nf-value/versions/zero")
    assert (status, err["error_code"]) == (422, 42202)


def test_invalid_schema_is_42201_and_bad_json_body_400(registry: str) -> None:
    for bad in ('{"type": "record", "name": "X"}', '{"type": "strng"}', "not json",
                '{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":"x"}]}'):
        status, err = http("POST", f"{registry}/subjects/invalid-value/versions", {"schema": bad})
        assert (status, err["error_code"]) == (422, 42201), bad
        assert err["message"]
    status, err = http("POST", f"{registry}/subjects/invalid-value/versions", raw=b"{not json")
    assert (status, err["error_code"]) == (400, 400)
    assert http("GET", f"{registry}/subjects/invalid-value/versions")[1]["error_code"] == 40401


def test_incompatible_change_is_409_and_compatible_one_registers(registry: str) -> None:
    s = "compat-value"
    assert http("POST", f"{registry}/subjects/{s}/versions", body(V1))[0] == 200
    status, err = http("POST", f"{registry}/subjects/{s}/versions", body(V2_NO_DEFAULT))
    assert (status, err["error_code"]) == (409, 409)
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in err["message"] and "user_id" in err["message"]
    assert http("POST", f"{registry}/compatibility/subjects/{s}/versions/latest", body(V2_NO_DEFAULT)) == (
        200, {"is_compatible": False})
    verbose = http("POST", f"{registry}/compatibility/subjects/{s}/versions/latest?verbose=true", body(V2_NO_DEFAULT))
    assert verbose[1]["messages"]
    assert http("POST", f"{registry}/compatibility/subjects/{s}/versions/latest", body(V2_DEFAULT)) == (
        200, {"is_compatible": True})
    status, reg = http("POST", f"{registry}/subjects/{s}/versions", body(V2_DEFAULT))
    assert status == 200 and reg["id"] != http("GET", f"{registry}/subjects/{s}/versions/1")[1]["id"]
    assert http("GET", f"{registry}/subjects/{s}/versions") == (200, [1, 2])
    # NONE lets anything through
    assert http("PUT", f"{registry}/config/{s}", {"compatibility": "NONE"}) == (200, {"compatibility": "NONE"})
    assert http("POST", f"{registry}/subjects/{s}/versions", body("string"))[0] == 200


def test_config_global_and_subject_levels(registry: str) -> None:
    assert http("GET", f"{registry}/config") == (200, {"compatibilityLevel": "BACKWARD"})
    http("POST", f"{registry}/subjects/cfg-value/versions", body("string"))
    assert http("GET", f"{registry}/config/cfg-value")[1]["error_code"] == 40408
    assert http("GET", f"{registry}/config/cfg-value?defaultToGlobal=true") == (200, {"compatibilityLevel": "BACKWARD"})
    assert http("PUT", f"{registry}/config/cfg-value", {"compatibility": "full_transitive"}) == (
        200, {"compatibility": "FULL_TRANSITIVE"})
    assert http("GET", f"{registry}/config/cfg-value") == (200, {"compatibilityLevel": "FULL_TRANSITIVE"})
    status, err = http("PUT", f"{registry}/config", {"compatibility": "SIDEWAYS"})
    assert (status, err["error_code"]) == (422, 42203)
    assert http("DELETE", f"{registry}/config/cfg-value") == (200, {"compatibilityLevel": "FULL_TRANSITIVE"})
    assert http("GET", f"{registry}/config/cfg-value")[1]["error_code"] == 40408


def test_soft_then_permanent_deletes(registry: str) -> None:
    s = "del-value"
    http("POST", f"{registry}/subjects/{s}/versions", body(V1))
    http("POST", f"{registry}/subjects/{s}/versions", body(V2_DEFAULT))
    assert http("DELETE", f"{registry}/subjects/{s}/versions/1?permanent=true")[1]["error_code"] == 40407
    assert http("DELETE", f"{registry}/subjects/{s}/versions/1") == (200, 1)
    assert http("DELETE", f"{registry}/subjects/{s}/versions/1")[1]["error_code"] == 40406
    assert http("GET", f"{registry}/subjects/{s}/versions") == (200, [2])
    assert http("GET", f"{registry}/subjects/{s}/versions?deleted=true") == (200, [1, 2])
    assert http("DELETE", f"{registry}/subjects/{s}?permanent=true")[1]["error_code"] == 40405
    assert http("DELETE", f"{registry}/subjects/{s}") == (200, [2])
    assert http("DELETE", f"{registry}/subjects/{s}")[1]["error_code"] == 40404
    assert s not in http("GET", f"{registry}/subjects")[1]
    assert s in http("GET", f"{registry}/subjects?deleted=true")[1]
    assert http("DELETE", f"{registry}/subjects/{s}?permanent=true") == (200, [1, 2])
    assert http("GET", f"{registry}/subjects/{s}/versions?deleted=true")[1]["error_code"] == 40401


def test_json_schema_and_protobuf_are_stored_and_served(registry: str) -> None:
    js = {"type": "object", "properties": {"order_id": {"type": "integer"}}}
    status, reg = http("POST", f"{registry}/subjects/js-value/versions", {"schema": json.dumps(js), "schemaType": "JSON"})
    assert status == 200
    got = http("GET", f"{registry}/schemas/ids/{reg['id']}")[1]
    assert got["schemaType"] == "JSON" and json.loads(got["schema"]) == js
    proto = 'syntax = "proto3";\nmessage Order { int64 order_id = 1; }\n'
    status, reg = http("POST", f"{registry}/subjects/pb-value/versions", {"schema": proto, "schemaType": "PROTOBUF"})
    assert status == 200
    assert http("GET", f"{registry}/schemas/ids/{reg['id']}")[1] == {"schemaType": "PROTOBUF", "schema": proto}
    assert http("POST", f"{registry}/subjects/pb-value/versions",
                {"schema": "message {", "schemaType": "PROTOBUF"})[1]["error_code"] == 42201


def test_a_json_schema_that_breaks_its_meta_schema_is_refused_with_42201(registry: str) -> None:
    """JSON Schema texts are checked against their draft's meta-schema (draft-07 by default):
    a misspelt type, ``required`` that is not an array, a negative ``minLength`` under an
    explicit draft-07 ``$schema`` are 422/42201, naming where; a valid one registers."""
    bad = [({"type": "strin"}, "at type"), ({"type": "object", "required": "id"}, "at required"),
           ({"$schema": "http://json-schema.org/draft-07/schema#",
             "properties": {"a": {"type": "string", "minLength": -1}}}, "at properties/a/minLength")]
    for schema, where in bad:
        status, err = http("POST", f"{registry}/subjects/js-bad-value/versions",
                           {"schema": json.dumps(schema), "schemaType": "JSON"})
        assert status == 422 and err["error_code"] == 42201 and where in err["message"], (schema, err)
    assert http("GET", f"{registry}/subjects/js-bad-value/versions")[1]["error_code"] == 40401
    good = {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}
    status, reg = http("POST", f"{registry}/subjects/js-bad-value/versions",
                       {"schema": json.dumps(good), "schemaType": "JSON"})
    assert status == 200 and isinstance(reg["id"], int)


def test_restart_keeps_ids_and_a_second_instance_agrees(registry_cluster: LocalCluster, tmp_path: Path) -> None:
    with running_registry(registry_cluster.bootstrap_servers, tmp_path / "a.log") as a:
        first = http("POST", f"{a}/subjects/restart-value/versions", body(V1))[1]["id"]
        second = http("POST", f"{a}/subjects/restart-value/versions", body(V2_DEFAULT))[1]["id"]
        with running_registry(registry_cluster.bootstrap_servers, tmp_path / "b.log") as b:
            # a second instance reads the same topic: same answers, and its writes do not reuse ids
            assert http("GET", f"{b}/subjects/restart-value/versions") == (200, [1, 2])
            third = http("POST", f"{b}/subjects/restart-other/versions", body("bytes"))[1]["id"]
            assert third not in (first, second)
        assert http("GET", f"{a}/schemas/ids/{third}") == (200, {"schema": '"bytes"'})
    with running_registry(registry_cluster.bootstrap_servers, tmp_path / "c.log") as c:
        assert http("GET", f"{c}/subjects/restart-value/versions/1")[1]["id"] == first
        assert http("GET", f"{c}/subjects/restart-value/versions/2")[1]["id"] == second
        assert http("POST", f"{c}/subjects/restart-value/versions", body(V1)) == (200, {"id": first})


def test_the_store_is_a_compacted_topic_with_one_partition(registry_cluster: LocalCluster, registry: str) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource
    admin = AdminClient({"bootstrap.servers": registry_cluster.bootstrap_servers})
    assert len(admin.list_topics("_schemas", timeout=30).topics["_schemas"].partitions) == 1
    resource = ConfigResource("topic", "_schemas")
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    assert configs["cleanup.policy"].value == "compact"


def test_two_instances_writing_at_once_agree_on_every_id_and_version(registry_cluster: LocalCluster,
                                                                      tmp_path: Path) -> None:
    """No leader: both instances register different schemas into one subject at the same time;
    the log decides (first writer wins, the loser retries), so both end with the same versions,
    each schema has one id, and every answer given to a client is what both instances serve."""
    from concurrent.futures import ThreadPoolExecutor

    subject = "race-value"
    schemas = [{"type": "enum", "name": "E", "symbols": [f"S{i}"]} for i in range(16)]
    with running_registry(registry_cluster.bootstrap_servers, tmp_path / "a.log") as a, \
            running_registry(registry_cluster.bootstrap_servers, tmp_path / "b.log") as b:
        assert http("PUT", f"{a}/config/{subject}", {"compatibility": "NONE"})[0] == 200
        jobs = [(a if i % 2 == 0 else b, schema) for i, schema in enumerate(schemas)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda job: http("POST", f"{job[0]}/subjects/{subject}/versions", body(job[1])),
                                    jobs))
        assert all(status == 200 for status, _ in answers), answers
        ids = [answer["id"] for _, answer in answers]
        assert len(set(ids)) == len(schemas)  # one id per schema, none given twice
        for url in (a, b):
            versions = http("GET", f"{url}/subjects/{subject}/versions")[1]
            assert versions == list(range(1, len(schemas) + 1))
            for schema_id, schema in zip(ids, schemas):
                assert json.loads(http("GET", f"{url}/schemas/ids/{schema_id}")[1]["schema"]) == schema
        served = [[http("GET", f"{url}/subjects/{subject}/versions/{v}")[1]["id"] for v in range(1, 17)]
                  for url in (a, b)]
        assert served[0] == served[1] and sorted(served[0]) == sorted(ids)

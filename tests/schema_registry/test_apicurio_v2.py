"""The Apicurio Registry v2 API subset (kafkalike/schema_registry/apicurio_v2.py) over HTTP against a
real 1-broker cluster: the calls Apicurio's serdes/Connect converter 2.6.x make (createArtifact with
ifExists=RETURN_OR_UPDATE, content by globalId/contentId, metadata), on the same ids as the Confluent API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


from tests.schema_registry.registry_helpers import http

V1 = {"type": "record", "name": "Customer", "namespace": "inventory",
      "fields": [{"name": "id", "type": "int"}, {"name": "email", "type": "string"}]}
V2 = {**V1, "fields": V1["fields"] + [{"name": "name", "type": ["null", "string"], "default": None}]}
V2_BREAKING = {**V1, "fields": V1["fields"] + [{"name": "age", "type": "int"}]}


def create(base: str, artifact: str, schema: Any, if_exists: str = "RETURN_OR_UPDATE",
           artifact_type: str | None = "AVRO", group: str = "default") -> tuple[int, Any]:
    """POST /groups/{group}/artifacts as Apicurio's RegistryClientImpl.createArtifact sends it."""
    headers = {"Content-Type": "application/json", "X-Registry-ArtifactId": artifact}
    if artifact_type:
        headers["X-Registry-ArtifactType"] = artifact_type
    raw = schema if isinstance(schema, str) else json.dumps(schema)
    req = urllib.request.Request(f"{base}/apis/registry/v2/groups/{group}/artifacts?ifExists={if_exists}"
                                 f"&canonical=false", data=raw.encode(), method="POST", headers=headers)
    return _send(req)


def _send(req: urllib.request.Request) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def get_raw(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read(), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, e.read(), {k.lower(): v for k, v in e.headers.items()}


def test_create_artifact_return_or_update_registers_once_and_shares_the_confluent_id(registry: str) -> None:
    status, meta = create(registry, "dbserver1.inventory.customers-value", V1)
    assert status == 200, meta
    assert meta["groupId"] == "default" and meta["id"] == "dbserver1.inventory.customers-value"
    assert meta["version"] == "1" and meta["type"] == "AVRO" and meta["state"] == "ENABLED"
    assert meta["globalId"] == meta["contentId"]
    again_status, again = create(registry, "dbserver1.inventory.customers-value", V1)
    assert again_status == 200 and again["globalId"] == meta["globalId"] and again["version"] == "1"
    # the Confluent API sees the same subject, version and id
    status, confluent = http("GET", f"{registry}/subjects/dbserver1.inventory.customers-value/versions/1")
    assert status == 200 and confluent["id"] == meta["contentId"]
    assert json.loads(confluent["schema"]) == V1


def test_a_compatible_change_makes_version_two_and_a_breaking_one_is_a_rule_violation(registry: str) -> None:
    create(registry, "evolving-value", V1)
    status, meta = create(registry, "evolving-value", V2)
    assert status == 200 and meta["version"] == "2", meta
    status, err = create(registry, "evolving-value", V2_BREAKING)
    assert status == 409 and err["name"] == "RuleViolationException" and err["error_code"] == 409, err
    status, listed = _send(urllib.request.Request(f"{registry}/apis/registry/v2/groups/default/artifacts/"
                                                  f"evolving-value/versions"))
    assert status == 200 and [v["version"] for v in listed["versions"]] == ["1", "2"]


def test_content_by_global_id_and_content_id_is_the_schema_a_consumer_decodes_with(registry: str) -> None:
    _, meta = create(registry, "by-id-value", V2)
    for kind in ("globalIds", "contentIds"):
        status, raw, headers = get_raw(f"{registry}/apis/registry/v2/ids/{kind}/{meta['globalId']}")
        assert status == 200 and json.loads(raw) == V2
        assert headers.get("x-registry-artifacttype") == "AVRO"
        status, refs = _send(urllib.request.Request(
            f"{registry}/apis/registry/v2/ids/{kind}/{meta['globalId']}/references"))
        assert status == 200 and refs == []
    status, raw, _ = get_raw(f"{registry}/apis/registry/v2/ids/globalIds/987654")
    assert status == 404 and json.loads(raw)["name"] == "ContentNotFoundException"


def test_metadata_routes_answer_latest_version_and_lookup_by_content(registry: str) -> None:
    create(registry, "meta-value", V1)
    _, v2 = create(registry, "meta-value", V2)
    base = f"{registry}/apis/registry/v2/groups/default/artifacts/meta-value"
    status, latest = _send(urllib.request.Request(f"{base}/meta"))
    assert status == 200 and latest["version"] == "2" and latest["globalId"] == v2["globalId"]
    status, one = _send(urllib.request.Request(f"{base}/versions/1/meta"))
    assert status == 200 and one["version"] == "1"
    status, raw, _ = get_raw(base)
    assert status == 200 and json.loads(raw) == V2
    status, found = _send(urllib.request.Request(f"{base}/meta?canonical=true", data=json.dumps(V1).encode(),
                                                 method="POST", headers={"Content-Type": "application/json"}))
    assert status == 200 and found["version"] == "1", found


def test_if_exists_fail_and_return_and_errors_use_apicurios_error_shape(registry: str) -> None:
    create(registry, "fixed-value", V1)
    status, err = create(registry, "fixed-value", V2, if_exists="FAIL")
    assert status == 409 and err["name"] == "ArtifactAlreadyExistsException"
    status, meta = create(registry, "fixed-value", V2, if_exists="RETURN")
    assert status == 200 and meta["version"] == "1"
    status, err = create(registry, "broken-value", "{not json", if_exists="RETURN_OR_UPDATE")
    assert status == 400 and err["name"] == "InvalidArtifactException", err
    status, err = _send(urllib.request.Request(
        f"{registry}/apis/registry/v2/groups/default/artifacts/no-such-artifact/meta"))
    assert status == 404 and err["name"] == "ArtifactNotFoundException"
    status, err = create(registry, "x", V1, artifact_type="WSDL")
    assert status == 400 and err["name"] == "InvalidArtifactTypeException"


def test_another_group_maps_to_a_prefixed_subject(registry: str) -> None:
    status, meta = create(registry, "orders", V1, group="shop")
    assert status == 200 and meta["groupId"] == "shop"
    status, subjects = http("GET", f"{registry}/subjects")
    assert "shop:orders" in subjects

"""The subset of Apicurio Registry's core REST API v2 that Apicurio's Kafka serdes and Connect
converter 2.6.x call (io.apicurio:apicurio-registry-utils-converter / -serdes-avro-serde, through
``RegistryClientImpl`` and ``DefaultSchemaResolver``), served at ``/apis/registry/v2`` on the same
``KafkaSchemaRegistry`` (same ``_schemas`` store, same ids) as Confluent's API.

Mapping (Apicurio Registry "Core Registry API (v2)" -> Confluent's model)::

    group "default", artifact A          subject A        (another group G: subject "G:A")
    artifact version                     subject version  (a string, "1", "2", ...)
    contentId                            schema id
    globalId                             schema id as well (one id space; see docs/tutorials/connect-avro.md)
    type AVRO | JSON | PROTOBUF          schemaType AVRO | JSON | PROTOBUF

Routes (answers are application/json; errors ``{"error_code", "message", "name"}``)::

    POST /groups/{g}/artifacts[?ifExists=FAIL|UPDATE|RETURN|RETURN_OR_UPDATE]
         headers X-Registry-ArtifactId (required here), X-Registry-ArtifactType (default AVRO),
         body = the schema text                                     -> ArtifactMetaData
    GET  /groups/{g}/artifacts/{a}                                  latest content
    GET  /groups/{g}/artifacts/{a}/meta                             ArtifactMetaData of the latest
    POST /groups/{g}/artifacts/{a}/meta   body = a schema           VersionMetaData of that content
    GET  /groups/{g}/artifacts/{a}/versions                         {"count", "versions": [...]}
    GET  /groups/{g}/artifacts/{a}/versions/{v}                     content of version v
    GET  /groups/{g}/artifacts/{a}/versions/{v}/meta                VersionMetaData
    GET  /groups/{g}/artifacts/{a}/versions/{v}/references          []
    GET  /ids/globalIds/{id} | /ids/contentIds/{id}                 content (X-Registry-ArtifactType header)
    GET  /ids/globalIds/{id}/references | /ids/contentIds/{id}/references   []
    GET  /system/info                                               {"name", "version", ...}

``ifExists``: FAIL answers 409 ArtifactAlreadyExistsException when the artifact has a live
version; RETURN answers the latest version's metadata when there is one (else creates);
RETURN_OR_UPDATE (the serdes' default) and UPDATE both register as Confluent's POST
/subjects/{s}/versions does: the same content answers its existing version, new content becomes
a new version if the subject's compatibility level allows (else 409 RuleViolationException).
Unlike Apicurio, UPDATE with content already in the artifact does not make a duplicate version.
References, labels, properties, rules, states other than ENABLED and timestamps are not kept.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kafkalike.schema_registry import errors
from kafkalike.schema_registry.in_memory_cache import SchemaVersion
from kafkalike.schema_registry.kafka_schema_registry import KafkaSchemaRegistry

log = structlog.get_logger(__name__)

PREFIX = "/apis/registry/v2"
DEFAULT_GROUP = "default"
IF_EXISTS = ("FAIL", "UPDATE", "RETURN", "RETURN_OR_UPDATE")
ARTIFACT_TYPES = ("AVRO", "JSON", "PROTOBUF")

# Confluent error code -> (HTTP status, Apicurio exception name)
_ERRORS: dict[int, tuple[int, str]] = {
    errors.SUBJECT_NOT_FOUND: (404, "ArtifactNotFoundException"),
    errors.VERSION_NOT_FOUND: (404, "VersionNotFoundException"),
    errors.SCHEMA_NOT_FOUND: (404, "ContentNotFoundException"),
    errors.INCOMPATIBLE_SCHEMA: (409, "RuleViolationException"),
    errors.INVALID_SCHEMA: (400, "InvalidArtifactException"),
    errors.INVALID_VERSION: (400, "BadRequestException"),
}


class ApicurioError(Exception):
    """An error answered as Apicurio's Error JSON with ``http_status``."""

    def __init__(self, http_status: int, name: str, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.name = name
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error_code": self.http_status, "message": self.message, "name": self.name}


def subject_for(group: str, artifact_id: str) -> str:
    """The Confluent subject holding artifact ``artifact_id`` of ``group``."""
    return artifact_id if group == DEFAULT_GROUP else f"{group}:{artifact_id}"


def _version_metadata(group: str, artifact_id: str, sv: SchemaVersion) -> dict[str, Any]:
    """VersionMetaData / ArtifactMetaData JSON (v2 beans) for one subject version."""
    return {"groupId": group, "id": artifact_id, "version": str(sv.version), "type": sv.schema_type,
            "globalId": sv.id, "contentId": sv.id, "state": "ENABLED", "createdBy": "",
            "modifiedBy": "", "labels": [], "properties": {}, "references": []}


def _content(sv: SchemaVersion) -> Response:
    return Response(sv.schema, media_type="application/json" if sv.schema_type != "PROTOBUF" else
                    "application/x-protobuf", headers={"X-Registry-ArtifactType": sv.schema_type})


def routes(registry: KafkaSchemaRegistry) -> list[Route]:
    """The Apicurio v2 routes (see module doc) on ``registry``, paths under ``PREFIX``."""

    def route(fn: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                out = await fn(request)
                return out if isinstance(out, Response) else JSONResponse(out)
            except ApicurioError as exc:
                return JSONResponse(exc.body(), status_code=exc.http_status)
            except errors.RestError as exc:
                status, name = _ERRORS.get(exc.error_code, (exc.http_status, "RegistryException"))
                return JSONResponse({"error_code": status, "message": exc.message, "name": name},
                                    status_code=status)
            except Exception as exc:  # a bug must not take the registry down: answer 500 and log
                log.exception("apicurio_api_error", path=request.url.path)
                return JSONResponse({"error_code": 500, "message": f"Internal error: {exc}",
                                     "name": "RegistryException"}, status_code=500)
        return endpoint

    def coordinates(request: Request) -> tuple[str, str, str]:
        group = str(request.path_params["group"])
        artifact_id = str(request.path_params["artifact"])
        return group, artifact_id, subject_for(group, artifact_id)

    async def latest(group: str, artifact_id: str, subject: str) -> SchemaVersion:
        await registry.version(subject, "latest")  # 40401 when none, after catching up
        return registry._version(subject, "latest")

    async def create(request: Request) -> Any:
        group = str(request.path_params["group"])
        artifact_id = request.headers.get("X-Registry-ArtifactId")
        if not artifact_id:
            raise ApicurioError(400, "BadRequestException",
                                "X-Registry-ArtifactId is required here (kafkalike does not generate artifact ids)")
        artifact_type = request.headers.get("X-Registry-ArtifactType", "AVRO").upper()
        if artifact_type not in ARTIFACT_TYPES:
            raise ApicurioError(400, "InvalidArtifactTypeException", f"Unsupported artifact type {artifact_type}")
        if_exists = request.query_params.get("ifExists", "FAIL").upper()
        if if_exists not in IF_EXISTS:
            raise ApicurioError(400, "BadRequestException", f"Invalid ifExists {if_exists}")
        subject = subject_for(group, artifact_id)
        await registry.store.catch_up()
        live = registry.cache.live_versions(subject)
        if live and if_exists == "FAIL":
            raise ApicurioError(409, "ArtifactAlreadyExistsException",
                                f"An artifact with ID '{artifact_id}' in group '{group}' already exists.")
        if live and if_exists == "RETURN":
            return _version_metadata(group, artifact_id, live[-1])
        body = {"schema": (await request.body()).decode("utf-8", errors="replace")}
        if artifact_type != "AVRO":
            body["schemaType"] = artifact_type
        schema_id = (await registry.register(subject, body))["id"]
        for sv in reversed(registry.cache.live_versions(subject)):
            if sv.id == schema_id:
                log.info("apicurio_artifact_registered", group=group, artifact=artifact_id, version=sv.version,
                         id=schema_id)
                return _version_metadata(group, artifact_id, sv)
        raise errors.store_error(f"Registered id {schema_id} for {subject} but cannot find its version")

    async def artifact_latest(request: Request) -> Any:
        return _content(await latest(*coordinates(request)))

    async def artifact_meta(request: Request) -> Any:
        group, artifact_id, subject = coordinates(request)
        return _version_metadata(group, artifact_id, await latest(group, artifact_id, subject))

    async def meta_by_content(request: Request) -> Any:
        group, artifact_id, subject = coordinates(request)
        schema_type = registry._versions(subject)[-1].schema_type if subject in registry.cache.subjects else "AVRO"
        body: dict[str, Any] = {"schema": (await request.body()).decode("utf-8", errors="replace")}
        if schema_type != "AVRO":
            body["schemaType"] = schema_type
        found = await registry.lookup(subject, body)
        return _version_metadata(group, artifact_id, registry._version(subject, str(found["version"])))

    async def versions(request: Request) -> Any:
        group, artifact_id, subject = coordinates(request)
        numbers = await registry.versions(subject)
        listed = [_version_metadata(group, artifact_id, registry._version(subject, str(n))) for n in numbers]
        return {"count": len(listed), "versions": listed}

    async def one_version(request: Request) -> SchemaVersion:
        _group, _artifact_id, subject = coordinates(request)
        raw = str(request.path_params["version"])
        await registry.version(subject, raw)
        return registry._version(subject, raw)

    async def version_content(request: Request) -> Any:
        return _content(await one_version(request))

    async def version_meta(request: Request) -> Any:
        group, artifact_id, _subject = coordinates(request)
        return _version_metadata(group, artifact_id, await one_version(request))

    async def no_references(request: Request) -> Any:
        if "id" in request.path_params:
            await by_id(request)
        else:
            await one_version(request)
        return []

    async def by_id(request: Request) -> Any:
        schema_id = int(request.path_params["id"])
        await registry.schema_by_id(schema_id)  # 40403 after catching up
        sv = registry.cache.schema_by_id(schema_id)
        assert sv is not None
        return _content(sv)

    async def system_info(request: Request) -> Any:
        return {"name": "kafkalike schema-registry (Apicurio Registry v2 API subset)",
                "description": "Confluent and Apicurio v2 REST APIs on one store", "version": "2.6.x-compatible"}

    base = PREFIX
    artifact = f"{base}/groups/{{group}}/artifacts/{{artifact}}"
    return [
        Route(f"{base}/groups/{{group}}/artifacts", route(create), methods=["POST"]),
        Route(artifact, route(artifact_latest), methods=["GET"]),
        Route(f"{artifact}/meta", route(artifact_meta), methods=["GET"]),
        Route(f"{artifact}/meta", route(meta_by_content), methods=["POST"]),
        Route(f"{artifact}/versions", route(versions), methods=["GET"]),
        Route(f"{artifact}/versions/{{version}}", route(version_content), methods=["GET"]),
        Route(f"{artifact}/versions/{{version}}/meta", route(version_meta), methods=["GET"]),
        Route(f"{artifact}/versions/{{version}}/references", route(no_references), methods=["GET"]),
        Route(f"{base}/ids/globalIds/{{id:int}}", route(by_id), methods=["GET"]),
        Route(f"{base}/ids/contentIds/{{id:int}}", route(by_id), methods=["GET"]),
        Route(f"{base}/ids/contentIds/{{id:int}}/", route(by_id), methods=["GET"]),
        Route(f"{base}/ids/globalIds/{{id:int}}/references", route(no_references), methods=["GET"]),
        Route(f"{base}/ids/contentIds/{{id:int}}/references", route(no_references), methods=["GET"]),
        Route(f"{base}/system/info", route(system_info), methods=["GET"]),
    ]


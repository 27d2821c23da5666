"""The registry's starlette ASGI app (``make_app``): Confluent Schema Registry's REST API.

Routes (Confluent's "Schema Registry API Reference"; answers are application/vnd.schemaregistry.v1+json)::

    GET    /                                             {}
    GET    /subjects[?deleted=true]                      ["orders-value", ...]
    POST   /subjects/{s}/versions                        {"schema", "schemaType"?, "references"?} -> {"id": N}
    GET    /subjects/{s}/versions[?deleted=true]         [1, 2]
    GET    /subjects/{s}/versions/{v|latest}             {"subject", "version", "id", "schema", ...} [?format=serialized]
    GET    /subjects/{s}/versions/{v|latest}/schema      the schema itself
    DELETE /subjects/{s}/versions/{v}[?permanent=true]   the version number
    POST   /subjects/{s}[?deleted=true]                  lookup -> {"subject", "version", "id", "schema"}
    DELETE /subjects/{s}[?permanent=true]                [1, 2]
    GET    /schemas/ids/{id}                             {"schema", "schemaType"?} [?format=serialized: Protobuf
                                                         as a base64 FileDescriptorProto]
    GET    /schemas/ids/{id}/schema                      the schema itself
    GET    /schemas/ids/{id}/subjects | /versions        subjects / [{"subject", "version"}] using it
    GET    /schemas/types                                ["JSON", "PROTOBUF", "AVRO"]
    GET    /config                                       {"compatibilityLevel": "BACKWARD"}
    PUT    /config                                       {"compatibility": "FULL"} -> the same
    GET    /config/{s}[?defaultToGlobal=true]            40408 when the subject has no level of its own
    PUT    /config/{s} | DELETE /config/{s}
    POST   /compatibility/subjects/{s}/versions[/{v}][?verbose=true]   {"is_compatible": bool}
    GET    /mode                                         {"mode": "READWRITE"}

Apicurio Registry's v2 API subset that its serdes/Connect converter use is served under
``/apis/registry/v2`` on the same registry (apicurio_v2.py).

Errors are ``{"error_code": N, "message": "..."}`` with the HTTP status of the code (see
errors.py); a body that is not JSON is 400/400 and an unknown route 404/404, as Confluent's
rest-utils answer; an unexpected exception is 500/50001 with a log line.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kafkalike.schema_registry import apicurio_v2, errors
from kafkalike.schema_registry.kafka_schema_registry import KafkaSchemaRegistry

log = structlog.get_logger(__name__)

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"


class _BadBody(Exception):
    pass


def _json(value: Any, status: int = 200) -> Response:
    return JSONResponse(value, status_code=status, media_type=MEDIA_TYPE)


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except ValueError as exc:
        raise _BadBody(str(exc)) from None


def make_app(registry: KafkaSchemaRegistry) -> Starlette:
    """The ASGI app serving ``registry`` (see module doc)."""

    def route(fn: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return _json(await fn(request))
            except errors.RestError as exc:
                return _json(exc.body(), exc.http_status)
            except _BadBody as exc:
                return _json({"error_code": 400, "message": f"Unrecognized JSON body: {exc}"}, 400)
            except Exception as exc:  # a bug must not take the registry down: answer 500 and log
                log.exception("schema_registry_error", path=request.url.path)
                return _json({"error_code": errors.STORE_ERROR, "message": f"Internal error: {exc}"}, 500)
        return endpoint

    def subject(request: Request) -> str:
        return str(request.path_params["subject"])

    async def root(request: Request) -> Any:
        return {}

    async def subjects(request: Request) -> Any:
        return await registry.subjects(deleted=_flag(request, "deleted"))

    async def register(request: Request) -> Any:
        return await registry.register(subject(request), await _body(request))

    async def versions(request: Request) -> Any:
        return await registry.versions(subject(request), deleted=_flag(request, "deleted"))

    async def version(request: Request) -> Any:
        return await registry.version(subject(request), request.path_params["version"],
                                      deleted=_flag(request, "deleted"), fmt=request.query_params.get("format"))

    async def version_schema(request: Request) -> Any:
        text = (await version(request))["schema"]
        try:
            return json.loads(text)
        except ValueError:  # Protobuf text
            return text

    async def delete_version(request: Request) -> Any:
        return await registry.delete_version(subject(request), request.path_params["version"],
                                             permanent=_flag(request, "permanent"))

    async def lookup(request: Request) -> Any:
        return await registry.lookup(subject(request), await _body(request), deleted=_flag(request, "deleted"))

    async def delete_subject(request: Request) -> Any:
        return await registry.delete_subject(subject(request), permanent=_flag(request, "permanent"))

    async def by_id(request: Request) -> Any:
        return await registry.schema_by_id(request.path_params["id"], fmt=request.query_params.get("format"))

    async def by_id_schema(request: Request) -> Any:
        text = (await by_id(request))["schema"]
        try:
            return json.loads(text)
        except ValueError:  # Protobuf text
            return text

    async def id_subjects(request: Request) -> Any:
        return sorted({v.subject for v in await registry.id_usage(request.path_params["id"])})

    async def id_versions(request: Request) -> Any:
        return [{"subject": v.subject, "version": v.version} for v in await registry.id_usage(request.path_params["id"])]

    async def types(request: Request) -> Any:
        return registry.schema_types()

    async def get_config(request: Request) -> Any:
        return await registry.get_config(request.path_params.get("subject"),
                                         default_to_global=_flag(request, "defaultToGlobal"))

    async def put_config(request: Request) -> Any:
        return await registry.set_config(request.path_params.get("subject"), await _body(request))

    async def delete_config(request: Request) -> Any:
        return await registry.delete_config(subject(request))

    async def compat(request: Request) -> Any:
        return await registry.test_compatibility(subject(request), request.path_params.get("version"),
                                                 await _body(request), verbose=_flag(request, "verbose"))

    async def mode(request: Request) -> Any:
        return {"mode": "READWRITE"}

    routes = [
        Route("/", route(root), methods=["GET"]),
        Route("/subjects", route(subjects), methods=["GET"]),
        Route("/subjects/{subject}/versions", route(register), methods=["POST"]),
        Route("/subjects/{subject}/versions", route(versions), methods=["GET"]),
        Route("/subjects/{subject}/versions/{version}", route(version), methods=["GET"]),
        Route("/subjects/{subject}/versions/{version}", route(delete_version), methods=["DELETE"]),
        Route("/subjects/{subject}/versions/{version}/schema", route(version_schema), methods=["GET"]),
        Route("/subjects/{subject}", route(lookup), methods=["POST"]),
        Route("/subjects/{subject}", route(delete_subject), methods=["DELETE"]),
        Route("/schemas/types", route(types), methods=["GET"]),
        Route("/schemas/ids/{id:int}", route(by_id), methods=["GET"]),
        Route("/schemas/ids/{id:int}/schema", route(by_id_schema), methods=["GET"]),
        Route("/schemas/ids/{id:int}/subjects", route(id_subjects), methods=["GET"]),
        Route("/schemas/ids/{id:int}/versions", route(id_versions), methods=["GET"]),
        Route("/config", route(get_config), methods=["GET"]),
        Route("/config", route(put_config), methods=["PUT"]),
        Route("/config/{subject}", route(get_config), methods=["GET"]),
        Route("/config/{subject}", route(put_config), methods=["PUT"]),
        Route("/config/{subject}", route(delete_config), methods=["DELETE"]),
        Route("/compatibility/subjects/{subject}/versions", route(compat), methods=["POST"]),
        Route("/compatibility/subjects/{subject}/versions/{version}", route(compat), methods=["POST"]),
        Route("/mode", route(mode), methods=["GET"]),
        *apicurio_v2.routes(registry),  # Apicurio Registry v2 subset under /apis/registry/v2
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        return _json({"error_code": status, "message": f"HTTP {status} {getattr(exc, 'detail', 'Not Found')}"}, status)

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})

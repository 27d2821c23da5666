"""``KafkaSchemaRegistry``: the registry's operations (Confluent's ``KafkaSchemaRegistry``),
on an ``InMemoryCache`` kept by a ``KafkaStore``. Every method answers what the REST API
returns (plain JSON values) or raises ``RestError`` with Confluent's code.

Reads use the local cache; when what is asked is missing (404) the store is read to its end
first and the question asked again, so an id registered through another instance a moment ago
is found. Writes take this instance's write lock, read the store to its end, decide, append one
record per change and read it back: if another instance's record got into the log first (the
cache refused ours, see in_memory_cache), the decision is made again on the new state (up to
``WRITE_ATTEMPTS`` times) after re-appending the winner's record, so that compaction keeps the
winner for that key.
"""

from __future__ import annotations

import base64
from typing import Any, Callable, TypeVar

import attrs
import structlog
import trio

from kafkalike.schema_registry import compatibility, errors
from kafkalike.schema_registry.in_memory_cache import (InMemoryCache, SchemaVersion, config_key,
                                                      config_value, schema_key, schema_value)
from kafkalike.schema_registry.kafka_store import KafkaStore
from kafkalike.schema_registry.schemas import PROTOBUF, SCHEMA_TYPES, ParsedSchema, parse_references, parse_schema

log = structlog.get_logger(__name__)

T = TypeVar("T")
WRITE_ATTEMPTS = 5
MAX_VERSION = 2**31 - 1


def parse_version(raw: str) -> int | None:
    """A version path segment: an int in [1, 2^31-1], or None for "latest" / -1.
    RestError 42202 for anything else (Confluent's VersionId)."""
    if raw == "latest" or raw == "-1":
        return None
    try:
        version = int(raw)
    except ValueError:
        raise errors.invalid_version(raw) from None
    if not 1 <= version <= MAX_VERSION:
        raise errors.invalid_version(raw)
    return version


class KafkaSchemaRegistry:
    """The operations behind each REST route (see module doc). ``store`` must be running."""

    def __init__(self, store: KafkaStore) -> None:
        self.store = store
        self.cache: InMemoryCache = store.cache
        self._write_lock = trio.Lock()

    async def _fresh(self, question: Callable[[], T]) -> T:
        try:
            return question()
        except errors.RestError as exc:
            if exc.http_status != 404:
                raise
        await self.store.catch_up()
        return question()

    # ------------------------------------------------------------------ config

    def global_level(self) -> str:
        return self.cache.configs.get(None, compatibility.DEFAULT_LEVEL)

    def level_for(self, subject: str) -> str:
        """The subject's level, else the global one, else BACKWARD."""
        return self.cache.configs.get(subject) or self.global_level()

    async def get_config(self, subject: str | None, default_to_global: bool = False) -> dict[str, Any]:
        """GET /config[/{subject}]: {"compatibilityLevel": L}. 40408 for a subject without
        its own level unless ``default_to_global``."""
        if subject is None:
            return {"compatibilityLevel": self.global_level()}
        level = self.cache.configs.get(subject)
        if level is None:
            if not default_to_global:
                raise errors.subject_compatibility_not_configured(subject)
            level = self.global_level()
        return {"compatibilityLevel": level}

    async def set_config(self, subject: str | None, body: Any) -> dict[str, Any]:
        """PUT /config[/{subject}] with {"compatibility": L}: {"compatibility": L}; 42203."""
        level = compatibility.normalize_level(body.get("compatibility") if isinstance(body, dict) else None)
        if level is None:
            raise errors.invalid_compatibility_level()
        async with self._write_lock:
            await self.store.catch_up()
            await self.store.append(config_key(subject), config_value(subject, level))
        return {"compatibility": level}

    async def delete_config(self, subject: str) -> dict[str, Any]:
        """DELETE /config/{subject}: the level it had; 40401 for an unknown subject."""
        async with self._write_lock:
            await self.store.catch_up()
            if subject not in self.cache.subjects:
                raise errors.subject_not_found(subject)
            previous = self.level_for(subject)
            await self.store.append(config_key(subject), None)
        return {"compatibilityLevel": previous}

    # ------------------------------------------------------------------ reads

    async def subjects(self, deleted: bool = False) -> list[str]:
        """GET /subjects: subjects with a live version (all with ``deleted``)."""
        return sorted(s for s, versions in self.cache.subjects.items()
                      if deleted or any(not v.deleted for v in versions.values()))

    def _versions(self, subject: str, deleted: bool = False) -> list[SchemaVersion]:
        versions = self.cache.subjects.get(subject, {})
        chosen = sorted((v for v in versions.values() if deleted or not v.deleted), key=lambda v: v.version)
        if not chosen:
            raise errors.subject_not_found(subject)
        return chosen

    async def versions(self, subject: str, deleted: bool = False) -> list[int]:
        """GET /subjects/{s}/versions: version numbers; 40401."""
        return [v.version for v in await self._fresh(lambda: self._versions(subject, deleted))]

    def _version(self, subject: str, raw: str, deleted: bool = False) -> SchemaVersion:
        version = parse_version(raw)
        versions = self._versions(subject, deleted=True)
        if version is None:
            live = [v for v in versions if deleted or not v.deleted]
            if not live:
                raise errors.subject_not_found(subject)
            return live[-1]
        for v in versions:
            if v.version == version and (deleted or not v.deleted):
                return v
        raise errors.version_not_found(version)

    async def version(self, subject: str, raw: str, deleted: bool = False, fmt: str | None = None) -> dict[str, Any]:
        """GET /subjects/{s}/versions/{v}[?format=serialized]; 40401, 40402, 42202."""
        sv = await self._fresh(lambda: self._version(subject, raw, deleted))
        return self._formatted(sv, sv.to_json(), fmt)

    def _formatted(self, sv: SchemaVersion, out: dict[str, Any], fmt: str | None) -> dict[str, Any]:
        """``out`` with its schema in the ``format`` asked: "serialized" gives a PROTOBUF schema
        as its base64 FileDescriptorProto (Confluent's format=serialized, what confluent-kafka's
        ProtobufDeserializer asks for); other formats and types are served as stored."""
        if fmt == "serialized" and sv.schema_type == PROTOBUF:
            out["schema"] = base64.b64encode(self.cache.parsed(sv).parsed.canonical).decode("ascii")
        return out

    def _by_id(self, schema_id: int) -> SchemaVersion:
        sv = self.cache.schema_by_id(schema_id)
        if sv is None:
            raise errors.schema_not_found(schema_id)
        return sv

    async def schema_by_id(self, schema_id: int, fmt: str | None = None) -> dict[str, Any]:
        """GET /schemas/ids/{id}[?format=serialized]: {"schema", "schemaType"?, "references"?}; 40403."""
        sv = await self._fresh(lambda: self._by_id(schema_id))
        out = sv.to_json()
        return self._formatted(sv, {k: out[k] for k in ("schemaType", "references", "schema") if k in out}, fmt)

    async def id_usage(self, schema_id: int) -> list[SchemaVersion]:
        """The live subject versions using ``schema_id``; 40403 when none."""
        await self._fresh(lambda: self._by_id(schema_id))
        return self.cache.versions_of_id(schema_id)

    async def lookup(self, subject: str, body: Any, deleted: bool = False) -> dict[str, Any]:
        """POST /subjects/{s}: the version of ``subject`` holding this schema; 40401, 40403, 42201."""
        parsed = await self._parse_body(body)

        def find() -> dict[str, Any]:
            for v in reversed(self._versions(subject, deleted)):
                if self._same(v, parsed):
                    return v.to_json()
            raise errors.schema_not_found()
        return await self._fresh(find)

    def _same(self, v: SchemaVersion, parsed: ParsedSchema) -> bool:
        if v.schema_type != parsed.schema_type or v.references != parsed.references:
            return False
        try:
            return self.cache.parsed(v).identity == parsed.identity
        except errors.RestError:
            return False

    async def _parse_body(self, body: Any) -> ParsedSchema:
        """The request's schema parsed; its references (PROTOBUF imports) resolved from the
        store, read to its end first. 42201 when invalid or a reference does not exist."""
        if not isinstance(body, dict):
            raise errors.invalid_schema("The request body must be a JSON object with a \"schema\" field")
        references = parse_references(body.get("references"))
        schema_type = str(body.get("schemaType") or "AVRO").upper()
        if references and schema_type == PROTOBUF:
            await self.store.catch_up()
        dependencies = self.cache.dependencies(schema_type, references)
        if schema_type == PROTOBUF:  # protoc takes milliseconds to a second: off the event loop
            return await trio.to_thread.run_sync(parse_schema, body.get("schema"), body.get("schemaType"),
                                                 references, dependencies)
        return parse_schema(body.get("schema"), body.get("schemaType"), references, dependencies)

    @staticmethod
    def schema_types() -> list[str]:
        return list(SCHEMA_TYPES)

    # ------------------------------------------------------------------ compatibility

    def _incompatibilities(self, subject: str, parsed: ParsedSchema,
                           against: list[SchemaVersion] | None = None) -> list[compatibility.Incompatibility]:
        level = self.level_for(subject)
        previous = against if against is not None else self.cache.live_versions(subject)
        pairs = [(v.version, self.cache.parsed(v)) for v in previous]
        if against is not None and level.endswith("_TRANSITIVE"):
            level = level.removesuffix("_TRANSITIVE")  # one version asked: check against it alone
        return compatibility.check(parsed, pairs, level)

    async def test_compatibility(self, subject: str, raw_version: str | None, body: Any,
                                 verbose: bool = False) -> dict[str, Any]:
        """POST /compatibility/subjects/{s}/versions[/{v}]: {"is_compatible": bool}
        (+ "messages" when ``verbose``); 40401, 40402, 42201, 42202."""
        parsed = await self._parse_body(body)
        await self.store.catch_up()
        against = None if raw_version is None else [self._version(subject, raw_version)]
        if raw_version is None:
            self._versions(subject)
        found = self._incompatibilities(subject, parsed, against)
        out: dict[str, Any] = {"is_compatible": not found}
        if verbose:
            out["messages"] = [f.describe() for f in found]
        return out

    # ------------------------------------------------------------------ writes

    async def register(self, subject: str, body: Any) -> dict[str, Any]:
        """POST /subjects/{s}/versions: {"id": N}. The same schema already live in the subject
        answers its id; an equal schema in another subject shares its id. 409 when
        incompatible with the subject's level, 42201 invalid, 50001/50002 store errors."""
        parsed = await self._parse_body(body)
        async with self._write_lock:
            for _attempt in range(WRITE_ATTEMPTS):
                await self.store.catch_up()
                live = self.cache.live_versions(subject)
                for v in reversed(live):
                    if self._same(v, parsed):
                        return {"id": v.id}
                found = self._incompatibilities(subject, parsed)
                if found:
                    raise errors.incompatible_schema(
                        f"Schema being registered is incompatible with an earlier schema for subject "
                        f"\"{subject}\", details: [{', '.join(f.describe() for f in found)}]")
                schema_id = self.cache.find_id(parsed) or self.cache.next_id()
                version = 1 + max(self.cache.subjects.get(subject, {}), default=0)
                record = SchemaVersion(subject, version, schema_id, parsed.schema, parsed.schema_type,
                                       parsed.references)
                await self.store.append(schema_key(subject, version), schema_value(record))
                if self.cache.subjects.get(subject, {}).get(version) == record:
                    log.info("schema_registered", subject=subject, version=version, id=schema_id)
                    return {"id": schema_id}
                await self._reassert(subject, version)
            raise errors.store_error(f"Could not register a schema for subject {subject}: the store kept changing")

    async def _reassert(self, subject: str, version: int) -> None:
        """After losing a race for (subject, version), write the winner's value again so that
        it is the last value of that key (what compaction keeps)."""
        winner = self.cache.subjects.get(subject, {}).get(version)
        if winner is not None:
            await self.store.append(schema_key(subject, version), schema_value(winner))

    async def delete_version(self, subject: str, raw: str, permanent: bool = False) -> int:
        """DELETE /subjects/{s}/versions/{v}[?permanent=true]: the version deleted. A permanent
        delete needs a soft delete first (40407); soft-deleting twice is 40406."""
        async with self._write_lock:
            await self.store.catch_up()
            target = self._version(subject, raw, deleted=permanent or parse_version(raw) is not None)
            if permanent:
                if not target.deleted:
                    raise errors.version_not_soft_deleted(subject, target.version)
                await self.store.append(schema_key(subject, target.version), None)
            else:
                if target.deleted:
                    raise errors.version_soft_deleted(subject, target.version)
                await self.store.append(schema_key(subject, target.version),
                                        schema_value(attrs.evolve(target, deleted=True)))
            return target.version

    async def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        """DELETE /subjects/{s}[?permanent=true]: the versions deleted. Soft-deleting a
        subject with no live version is 40404; a permanent delete of a subject with live
        versions is 40405."""
        async with self._write_lock:
            await self.store.catch_up()
            versions = self._versions(subject, deleted=True)
            live = [v for v in versions if not v.deleted]
            if permanent:
                if live:
                    raise errors.subject_not_soft_deleted(subject)
                for v in versions:
                    await self.store.append(schema_key(subject, v.version), None)
                if subject in self.cache.configs:
                    await self.store.append(config_key(subject), None)
                return [v.version for v in versions]
            if not live:
                raise errors.subject_soft_deleted(subject)
            for v in live:
                await self.store.append(schema_key(subject, v.version), schema_value(attrs.evolve(v, deleted=True)))
            return [v.version for v in live]


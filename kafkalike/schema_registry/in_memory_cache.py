"""The registry's state, rebuilt from the ``_schemas`` topic (sans-IO: records in, state out).

Record formats are Confluent's (``storage/SchemaKey``, ``SchemaValue``, ``ConfigKey``,
``ConfigValue``, ``DeleteSubjectKey``), JSON in both key and value:

    key   {"keytype":"SCHEMA","subject":"orders-value","version":1,"magic":1}
    value {"subject":"orders-value","version":1,"id":1,"schema":"...","deleted":false}
          (+ "schemaType" when not AVRO, + "references" when any; null value: permanently deleted)
    key   {"keytype":"CONFIG","magic":0}   or   {"keytype":"CONFIG","subject":"s","magic":0}
    value {"compatibilityLevel":"FULL"}     (null value: subject-level config removed)
    key   {"keytype":"DELETE_SUBJECT","subject":"s","magic":0}
    value {"subject":"s","version":3}       (versions up to 3 soft-deleted; read, never written)

Other key types (NOOP, MODE, CONTEXT, CLEAR_SUBJECT, ...) are skipped.

Several registry instances write to the same topic without a leader; the log orders their
writes and every instance applies the same first-writer-wins rule, so all agree: a SCHEMA
record whose (subject, version) already holds another id, or whose id already names another
schema, is ignored (``apply`` returns False) and its writer retries (see KafkaSchemaRegistry).
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import structlog

from kafkalike.schema_registry import errors
from kafkalike.schema_registry.schemas import AVRO, PROTOBUF, ParsedSchema, parse_schema

log = structlog.get_logger(__name__)


@attrs.frozen
class SchemaVersion:
    """One version of a subject: ``id`` (global schema id), the ``schema`` text, its type and
    references, and whether it is soft-``deleted``."""

    subject: str
    version: int
    id: int
    schema: str
    schema_type: str = AVRO
    references: tuple[tuple[str, str, int], ...] = ()
    deleted: bool = False

    def to_json(self) -> dict[str, Any]:
        """The REST answer for this version (GET /subjects/{s}/versions/{v})."""
        out: dict[str, Any] = {"subject": self.subject, "version": self.version, "id": self.id}
        if self.schema_type != AVRO:
            out["schemaType"] = self.schema_type
        if self.references:
            out["references"] = [{"name": n, "subject": s, "version": v} for n, s, v in self.references]
        out["schema"] = self.schema
        return out


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def schema_key(subject: str, version: int) -> bytes:
    """The ``_schemas`` key of a subject version (Confluent's SchemaKey, magic 1)."""
    return _dump({"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1})


def schema_value(v: SchemaVersion) -> bytes:
    """The ``_schemas`` value of a subject version (Confluent's SchemaValue)."""
    out: dict[str, Any] = {"subject": v.subject, "version": v.version, "id": v.id, "schema": v.schema}
    if v.schema_type != AVRO:
        out["schemaType"] = v.schema_type
    if v.references:
        out["references"] = [{"name": n, "subject": s, "version": ver} for n, s, ver in v.references]
    out["deleted"] = v.deleted
    return _dump(out)


def config_key(subject: str | None) -> bytes:
    """The ``_schemas`` key of the global (None) or a subject's compatibility config."""
    return _dump({"keytype": "CONFIG", "magic": 0} if subject is None
                 else {"keytype": "CONFIG", "subject": subject, "magic": 0})


def config_value(subject: str | None, level: str) -> bytes:
    return _dump({"compatibilityLevel": level} if subject is None
                 else {"subject": subject, "compatibilityLevel": level})


@attrs.define
class InMemoryCache:
    """Subjects, versions, ids and configs as the ``_schemas`` log says (see module doc).
    ``offset``: the next offset to apply (records below it are applied)."""

    subjects: dict[str, dict[int, SchemaVersion]] = attrs.Factory(dict)
    configs: dict[str | None, str] = attrs.Factory(dict)
    offset: int = 0
    max_id: int = 0
    """Largest id ever applied: ids are never reused, even after a permanent delete."""
    ignored: int = 0
    """SCHEMA records refused by the first-writer-wins rule (races between instances)."""
    _parsed: dict[int, ParsedSchema] = attrs.Factory(dict)

    # ------------------------------------------------------------------ reading the log

    def apply(self, offset: int, key: bytes | None, value: bytes | None) -> bool:
        """Apply the record at ``offset``. Returns False when it was skipped (unknown or
        malformed key, or a SCHEMA record refused as a conflict), True otherwise."""
        self.offset = max(self.offset, offset + 1)
        try:
            k = json.loads(key) if key else None
            v = json.loads(value) if value else None
        except ValueError:
            log.warning("schemas_record_skipped", offset=offset, reason="not JSON")
            return False
        if not isinstance(k, dict):
            return False
        keytype = k.get("keytype")
        subject = k.get("subject")
        if keytype == "SCHEMA" and isinstance(subject, str) and isinstance(k.get("version"), int):
            return self._apply_schema(offset, subject, k["version"], v)
        if keytype == "CONFIG":
            if v is None:
                self.configs.pop(subject, None)
            elif isinstance(v, dict) and isinstance(v.get("compatibilityLevel"), str):
                self.configs[subject] = v["compatibilityLevel"]
            return True
        if keytype == "DELETE_SUBJECT" and isinstance(subject, str) and isinstance(v, dict):
            upto = v.get("version")
            for ver, sv in list(self.subjects.get(subject, {}).items()):
                if isinstance(upto, int) and ver <= upto:
                    self.subjects[subject][ver] = attrs.evolve(sv, deleted=True)
            return True
        return False

    def _apply_schema(self, offset: int, subject: str, version: int, v: Any) -> bool:
        versions = self.subjects.get(subject, {})
        if v is None:  # tombstone: permanently deleted
            versions.pop(version, None)
            if not versions:
                self.subjects.pop(subject, None)
            return True
        if not isinstance(v, dict) or not isinstance(v.get("id"), int) or not isinstance(v.get("schema"), str):
            log.warning("schemas_record_skipped", offset=offset, reason="malformed SchemaValue")
            return False
        refs = tuple((str(r.get("name")), str(r.get("subject")), int(r.get("version") or 0))
                     for r in v.get("references") or [] if isinstance(r, dict))
        new = SchemaVersion(subject, version, v["id"], v["schema"], (v.get("schemaType") or AVRO).upper(),
                            refs, bool(v.get("deleted", False)))
        old = versions.get(version)
        if old is not None and (old.id, old.schema) != (new.id, new.schema):
            self.ignored += 1
            log.info("schemas_record_ignored", offset=offset, subject=subject, version=version,
                     reason=f"version already holds id {old.id}")
            return False
        holder = self.schema_by_id(new.id)
        if holder is not None and (holder.schema_type, holder.schema) != (new.schema_type, new.schema):
            self.ignored += 1
            log.info("schemas_record_ignored", offset=offset, subject=subject, version=version,
                     reason=f"id {new.id} names another schema")
            return False
        self.subjects.setdefault(subject, {})[version] = new
        self.max_id = max(self.max_id, new.id)
        return True

    # ------------------------------------------------------------------ queries

    def schema_by_id(self, schema_id: int) -> SchemaVersion | None:
        """Any version (deleted or not) holding ``schema_id``, or None."""
        for versions in self.subjects.values():
            for sv in versions.values():
                if sv.id == schema_id:
                    return sv
        return None

    def versions_of_id(self, schema_id: int) -> list[SchemaVersion]:
        """The live (not soft-deleted) versions holding ``schema_id``."""
        return [sv for versions in self.subjects.values() for sv in versions.values()
                if sv.id == schema_id and not sv.deleted]

    def parsed(self, sv: SchemaVersion) -> ParsedSchema:
        """``sv``'s schema parsed (cached by id), its references resolved (``dependencies``)."""
        if sv.id not in self._parsed:
            self._parsed[sv.id] = parse_schema(sv.schema, sv.schema_type, sv.references,
                                               self.dependencies(sv.schema_type, sv.references))
        return self._parsed[sv.id]

    def dependencies(self, schema_type: str, references: tuple[tuple[str, str, int], ...]) -> dict[str, str]:
        """The texts a PROTOBUF schema with ``references`` imports, {import name: text}, its
        references' references included (Confluent resolves them transitively); {} for the
        other types. Version -1 names the subject's latest live version. Raises RestError 42201
        when a referenced subject version does not exist."""
        out: dict[str, str] = {}
        if schema_type != PROTOBUF:
            return out
        todo = list(references)
        while todo:
            name, subject, version = todo.pop()
            if name in out:
                continue
            versions = self.subjects.get(subject, {})
            if version == -1:
                live = self.live_versions(subject)
                sv = live[-1] if live else None
            else:
                sv = versions.get(version)
            if sv is None:
                raise errors.invalid_schema(f"Invalid schema reference {name}: subject '{subject}' "
                                            f"version {version} not found")
            out[name] = sv.schema
            todo.extend(sv.references)
        return out

    def find_id(self, parsed: ParsedSchema) -> int | None:
        """The id of a stored schema equal to ``parsed`` (same type, identity, references)."""
        for versions in self.subjects.values():
            for sv in versions.values():
                if sv.schema_type == parsed.schema_type and sv.references == parsed.references:
                    try:
                        if self.parsed(sv).identity == parsed.identity:
                            return sv.id
                    except Exception:  # a stored schema this version cannot parse never matches
                        continue
        return None

    def next_id(self) -> int:
        """One above the largest id ever applied (ids start at 1)."""
        return self.max_id + 1

    def live_versions(self, subject: str) -> list[SchemaVersion]:
        """``subject``'s versions that are not soft-deleted, oldest first."""
        return sorted((sv for sv in self.subjects.get(subject, {}).values() if not sv.deleted),
                      key=lambda sv: sv.version)

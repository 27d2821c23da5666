"""Dynamic configs in the metadata log (Kafka's ConfigurationControlManager): ConfigRecord.

``configs[(resource_type, resource_name)]`` = {name: value}; resource types are Kafka's
ConfigResource.Type ids: TOPIC 2, BROKER 4 (name "" = the cluster default, else a broker id).
IncrementalAlterConfigs (KIP-339) turns SET (0) / DELETE (1) / APPEND (2) / SUBTRACT (3) into
ConfigRecords (value None = deleted); topic configs are checked with the storage layer's LogConfig
rules (INVALID_CONFIG with Kafka's message), a missing topic is UNKNOWN_TOPIC_OR_PARTITION, a bad
broker name or another resource type INVALID_REQUEST.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from kafkalike.kraft.controller_result import ControllerError, ControllerResult
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage.log_config import validate_topic_configs

__all__ = ["ConfigurationControlManager", "ConfigResult", "TOPIC", "BROKER"]

TOPIC = 2
BROKER = 4
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


@attrs.frozen
class ConfigResult:
    """One resource's answer: ``error`` (ErrorCode) and ``message``."""

    resource_type: int
    resource_name: str
    error: ErrorCode = ErrorCode.none
    message: str | None = None


class ConfigurationControlManager:
    """The replayed dynamic configs (see module doc)."""

    def __init__(self) -> None:
        self.configs: dict[tuple[int, str], dict[str, str]] = {}

    def replay(self, record: mr.ConfigRecord) -> None:
        """Apply a committed ConfigRecord."""
        key = (record.resource_type, record.resource_name)
        if record.value is None:
            self.configs.get(key, {}).pop(record.name, None)
            if not self.configs.get(key, True):
                self.configs.pop(key, None)
        else:
            self.configs.setdefault(key, {})[record.name] = record.value

    def delete_topic_configs(self, name: str) -> None:
        """A topic was removed: its configs go too (Kafka: on RemoveTopicRecord replay)."""
        self.configs.pop((TOPIC, name), None)

    def reset(self) -> None:
        """Forget everything (before a snapshot is loaded)."""
        self.configs.clear()

    def topic_config(self, topic: str) -> dict[str, str]:
        """A topic's overrides."""
        return dict(self.configs.get((TOPIC, topic), {}))

    def incremental_alter_configs(self, resources: Any, validate_only: bool,
                                  topic_exists: Callable[[str], bool]) -> ControllerResult:
        """IncrementalAlterConfigs: records for every resource that passes, response a list of
        ConfigResult in request order (nothing written with ``validate_only``)."""
        records: list[mr.ApiMessage] = []
        results: list[ConfigResult] = []
        for res in resources:
            try:
                changes = self._incremental_changes(res, topic_exists)
            except ControllerError as exc:
                results.append(ConfigResult(res.resource_type, res.resource_name, exc.error, exc.message))
                continue
            if not validate_only:
                records.extend(mr.ConfigRecord(resource_type=res.resource_type, resource_name=res.resource_name,
                                               name=n, value=v) for n, v in changes.items())
            results.append(ConfigResult(res.resource_type, res.resource_name))
        return ControllerResult(tuple(records), results)

    def _incremental_changes(self, res: Any, topic_exists: Callable[[str], bool]) -> dict[str, str | None]:
        rtype, name = res.resource_type, res.resource_name
        if rtype == TOPIC:
            if not topic_exists(name):
                raise ControllerError(ErrorCode.unknown_topic_or_partition, f"The topic '{name}' does not exist.")
        elif rtype == BROKER:
            if name and not name.isdigit():
                raise ControllerError(ErrorCode.invalid_request, f"Invalid broker name {name}")
        else:
            raise ControllerError(ErrorCode.invalid_request, f"Unsupported resource type {rtype}")
        current = dict(self.configs.get((rtype, name), {}))
        changes: dict[str, str | None] = {}
        for c in res.configs:
            op = c.config_operation
            if op == SET:
                new: str | None = c.value
            elif op == DELETE:
                new = None
            elif op in (APPEND, SUBTRACT):
                items = [v for v in (current.get(c.name) or "").split(",") if v]
                values = [v.strip() for v in (c.value or "").split(",") if v.strip()]
                if op == APPEND:
                    items += [v for v in values if v not in items]
                else:
                    items = [v for v in items if v not in values]
                new = ",".join(items)
            else:
                raise ControllerError(ErrorCode.invalid_request, f"Unknown alter configs operation type {op}")
            changes[c.name] = new
            if new is None:
                current.pop(c.name, None)
            else:
                current[c.name] = new
        if rtype == TOPIC:
            problem = validate_topic_configs(current)
            if problem is not None:
                raise ControllerError(ErrorCode.invalid_config, problem)
        return changes

"""meta.properties, versions 0 and 1, as Kafka 3.9's MetaProperties reads and writes them.

    version=0   ZooKeeper mode: broker.id (optional), cluster.id (optional)
    version=1   KRaft mode, written by `storage format`: node.id, cluster.id (both required),
                directory.id (optional; a random Uuid per log dir, KIP-858)

Java properties text, as Properties.store writes it: a `#` line (the empty comment), a `#<date>`
line, then key=value lines; Kafka 3.9 writes a formatted dir's keys in the order node.id,
directory.id, version, cluster.id, and so does `write_meta_properties_v1`.

The ZooKeeper-mode broker keeps its own v0 handling (kafkalike/storage/checkpoints.py,
check_meta_properties); this module is what KRaft mode and `kafkalike storage format` use, and reads
both versions.

Errors: KafkaStorageError naming the file, with Kafka's messages ("node.id was not found.",
"cluster.id was not found.", "Unable to read directory.id as a Uuid: ...", "Unable to read
node.id as a base-10 number.", "Unknown meta.properties version ...").
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import attrs

from kafkalike.protocol.metadata_records import uuid_from_base64, uuid_to_base64
from kafkalike.storage.checkpoints import META_PROPERTIES, write_atomically
from kafkalike.storage.errors import KafkaStorageError


@attrs.frozen
class MetaPropertiesV1:
    """Kafka's MetaProperties: `version` 0 or 1, `node_id` (broker.id in v0; None if absent
    there), `cluster_id` (22-char base64 Uuid string; None only in v0), `directory_id`."""

    version: int
    node_id: int | None
    cluster_id: str | None
    directory_id: uuid.UUID | None = None


def parse_properties_text(text: str) -> dict[str, str]:
    """key=value / key:value lines; `#` and `!` comments skipped (enough for meta.properties,
    which has no continuations or escapes)."""
    props: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        for sep in ("=", ":"):
            if sep in line:
                key, value = line.split(sep, 1)
                props[key.strip()] = value.strip()
                break
    return props


def _int(props: dict[str, str], key: str, path: Path) -> int:
    try:
        return int(props[key])
    except KeyError:
        raise KafkaStorageError(f"{key} was not found.", path) from None
    except ValueError:
        raise KafkaStorageError(f"Unable to read {key} as a base-10 number.", path) from None


def read_meta_properties_v1(log_dir: Path) -> MetaPropertiesV1 | None:
    """Read <log_dir>/meta.properties of version 0 or 1 (MetaProperties.Builder(Properties)),
    None if the file is absent. Raises KafkaStorageError for an unreadable or invalid file."""
    path = Path(log_dir) / META_PROPERTIES
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise KafkaStorageError(f"cannot read meta.properties ({exc})", path) from exc
    props = parse_properties_text(text)
    version_text = props.get("version", "0")
    if version_text not in ("0", "1"):
        raise KafkaStorageError(f"Unknown meta.properties version '{version_text}'", path)
    version = int(version_text)
    if version == 0:
        node_id = _int(props, "broker.id", path) if "broker.id" in props else None
    else:
        node_id = _int(props, "node.id", path)
    cluster_id = props.get("cluster.id")
    if version == 1 and cluster_id is None:
        raise KafkaStorageError("cluster.id was not found.", path)
    directory_id = None
    if "directory.id" in props:
        try:
            directory_id = uuid_from_base64(props["directory.id"])
        except ValueError as exc:
            raise KafkaStorageError(f"Unable to read directory.id as a Uuid: {exc}", path) from None
    return MetaPropertiesV1(version, node_id, cluster_id, directory_id)


def format_meta_properties(meta: MetaPropertiesV1, *, now: float | None = None) -> str:
    """The file text Kafka writes (MetaProperties.toProperties + Properties.store)."""
    stamp = time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(now))
    lines = ["#", f"#{stamp}"]
    if meta.version == 0:
        if meta.node_id is not None:
            lines.append(f"broker.id={meta.node_id}")
    else:
        lines.append(f"node.id={meta.node_id}")
    if meta.directory_id is not None:
        lines.append(f"directory.id={uuid_to_base64(meta.directory_id)}")
    lines.append(f"version={meta.version}")
    if meta.cluster_id is not None:
        lines.append(f"cluster.id={meta.cluster_id}")
    return "\n".join(lines) + "\n"


def write_meta_properties_v1(log_dir: Path, meta: MetaPropertiesV1) -> None:
    """Write <log_dir>/meta.properties atomically (tmp + fsync + rename). Raises ValueError for
    a v1 without node.id or cluster.id, KafkaStorageError on I/O errors."""
    if meta.version == 1 and (meta.node_id is None or meta.cluster_id is None):
        raise ValueError("meta.properties version 1 needs node.id and cluster.id")
    write_atomically(Path(log_dir) / META_PROPERTIES, format_meta_properties(meta))

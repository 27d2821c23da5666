"""``kafkalike storage``: kafka-storage.sh's ``format`` and ``random-uuid`` (Kafka 3.9's StorageTool
and Formatter), the first step of a KRaft node.

    kafkalike storage random-uuid
    kafkalike storage format -t CLUSTER_ID -c server.properties [--release-version 3.9-IV0] [--ignore-formatted]

``format`` reads the server.properties of a KRaft node (process.roles, node.id, log.dirs or
log.dir, metadata.log.dir, controller.listener.names, controller.quorum.voters) and, in every
log dir and the metadata log dir that has no meta.properties yet, writes:

* ``meta.properties`` version 1: node.id, a fresh directory.id per dir, cluster.id;
* ``bootstrap.checkpoint``: the bootstrap metadata, a snapshot of epoch 0 holding one
  FeatureLevelRecord per feature with a non-zero level: at 3.9-IV0 only metadata.version=21,
  byte for byte what Kafka 3.9 writes apart from the batch timestamps and CRCs.

It prints Kafka's lines ("Formatting metadata directory /d with metadata.version 3.9-IV0.") and
exits 1 with Kafka's one-line message on stderr when the config is not a KRaft one, a dir is
already formatted (without --ignore-formatted), or the release version is not one kafkalike
writes. Differences from Kafka: only metadata.version 3.9-IV0 (Kafka's default) is accepted;
--add-scram, --feature, --standalone and --initial-controllers (dynamic quorums, KIP-853) are
not implemented.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from kafkalike.broker.kafka_config import parse_properties
from kafkalike.protocol import metadata_records as mr
from kafkalike.storage.errors import KafkaStorageError
from kafkalike.storage.meta_properties import MetaPropertiesV1, read_meta_properties_v1, write_meta_properties_v1
from kafkalike.storage.snapshots import write_bootstrap_checkpoint

METADATA_VERSIONS = {"3.9-IV0": 21, "3.9": 21}
"""Release versions `format` accepts -> metadata.version feature level (MetadataVersion.IBP_3_9_IV0)."""
DEFAULT_RELEASE_VERSION = "3.9-IV0"
"""MetadataVersion.LATEST_PRODUCTION in Kafka 3.9."""


class TerseFailure(Exception):
    """One line for stderr and exit code 1 (Kafka's TerseFailure / FormatterException)."""


def bootstrap_records(release_version: str) -> list[mr.ApiMessage]:
    """The bootstrap metadata `format` writes for `release_version` (BootstrapMetadata.fromVersions):
    a FeatureLevelRecord for metadata.version (the other features, kraft.version, group.version
    and transaction.version, are at level 0 for 3.9-IV0 and so not written)."""
    return [mr.FeatureLevelRecord(name="metadata.version", feature_level=METADATA_VERSIONS[release_version])]


def format_storage(config_path: Path, cluster_id: str, release_version: str | None, ignore_formatted: bool,
                   out: TextIO) -> None:
    """Run `storage format` (see the module docstring). Raises TerseFailure with Kafka's message."""
    try:
        text = Path(config_path).read_text()
    except OSError as exc:
        raise TerseFailure(f"cannot read {config_path}: {exc.strerror}") from exc
    props = {key: value for _line, key, value in parse_properties(text)}
    if not props.get("process.roles", "").strip():
        raise TerseFailure("The kafka configuration file appears to be for a legacy cluster. "
                           "Formatting is only supported for clusters in KRaft mode.")
    roles = {r.strip() for r in props["process.roles"].split(",")}
    try:
        node_id = int(props.get("node.id", "-1"))
    except ValueError:
        raise TerseFailure(f"Invalid value {props['node.id']} for configuration node.id: Not a number of type INT") \
            from None
    if node_id < 0:
        raise TerseFailure("You must specify a valid non-negative node ID.")
    listener_names = [n for n in props.get("controller.listener.names", "").split(",") if n.strip()]
    if not listener_names:
        raise TerseFailure("You must specify the name of the initial controller listener.")
    if "controller" in roles and not props.get("controller.quorum.voters", "").strip():
        raise TerseFailure("Because controller.quorum.voters is not set on this controller, you must specify one "
                           "of the following: --standalone, --initial-controllers, or --no-initial-controllers.")
    release = release_version or DEFAULT_RELEASE_VERSION
    if release not in METADATA_VERSIONS:
        raise TerseFailure(f"metadata.version {release} is not one kafkalike writes (only 3.9-IV0).")
    log_dirs = [d.strip() for d in props.get("log.dirs", props.get("log.dir", "/tmp/kafka-logs")).split(",")
                if d.strip()]
    metadata_dir = props.get("metadata.log.dir", "").strip() or log_dirs[0]
    directories = list(dict.fromkeys([*log_dirs, metadata_dir]))
    formatted: list[str] = []
    for directory in directories:
        try:
            if read_meta_properties_v1(Path(directory)) is not None:
                formatted.append(directory)
        except KafkaStorageError:
            formatted.append(directory)
    if formatted and not ignore_formatted:
        raise TerseFailure(f"Log directory {formatted[0]} is already formatted. "
                           "Use --ignore-formatted to ignore this directory and format the others.")
    empty = [d for d in directories if d not in formatted]
    if not empty:
        print("All of the log directories are already formatted.", file=out)
        return
    records = bootstrap_records(release)
    for directory in empty:
        kind = "metadata directory" if directory == metadata_dir else "data directory"
        print(f"Formatting {kind} {directory} with metadata.version {release}.", file=out)
        path = Path(directory)
        try:
            path.mkdir(parents=True, exist_ok=True)
            write_bootstrap_checkpoint(path, records)
            write_meta_properties_v1(path, MetaPropertiesV1(version=1, node_id=node_id, cluster_id=cluster_id,
                                                            directory_id=mr.random_uuid()))
        except (OSError, KafkaStorageError) as exc:
            raise TerseFailure(f"Error while writing meta.properties file {directory}: {exc}") from exc


def _run(args: argparse.Namespace) -> int:
    if args.storage_command == "random-uuid":
        print(mr.uuid_to_base64(mr.random_uuid()))
        return 0
    try:
        format_storage(Path(args.config), args.cluster_id, args.release_version, args.ignore_formatted, sys.stdout)
    except TerseFailure as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `storage` with its `format` and `random-uuid` sub-commands."""
    parser = subparsers.add_parser("storage", help="format KRaft log dirs, like kafka-storage.sh",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="storage_command", metavar="{format,random-uuid}", required=True)
    fmt = sub.add_parser("format", help="Format the Kafka log directories on this node.")
    fmt.add_argument("-c", "--config", required=True, help="The Kafka configuration file to use.")
    fmt.add_argument("-t", "--cluster-id", required=True, help="The cluster ID to use.")
    fmt.add_argument("-r", "--release-version", default=None,
                     help="The release version to use for the initial feature settings (default 3.9-IV0).")
    fmt.add_argument("-g", "--ignore-formatted", action="store_true",
                     help="When this option is passed, the format command will skip over already formatted "
                          "directories rather than failing.")
    sub.add_parser("random-uuid", help="Print a random UUID.")
    parser.set_defaults(func=_run)

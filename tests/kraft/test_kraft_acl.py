"""ACLs in KRaft mode (Kafka 3.9's AclControlManager and StandardAuthorizer): the controller turns
CreateAcls / DeleteAcls into (Remove)AccessControlEntryRecords with Kafka's checks and messages,
replay and snapshots give the same state, the image keeps the ACLs by id, and a broker's
StandardAuthorizer decides from the image (super.users, DENY before ALLOW, prefixed patterns)
and answers DescribeAcls from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from kafkalike.broker.acl_apis import AclApis
from kafkalike.broker.acl_authorizer import AclOperation, ResourceType
from kafkalike.broker.kafka_config import ConfigError, KafkaConfig
from kafkalike.broker.kafka_server import BrokerStartupError, KafkaServer
from kafkalike.broker.standard_authorizer import STANDARD_AUTHORIZER_CLASS, StandardAuthorizer
from kafkalike.client.messages import build_request
from kafkalike.image import MetadataDelta, MetadataImage
from kafkalike.image.metadata_image import MetadataProvenance, StandardAcl
from kafkalike.kraft.acl_control_manager import AclFilter
from kafkalike.kraft.quorum_controller import ControllerState
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode
from tests.kraft.test_controller_replay import CONFIG, _through_the_log

TOPIC, GROUP, CLUSTER = 2, 3, 4
LITERAL, PREFIXED = 3, 4
ALL, READ, WRITE, DESCRIBE = 2, 3, 4, 8
DENY, ALLOW = 2, 3


def _acl(name: str = "orders", principal: str = "User:alice", operation: int = WRITE, permission: int = ALLOW,
         pattern: int = LITERAL, rtype: int = TOPIC, host: str = "*") -> StandardAcl:
    return StandardAcl(rtype, name, pattern, principal, host, operation, permission)


def _apply(state: ControllerState, records: list[mr.ApiMessage], result: Any) -> list[Any]:
    for r in result.records:
        state.replay(r, len(records))
        records.append(r)
    return list(result.response)


def test_created_acls_become_records_with_fresh_ids_and_duplicates_are_written_once() -> None:
    state = ControllerState(CONFIG, clock=lambda: 0.0)
    records: list[mr.ApiMessage] = []
    alice, bob = _acl(), _acl(principal="User:bob", operation=READ)
    answers = _apply(state, records, state.acls.create_acls([alice, bob, alice]))
    assert [(a.error, a.message) for a in answers] == [(ErrorCode.none, None)] * 3
    assert [type(r) for r in records] == [mr.AccessControlEntryRecord] * 2
    ids = [r.id for r in records if isinstance(r, mr.AccessControlEntryRecord)]
    assert len(set(ids)) == 2 and mr.ZERO_UUID not in ids
    assert records[0] == alice.to_record(ids[0])
    # the same ACL again: success, nothing written (it exists)
    assert [a.error for a in _apply(state, records, state.acls.create_acls([alice]))] == [ErrorCode.none]
    assert len(records) == 2
    assert sorted(state.acls.acls.values(), key=str) == sorted([alice, bob], key=str)


def test_invalid_acls_get_kafkas_invalid_request_messages_and_write_nothing() -> None:
    state = ControllerState(CONFIG, clock=lambda: 0.0)
    records: list[mr.ApiMessage] = []
    answers = _apply(state, records, state.acls.create_acls([
        _acl(rtype=1), _acl(rtype=0), _acl(pattern=2), _acl(operation=1), _acl(permission=1), _acl(name=""),
        _acl(principal="alice")]))
    assert [(a.error, a.message) for a in answers] == [
        (ErrorCode.invalid_request, "Invalid resourceType ANY"),
        (ErrorCode.invalid_request, "Invalid resourceType UNKNOWN"),
        (ErrorCode.invalid_request, "Invalid patternType MATCH"),
        (ErrorCode.invalid_request, "Invalid operation ANY"),
        (ErrorCode.invalid_request, "Invalid permissionType ANY"),
        (ErrorCode.invalid_request, "Resource name should not be empty"),
        (ErrorCode.invalid_request, "Could not parse principal from `alice` (no colon is present separating the "
                                    "principal type from the principal name)")]
    assert records == []


def test_delete_filters_remove_what_they_match_once_and_unknown_filters_are_refused() -> None:
    state = ControllerState(CONFIG, clock=lambda: 0.0)
    records: list[mr.ApiMessage] = []
    literal, prefixed, group = _acl(), _acl("ord", pattern=PREFIXED, operation=READ), _acl("g", rtype=GROUP)
    wildcard = _acl("*", principal="User:*", operation=DESCRIBE)
    _apply(state, records, state.acls.create_acls([literal, prefixed, group, wildcard]))
    assert len({r.id for r in records if isinstance(r, mr.AccessControlEntryRecord)}) == 4
    answers = _apply(state, records, state.acls.delete_acls([
        AclFilter(resource_type=TOPIC, resource_name="orders", pattern_type=2),  # MATCH: literal, wildcard, prefix
        AclFilter(resource_type=TOPIC, principal="User:alice", operation=WRITE),
        AclFilter(resource_type=0), AclFilter(operation=0)]))
    assert [(a.error, a.message) for a in answers] == [
        (ErrorCode.none, None), (ErrorCode.none, None),
        (ErrorCode.invalid_request, "Unknown patternFilter."), (ErrorCode.invalid_request, "Unknown entryFilter.")]
    assert set(answers[0].deleted) == {literal, prefixed, wildcard}
    assert answers[1].deleted == (literal,)
    removes = [r for r in records if isinstance(r, mr.RemoveAccessControlEntryRecord)]
    assert len(removes) == 3  # the literal ACL matched twice, removed once
    assert list(state.acls.acls.values()) == [group]


def test_replaying_the_log_or_the_snapshot_gives_the_same_acls_and_ids() -> None:
    state = ControllerState(CONFIG, clock=lambda: 0.0)
    records: list[mr.ApiMessage] = []
    _apply(state, records, state.acls.create_acls([_acl(), _acl("a", pattern=PREFIXED), _acl("g", rtype=GROUP)]))
    _apply(state, records, state.acls.delete_acls([AclFilter(resource_type=GROUP)]))
    replayed = ControllerState(CONFIG, clock=lambda: 0.0)
    for offset, r in enumerate(_through_the_log(records)):
        replayed.replay(r, offset)
    assert replayed.acls.acls == state.acls.acls and len(state.acls.acls) == 2
    snapshot = state.snapshot_records()
    assert [r for r in snapshot if isinstance(r, mr.AccessControlEntryRecord)] == state.acls.snapshot_records()
    from_snapshot = ControllerState(CONFIG, clock=lambda: 0.0)
    for offset, r in enumerate(_through_the_log(snapshot)):
        from_snapshot.replay(r, offset)
    assert from_snapshot.acls.acls == state.acls.acls
    # a re-created ACL after a snapshot is still known to exist: nothing written
    assert from_snapshot.acls.create_acls([_acl()]).records == ()


def _image(records: list[mr.ApiMessage], base: MetadataImage = MetadataImage.EMPTY) -> tuple[MetadataDelta, MetadataImage]:
    delta = MetadataDelta(base)
    for r in _through_the_log(records):
        delta.replay(r)
    return delta, delta.apply(MetadataProvenance(base.offset + len(records), 1, 0))


class _NoChannel:
    async def send(self, request: Any) -> Any:
        raise AssertionError("no controller in this test")


def _config(**extra: str) -> KafkaConfig:
    props = {"node.id": "4", "process.roles": "broker", "controller.listener.names": "CONTROLLER",
             "controller.quorum.voters": "1@127.0.0.1:9093", "listeners": "PLAINTEXT://127.0.0.1:9092",
             "authorizer.class.name": STANDARD_AUTHORIZER_CLASS, **extra}
    return KafkaConfig.from_mapping(props)


@attrs.frozen
class _Conn:
    principal: str
    peer: tuple[str, int] = ("127.0.0.1", 5555)


async def test_a_brokers_standard_authorizer_decides_and_describes_from_the_images_acls() -> None:
    state = ControllerState(CONFIG, clock=lambda: 0.0)
    records: list[mr.ApiMessage] = []
    _apply(state, records, state.acls.create_acls([
        _acl("orders", "User:alice", WRITE), _acl("orders", "User:*", ALL, DENY, host="10.0.0.1"),
        _acl("log-", "User:bob", READ, pattern=PREFIXED), _acl("kafka-cluster", "User:alice", ALL, rtype=CLUSTER)]))
    delta, image = _image(records)
    assert delta.acls_changed and len(image.acls.acls) == 4
    authorizer = StandardAuthorizer.from_kraft_config(_config(**{"super.users": "User:admin"}), _NoChannel())  # type: ignore[arg-type]
    assert authorizer is not None
    authorizer.load_image(image.acls)

    def may(principal: str, op: AclOperation, name: str, host: str = "127.0.0.1") -> bool:
        return authorizer.authorize(principal, host, op, ResourceType.TOPIC, name, log_if_denied=False)
    assert may("User:alice", AclOperation.WRITE, "orders")
    assert may("User:alice", AclOperation.DESCRIBE, "orders")  # implied by Write
    assert not may("User:alice", AclOperation.WRITE, "orders", host="10.0.0.1")  # DENY wins
    assert not may("User:carol", AclOperation.WRITE, "orders")
    assert may("User:bob", AclOperation.READ, "log-app") and not may("User:bob", AclOperation.READ, "orders")
    assert not may("User:carol", AclOperation.READ, "nothing-here")  # no ACL: denied by default
    assert may("User:admin", AclOperation.DELETE, "orders")  # super.users

    # DescribeAcls answered from the image (alice may Describe the cluster: she has ALL on it)
    apis = AclApis(authorizer)
    request = build_request(ApiKey.DESCRIBE_ACLS, 3, resource_type_filter=TOPIC, resource_name_filter=None,
                            pattern_type_filter=1, principal_filter=None, host_filter=None, operation=1,
                            permission_type=1)
    described = await apis.describe_acls(None, request, _Conn("User:alice"))
    assert described.error_code == ErrorCode.none
    assert sorted((r.resource_name, r.pattern_type, len(r.acls)) for r in described.resources) == [
        ("log-", PREFIXED, 1), ("orders", LITERAL, 2)]
    refused = await apis.describe_acls(None, request, _Conn("User:carol"))
    assert refused.error_code == ErrorCode.cluster_authorization_failed

    # removals reach the authorizer with the next image
    _apply(state, records[:0], state.acls.delete_acls([AclFilter(principal="User:alice")]))
    removal: list[mr.ApiMessage] = [mr.RemoveAccessControlEntryRecord(id=i) for i, a in
               {r.id: r for r in records if isinstance(r, mr.AccessControlEntryRecord)}.items()
               if a.principal == "User:alice"]
    delta, image = _image(removal, image)
    authorizer.load_image(image.acls)
    assert not may("User:alice", AclOperation.WRITE, "orders") and len(image.acls.acls) == 2
    await trio.lowlevel.checkpoint()


def test_a_kraft_broker_accepts_the_standard_authorizer_and_the_zookeeper_name_and_refuses_others() -> None:
    assert StandardAuthorizer.from_kraft_config(_config(), _NoChannel()) is not None  # type: ignore[arg-type]
    alias = _config(**{"authorizer.class.name": "kafka.security.authorizer.AclAuthorizer"})
    assert isinstance(StandardAuthorizer.from_kraft_config(alias, _NoChannel()), StandardAuthorizer)  # type: ignore[arg-type]
    assert StandardAuthorizer.from_kraft_config(_config(**{"authorizer.class.name": ""}), _NoChannel()) is None  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="invalid value 'com.example.Other' for configuration 'authorizer.class.name'"):
        _config(**{"authorizer.class.name": "com.example.Other"})


async def test_the_standard_authorizer_in_zookeeper_mode_is_a_one_line_startup_error(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """ZooKeeper mode refuses the StandardAuthorizer (its ACLs are metadata records):
    BrokerStartupError naming the class it provides, not a traceback."""
    zk_mode = KafkaConfig.from_mapping({
        "broker.id": "1", "listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": str(tmp_path / "zk-logs"),
        "zookeeper.connect": zk_chroot_connect, "zookeeper.session.timeout.ms": "4000",
        "authorizer.class.name": STANDARD_AUTHORIZER_CLASS})
    with pytest.raises(BrokerStartupError, match="kafkalike provides kafka.security.authorizer.AclAuthorizer only"):
        await KafkaServer(zk_mode).run()

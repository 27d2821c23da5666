"""AclAuthorizer: Kafka's matching rules (unit + hypothesis) and the ZooKeeper store (real
ZooKeeper): the znodes Kafka writes, change notifications reaching a second broker's cache."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from kafkalike.broker.acl_authorizer import (
    AccessControlEntry,
    AclAuthorizer,
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourcePattern,
    ResourceType,
    decide,
    parse_super_users,
)
from kafkalike.coordination import ZooKeeperClient
from kafkalike.coordination import zk_data as zd

ALLOW, DENY = AclPermissionType.ALLOW, AclPermissionType.DENY
Op = AclOperation


def ace(principal: str = "User:bob", op: AclOperation = Op.READ, perm: AclPermissionType = ALLOW,
        host: str = "*") -> AccessControlEntry:
    return AccessControlEntry(principal, host, op, perm)


def topic(name: str, pattern: PatternType = PatternType.LITERAL) -> ResourcePattern:
    return ResourcePattern(ResourceType.TOPIC, name, pattern)


# ---------------------------------------------------------------------------- decisions
def test_no_acl_denies_by_default_and_allows_with_allow_everyone() -> None:
    assert decide([], "User:bob", "1.2.3.4", Op.READ, False) is False
    assert decide([], "User:bob", "1.2.3.4", Op.READ, True) is True


def test_deny_wins_over_allow() -> None:
    acls = [ace(op=Op.READ), ace(op=Op.READ, perm=DENY)]
    assert decide(acls, "User:bob", "h", Op.READ, False) is False


def test_describe_is_implied_by_read_write_delete_alter_but_not_by_create() -> None:
    for op in (Op.READ, Op.WRITE, Op.DELETE, Op.ALTER):
        assert decide([ace(op=op)], "User:bob", "h", Op.DESCRIBE, False)
    assert not decide([ace(op=Op.CREATE)], "User:bob", "h", Op.DESCRIBE, False)
    assert decide([ace(op=Op.ALTER_CONFIGS)], "User:bob", "h", Op.DESCRIBE_CONFIGS, False)
    assert not decide([ace(op=Op.READ)], "User:bob", "h", Op.WRITE, False)


def test_a_deny_of_read_does_not_deny_describe() -> None:
    """Implication applies to ALLOW only (AclAuthorizer): Describe stays allowed."""
    acls = [ace(op=Op.DESCRIBE), ace(op=Op.READ, perm=DENY)]
    assert decide(acls, "User:bob", "h", Op.DESCRIBE, False)
    assert not decide(acls, "User:bob", "h", Op.READ, False)


def test_all_operation_wildcard_principal_and_host_matching() -> None:
    assert decide([ace("User:*", Op.ALL)], "User:bob", "h", Op.WRITE, False)
    assert not decide([ace("User:*", Op.ALL, DENY), ace(op=Op.WRITE)], "User:bob", "h", Op.WRITE, False)
    assert decide([ace(host="10.0.0.1")], "User:bob", "10.0.0.1", Op.READ, False)
    assert not decide([ace(host="10.0.0.1")], "User:bob", "10.0.0.2", Op.READ, False)
    assert not decide([ace("User:alice")], "User:bob", "h", Op.READ, False)


OPS = st.sampled_from([o for o in AclOperation if o not in (Op.ANY, Op.UNKNOWN)])
ENTRIES = st.builds(AccessControlEntry, st.sampled_from(["User:bob", "User:alice", "User:*"]),
                    st.sampled_from(["*", "10.0.0.1", "10.0.0.2"]), OPS, st.sampled_from([ALLOW, DENY]))


@given(st.lists(ENTRIES, max_size=8), OPS, st.sampled_from(["10.0.0.1", "10.0.0.2"]))
def test_decision_matches_kafkas_definition(acls: list[AccessControlEntry], op: AclOperation, host: str) -> None:
    """Written the way AclAuthorizer.authorizeAction reads: deny if any matching DENY of op or
    All; else allowed if a matching ALLOW of op, All, or an op implying it."""
    def match(e: AccessControlEntry, o: AclOperation, perm: AclPermissionType) -> bool:
        return (e.permission_type == perm and e.principal in ("User:bob", "User:*") and e.host in (host, "*")
                and (e.operation == o or e.operation == Op.ALL))
    implied = {Op.DESCRIBE: [Op.DESCRIBE, Op.READ, Op.WRITE, Op.DELETE, Op.ALTER],
               Op.DESCRIBE_CONFIGS: [Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS]}.get(op, [op])
    expected = bool(acls) and not any(match(e, op, DENY) for e in acls) and any(
        match(e, o, ALLOW) for e in acls for o in implied)
    assert decide(acls, "User:bob", host, op, False) == expected
    if acls:  # allow.everyone only matters for a resource without ACLs
        assert decide(acls, "User:bob", host, op, True) == expected


def test_literal_wildcard_and_prefixed_resources_apply() -> None:
    auth = AclAuthorizer()
    auth._set_cache(topic("*"), frozenset({ace(op=Op.DESCRIBE)}))
    auth._set_cache(topic("pay", PatternType.PREFIXED), frozenset({ace(op=Op.WRITE)}))
    auth._set_cache(topic("payments"), frozenset({ace(op=Op.READ)}))
    assert auth.authorize("User:bob", "h", Op.READ, ResourceType.TOPIC, "payments")
    assert auth.authorize("User:bob", "h", Op.WRITE, ResourceType.TOPIC, "payroll")
    assert not auth.authorize("User:bob", "h", Op.WRITE, ResourceType.TOPIC, "orders")
    assert auth.authorize("User:bob", "h", Op.DESCRIBE, ResourceType.TOPIC, "orders")
    assert not auth.authorize("User:bob", "h", Op.READ, ResourceType.GROUP, "payments")


def test_super_users_may_do_anything_and_others_get_the_bit_field() -> None:
    auth = AclAuthorizer(parse_super_users("User:admin; User:root"))
    assert auth.super_users == {"User:admin", "User:root"}
    assert auth.authorize("User:admin", "h", Op.ALTER, ResourceType.CLUSTER, "kafka-cluster")
    auth._set_cache(topic("t"), frozenset({ace(op=Op.READ)}))
    bits = auth.authorized_operations("User:bob", "h", ResourceType.TOPIC, "t")
    assert bits == (1 << Op.READ) | (1 << Op.DESCRIBE)


def test_binding_filters_match_as_kafkas_resource_pattern_filter() -> None:
    lit, wild, pre = (AclBinding(topic("payments"), ace()), AclBinding(topic("*"), ace()),
                      AclBinding(topic("pay", PatternType.PREFIXED), ace()))
    match = AclBindingFilter(ResourceType.TOPIC, "payments", PatternType.MATCH)
    assert [match.matches(b) for b in (lit, wild, pre)] == [True, True, True]
    assert [AclBindingFilter(name="payments").matches(b) for b in (lit, wild, pre)] == [True, False, False]
    assert [AclBindingFilter(pattern_type=PatternType.PREFIXED).matches(b) for b in (lit, wild, pre)] == [
        False, False, True]
    assert not AclBindingFilter(principal="User:alice").matches(lit)
    assert AclBindingFilter(operation=Op.READ, permission_type=ALLOW).matches(lit)


# ---------------------------------------------------------------------------- ZooKeeper
async def test_acls_are_stored_in_kafkas_znodes_with_change_notifications(zk_client: ZooKeeperClient) -> None:
    auth = AclAuthorizer()
    async with trio.open_nursery() as nursery:
        await auth.start(zk_client, nursery)
        results = await auth.create_acls([
            AclBinding(topic("t"), ace(op=Op.READ)),
            AclBinding(topic("t"), ace("User:alice", Op.WRITE, host="10.0.0.1")),
            AclBinding(topic("pay-", PatternType.PREFIXED), ace(op=Op.WRITE)),
            AclBinding(ResourcePattern(ResourceType.CLUSTER, "other"), ace(op=Op.ALTER)),
        ])
        assert results[:3] == [None, None, None]
        assert "The only valid name for the CLUSTER resource is kafka-cluster" in (results[3] or "")
        data, _ = await zk_client.get("/kafka-acl/Topic/t")
        stored = json.loads(data)
        assert stored["version"] == 1
        assert sorted(stored["acls"], key=lambda a: a["principal"]) == [
            {"principal": "User:alice", "permissionType": "Allow", "operation": "Write", "host": "10.0.0.1"},
            {"principal": "User:bob", "permissionType": "Allow", "operation": "Read", "host": "*"}]
        data, _ = await zk_client.get("/kafka-acl-extended/prefixed/Topic/pay-")
        assert json.loads(data)["acls"] == [
            {"principal": "User:bob", "permissionType": "Allow", "operation": "Write", "host": "*"}]
        literal = await zk_client.get_children("/kafka-acl-changes")
        assert [(await zk_client.get(f"/kafka-acl-changes/{c}"))[0] for c in literal] == [b"Topic:t"]
        assert all(c.startswith("acl_changes_") for c in literal)
        extended = await zk_client.get_children("/kafka-acl-extended-changes")
        assert [json.loads((await zk_client.get(f"/kafka-acl-extended-changes/{c}"))[0]) for c in extended] == [
            {"version": 1, "resourceType": "TOPIC", "name": "pay-", "patternType": "PREFIXED"}]
        for t in zd.ACL_RESOURCE_TYPES:
            assert await zk_client.exists(f"/kafka-acl/{t}") is not None

        deleted = await auth.delete_acls([AclBindingFilter(principal="User:alice")])
        assert deleted == [[AclBinding(topic("t"), ace("User:alice", Op.WRITE, host="10.0.0.1"))]]
        deleted = await auth.delete_acls([AclBindingFilter(ResourceType.TOPIC, "t", PatternType.LITERAL)])
        assert len(deleted[0]) == 1
        assert await zk_client.exists("/kafka-acl/Topic/t") is None  # no ACL left: the znode goes
        nursery.cancel_scope.cancel()


async def test_a_second_brokers_cache_follows_the_change_notifications(
        zk_client: ZooKeeperClient, zk_chroot_connect: str) -> None:
    writer, reader = AclAuthorizer(), AclAuthorizer()
    async with ZooKeeperClient(zk_chroot_connect, session_timeout_ms=4000) as other:
        async with trio.open_nursery() as nursery:
            await writer.start(zk_client, nursery)
            await writer.create_acls([AclBinding(topic("before"), ace())])
            await reader.start(other, nursery)  # loads what is there
            assert reader.authorize("User:bob", "h", Op.READ, ResourceType.TOPIC, "before")
            await writer.create_acls([AclBinding(topic("after", PatternType.PREFIXED), ace(op=Op.WRITE))])
            with trio.fail_after(30):
                while not reader.authorize("User:bob", "h", Op.WRITE, ResourceType.TOPIC, "after-1"):
                    await trio.sleep(0.05)
            await writer.delete_acls([AclBindingFilter(name="before")])
            with trio.fail_after(30):
                while reader.authorize("User:bob", "h", Op.READ, ResourceType.TOPIC, "before"):
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("text,expected", [("TOPIC", ResourceType.TOPIC), ("TransactionalId", ResourceType.TRANSACTIONAL_ID),
                                           ("transactional_id", ResourceType.TRANSACTIONAL_ID), ("x", ResourceType.UNKNOWN)])
def test_resource_type_names(text: str, expected: ResourceType) -> None:
    assert ResourceType.parse(text) == expected


async def test_a_cache_whose_zookeeper_session_expired_catches_up_with_changes_made_meanwhile(
        zk_client: ZooKeeperClient, zk_chroot_connect: str, zk_expire: Any) -> None:
    """The reader's session expires (its child watch dies with it); an ACL written meanwhile
    reaches its cache once it has a new session (relist / re-armed watch)."""
    writer, reader = AclAuthorizer(), AclAuthorizer()
    async with ZooKeeperClient(zk_chroot_connect, session_timeout_ms=4000) as other:
        async with trio.open_nursery() as nursery:
            await writer.start(zk_client, nursery)
            await reader.start(other, nursery)
            await zk_expire(other)
            await writer.create_acls([AclBinding(topic("while-away"), ace(op=Op.WRITE))])
            with trio.fail_after(45):
                while not reader.authorize("User:bob", "h", Op.WRITE, ResourceType.TOPIC, "while-away"):
                    await trio.sleep(0.1)
            nursery.cancel_scope.cancel()

"""ZooKeeper security on a REAL ZooKeeper (issue 19): a 1-node ensemble with SASL DIGEST-MD5
(ZkEnsemble.sasl_users), a client authenticated from a JAAS ``Client`` section, and Kafka's
ZkData.defaultAcls on every znode it creates (zookeeper.set.acl=true)."""

from __future__ import annotations

import atexit
import functools
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import trio

from kafkalike.cluster.zk_ensemble import ZkEnsemble, find_free_base_port
from kafkalike.coordination.errors import AuthFailed, CoordinationError, NoNode
from kafkalike.coordination.kafka_zk_client import default_acls, sensitive_path
from kafkalike.coordination.zookeeper_client import (
    CreateOp,
    NoAuth,
    ZkSaslCredentials,
    ZooKeeperClient,
    read_jaas_client_section,
    read_jaas_login,
)

BROKER = ZkSaslCredentials("kafka", 'broker-"secret"')


@pytest.fixture(scope="module")
def sasl_zk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZkEnsemble]:
    """A standalone ZooKeeper accepting SASL DIGEST-MD5 logins of kafka and admin."""
    ens = ZkEnsemble(tmp_path_factory.mktemp("zk-sasl"), nodes=1, base_port=find_free_base_port(["127.0.0.1"]),
                     first_host=1, die_with_parent=True,
                     sasl_users={BROKER.username: BROKER.password, "admin": "admin-pw"})
    atexit.register(ens.stop)
    try:
        ens.start(timeout=60)
        yield ens
    finally:
        ens.stop()


def _connect(ens: ZkEnsemble, chroot: str) -> str:
    return ens.connect_string_with_chroot(chroot)


def test_jaas_client_section_gives_the_digest_login() -> None:
    text = (
        'KafkaServer { org.apache.kafka.common.security.plain.PlainLoginModule required username="x" password="y"; };\n'
        "Client {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n"
        '  username="kafka"\n  password="pw";\n};\n'
    )
    assert read_jaas_client_section(text) == ZkSaslCredentials("kafka", "pw")
    assert read_jaas_client_section(text, "Other") is None


def test_jaas_login_comes_from_the_path_else_kafka_opts_and_an_unreadable_file_is_one_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """read_jaas_login, shared by the broker (kafkalike.zookeeper.jaas.config) and kafkalike
    configs (--jaas-config): the named file, else KAFKA_OPTS' -Djava.security.auth.login.config."""
    jaas = tmp_path / "jaas.conf"
    jaas.write_text('Client { org.apache.zookeeper.server.auth.DigestLoginModule required username="k" '
                    'password="p"; };\n')
    other = tmp_path / "other.conf"
    other.write_text('KafkaServer { x required username="a" password="b"; };\n')
    monkeypatch.setenv("KAFKA_OPTS", f"-Xmx1g -Djava.security.auth.login.config={other}")
    assert read_jaas_login(str(jaas)) == ZkSaslCredentials("k", "p")
    assert read_jaas_login(None) is None  # KAFKA_OPTS' file has no Client section
    monkeypatch.setenv("KAFKA_OPTS", f"-Djava.security.auth.login.config={jaas}")
    assert read_jaas_login(None) == ZkSaslCredentials("k", "p")
    monkeypatch.delenv("KAFKA_OPTS")
    assert read_jaas_login(None) is None
    with pytest.raises(CoordinationError, match=f"cannot read the ZooKeeper JAAS login from {tmp_path}/missing: "):
        read_jaas_login(str(tmp_path / "missing"))


def test_default_acls_follow_kafka_zkdata() -> None:
    assert sensitive_path("/config/users/alice") and sensitive_path("/config/brokers/1")
    assert sensitive_path("/delegation_token/tokens/t1")
    assert not sensitive_path("/kafka-acl/Topic/t") and not sensitive_path("/config/topics/t")
    schemes = lambda acls: sorted((a.id.scheme, a.id.id, a.perms) for a in acls)  # noqa: E731
    assert schemes(default_acls(True, "/brokers/ids/1")) == [("auth", "", 31), ("world", "anyone", 1)]
    assert schemes(default_acls(True, "/config/users/alice")) == [("auth", "", 31)]
    assert schemes(default_acls(False, "/config/users/alice")) == [("world", "anyone", 31)]


async def test_secured_znodes_are_world_readable_but_writable_only_by_their_creator(sasl_zk: ZkEnsemble) -> None:
    connect = _connect(sasl_zk, f"/t-{uuid.uuid4().hex[:8]}")
    secure = functools.partial(default_acls, True)
    async with ZooKeeperClient(connect, session_timeout_ms=6000, sasl=BROKER, acl_provider=secure,
                               name="broker") as zk:
        await zk.create("/brokers/ids/1", b'{"host":"h"}', make_parents=True)
        await zk.multi([CreateOp("/controller", b'{"brokerid":1}')])
        await zk.create("/config/users/alice", b'{"config":{"SCRAM-SHA-256":"salt=..."}}', make_parents=True)
        await zk.ensure_path("/kafka-acl/Topic")
        acls, _ = await zk.get_acls("/config/users")
        assert [(a.id.scheme, a.id.id) for a in acls] == [("sasl", "kafka")]  # the creator, nothing for world
        acls, _ = await zk.get_acls("/config")
        assert sorted((a.id.scheme, a.id.id) for a in acls) == [("sasl", "kafka"), ("world", "anyone")]
        await zk.set("/controller", b'{"brokerid":2}')  # the creator can write

    async with ZooKeeperClient(connect, session_timeout_ms=6000, name="stranger") as anon:
        data, _ = await anon.get("/brokers/ids/1")
        assert data == b'{"host":"h"}'
        assert await anon.get_children("/brokers/ids") == ["1"]
        assert await anon.get_children("/kafka-acl") == ["Topic"]
        with pytest.raises(NoAuth):
            await anon.set("/controller", b'{"brokerid":666}')
        with pytest.raises(NoAuth):
            await anon.delete("/controller")
        with pytest.raises(NoAuth):
            await anon.create("/brokers/ids/2", b"{}")
        with pytest.raises(NoAuth):
            await anon.get("/config/users/alice")
        with pytest.raises(NoAuth):
            await anon.get_children("/config/users")

    # another SASL user is not the creator either
    async with ZooKeeperClient(connect, session_timeout_ms=6000, sasl=ZkSaslCredentials("admin", "admin-pw"),
                               name="admin") as other:
        with pytest.raises(NoAuth):
            await other.set("/controller", b"{}")
        with pytest.raises(NoNode):
            await other.get("/brokers/ids/9")


async def test_unsecured_client_leaves_znodes_open(sasl_zk: ZkEnsemble) -> None:
    connect = _connect(sasl_zk, f"/t-{uuid.uuid4().hex[:8]}")
    async with ZooKeeperClient(connect, session_timeout_ms=6000, sasl=BROKER, name="broker") as zk:
        await zk.create("/controller", b"{}")
    async with ZooKeeperClient(connect, session_timeout_ms=6000, name="stranger") as anon:
        await anon.set("/controller", b'{"brokerid":2}')  # OPEN_ACL_UNSAFE: anyone may write


async def test_wrong_password_fails_start_with_auth_failed(sasl_zk: ZkEnsemble) -> None:
    client = ZooKeeperClient(sasl_zk.connect_string, session_timeout_ms=6000, connection_timeout_ms=8000,
                             sasl=ZkSaslCredentials("kafka", "wrong"), name="wrong-pw")
    with trio.fail_after(30):
        with pytest.raises(AuthFailed):
            await client.start()
    await client.close()


def test_ensemble_writes_the_jaas_server_section(sasl_zk: ZkEnsemble) -> None:
    text = Path(sasl_zk.jaas_path).read_text()
    assert "org.apache.zookeeper.server.auth.DigestLoginModule required" in text
    assert 'user_kafka="broker-\\"secret\\""' in text
    assert "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider" in \
        sasl_zk.spec(1).cfg_path.read_text()

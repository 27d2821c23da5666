"""``kafkalike zk tree`` on a tree with znodes it may not read (issue 19): like Kafka's
zookeeper-shell (zkCli.sh), one line "Insufficient permission : <znode>" naming the znode it was
refused on and how to log in (--jaas-config / KAFKA_OPTS), exit code 1, never a traceback.
Judge: a real ZooKeeper ensemble (the session's shared one) and a znode whose ACL names only a
digest identity, so an anonymous session gets NOAUTH (-102) reading it."""

from __future__ import annotations

import contextlib
import io

import trio
from kazoo.security import make_digest_acl

from kafkalike.coordination.zookeeper_client import NoAuth, ZooKeeperClient


def _main(*argv: str) -> tuple[int, str, str]:
    from kafkalike.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _make_tree(connect: str) -> None:
    """/config/changes (open) and /config/users/admin readable only by digest user kafka."""

    async def run() -> None:
        async with ZooKeeperClient(connect, session_timeout_ms=6000, name="test-noauth") as zk:
            await zk.create("/config/changes", b"", make_parents=True)
            await zk.create("/config/users/admin", b'{"version":1,"config":{}}', make_parents=True)
            await zk.set_acls("/config/users/admin", [make_digest_acl("kafka", "secret", all=True)])
            try:
                await zk.get("/config/users/admin")
            except NoAuth:
                return
            raise AssertionError("the digest-only znode is readable anonymously: the test would prove nothing")

    trio.run(run)


def test_zk_tree_without_login_names_the_refused_znode_in_one_line(zk_chroot_connect: str) -> None:
    _make_tree(zk_chroot_connect)
    code, out, err = _main("zk", "tree", "--zookeeper", zk_chroot_connect)
    assert code == 1
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kafkalike zk: Insufficient permission : /config/users/admin ")
    assert "NoAuth for /config/users/admin" in lines[0]
    assert "--jaas-config" in lines[0] and "KAFKA_OPTS" in lines[0]

    # a subtree the session may read still prints as before
    code, out, err = _main("zk", "tree", "/config/changes", "--zookeeper", zk_chroot_connect)
    assert (code, out.split()) == (0, ["/config/changes"]), err


def test_zk_tree_with_a_missing_jaas_file_is_one_line(zk_chroot_connect: str, tmp_path: object) -> None:
    code, out, err = _main("zk", "tree", "--zookeeper", zk_chroot_connect, "--jaas-config",
                           f"{tmp_path}/no-such-jaas.conf")
    assert code == 1 and out == ""
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "no-such-jaas.conf" in err

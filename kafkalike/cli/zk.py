"""``kafkalike zk ...``: a local ZooKeeper ensemble (up / down / status) and the znode tree.

    kafkalike zk up [--nodes 1|3|5] [--dir DIR] [--base-port N]     (DIR default .kafkalike/zk)
    kafkalike zk status [--dir DIR] [--json]
    kafkalike zk down [--dir DIR]
    kafkalike zk tree [PATH] [--zookeeper HOST:PORT[,..][/chroot]] [--dir DIR] [--all] [--json]
    kafkalike zk getacl PATH [--zookeeper ...] [--jaas-config FILE]   (zkCli.sh getAcl's output)

``up --sasl-user NAME=PASSWORD`` makes the ensemble accept SASL DIGEST-MD5 logins (Kafka's
``zookeeper.set.acl`` setup, docs/security.md "ZooKeeper security"); ``tree`` and ``getacl`` log
in as the JAAS ``Client`` section of ``--jaas-config`` (else of ``-Djava.security.auth.login.config``
in KAFKA_OPTS, as Kafka's own tools read it).

Thin: the work is in kafkalike.cluster.zk_ensemble and kafkalike.coordination.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from kafkalike.cluster.zk_ensemble import ZkEnsemble
    from kafkalike.coordination import ZooKeeperClient
    from kafkalike.coordination.zookeeper_client import ZkSaslCredentials

# The ensemble's own directory; the same place ``kafkalike cluster up`` keeps its ensemble
# (<cluster base>/zk), so ``zk status|tree|down`` find a cluster's ZooKeeper by default.
DEFAULT_DIR = ".kafkalike/zk"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``zk`` sub-command and its actions to the ``kafkalike`` parser."""
    p = subparsers.add_parser("zk", help="a local ZooKeeper ensemble: up, down, status, tree",
                              epilog="examples:\n"
                                     "  kafkalike zk up --nodes 3          # 127.0.0.1-3:2181, data in .kafkalike/zk\n"
                                     "  kafkalike zk status\n"
                                     "  kafkalike zk tree /brokers\n"
                                     "  kafkalike zk down",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="zk_command", metavar="ACTION")
    p.set_defaults(func=lambda args: _help(p))

    up = sub.add_parser("up", help="start a local ensemble; returns once a quorum answers")
    up.add_argument("--nodes", type=int, choices=[1, 3, 5], default=3, help="ensemble size (default 3)")
    up.add_argument("--dir", default=DEFAULT_DIR, help=f"base directory (default {DEFAULT_DIR})")
    up.add_argument("--base-port", type=int, default=2181,
                    help="client port of every node (default 2181); quorum +707, election +1707")
    up.add_argument("--host-prefix", default="127.0.0.",
                    help="node i listens on <prefix>i (default 127.0.0.); a full address puts all nodes on it")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the quorum")
    up.add_argument("--sasl-user", action="append", default=[], metavar="NAME=PASSWORD",
                    help="accept SASL DIGEST-MD5 logins of this user (repeatable; JAAS Server section)")
    up.set_defaults(func=_up)

    down = sub.add_parser("down", help="stop every node of the ensemble by pid")
    down.add_argument("--dir", default=DEFAULT_DIR, help=f"base directory (default {DEFAULT_DIR})")
    down.add_argument("--purge", action="store_true", help="also delete data dirs and logs")
    down.set_defaults(func=_down)

    status = sub.add_parser("status", help="each node's pid and mode (from the srvr four-letter word)")
    status.add_argument("--dir", default=DEFAULT_DIR, help=f"base directory (default {DEFAULT_DIR})")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=_status)

    tree = sub.add_parser("tree", help="the znode tree with data, ephemeral nodes marked")
    tree.add_argument("path", nargs="?", default="/", help="znode to start from (default /)")
    tree.add_argument("--zookeeper", help="connect string host:port[,..][/chroot] (default: the ensemble in --dir)")
    tree.add_argument("--dir", default=DEFAULT_DIR, help=f"base directory (default {DEFAULT_DIR})")
    tree.add_argument("--all", action="store_true", help="include ZooKeeper's own /zookeeper subtree")
    tree.add_argument("--no-data", action="store_true", help="paths only")
    tree.add_argument("--max-bytes", type=int, default=None, help="truncate data longer than this")
    tree.add_argument("--json", action="store_true",
                      help="one JSON object per znode: path, ephemeral, owner, czxid, version, data")
    tree.add_argument("--jaas-config", help="JAAS file whose Client section logs in (SASL DIGEST-MD5)")
    tree.set_defaults(func=_tree)

    getacl = sub.add_parser("getacl", help="a znode's ACL, as zkCli.sh getAcl prints it")
    getacl.add_argument("path", help="the znode")
    getacl.add_argument("--zookeeper", help="connect string host:port[,..][/chroot] (default: the ensemble in --dir)")
    getacl.add_argument("--dir", default=DEFAULT_DIR, help=f"base directory (default {DEFAULT_DIR})")
    getacl.add_argument("--jaas-config", help="JAAS file whose Client section logs in (SASL DIGEST-MD5)")
    getacl.set_defaults(func=_getacl)

    mig = sub.add_parser("security-migration",
                         help="set Kafka's znode ACLs on an existing tree (zookeeper-security-migration.sh)")
    mig.add_argument("--zookeeper.acl", dest="zookeeper_acl", required=True, choices=["secure", "unsecure"],
                     help="secure: the login's identity ALL, world READ (none on credentials); unsecure: world ALL")
    mig.add_argument("--zookeeper.connect", dest="zookeeper", required=True, metavar="HOST:PORT[/chroot]",
                     help="the cluster's zookeeper.connect")
    mig.add_argument("--jaas-config", help="JAAS file whose Client section logs in (default: KAFKA_OPTS's)")
    mig.set_defaults(func=_security_migration)


def _help(parser: argparse.ArgumentParser) -> int:
    """``kafkalike zk`` without an action: the help, exit code 2."""
    parser.print_help()
    return 2


def _sasl(args: argparse.Namespace) -> "ZkSaslCredentials | None":
    """The tool's ZooKeeper login: --jaas-config's Client section, else KAFKA_OPTS's
    -Djava.security.auth.login.config file's; None: anonymous."""
    import os
    import shlex
    from pathlib import Path

    from kafkalike.coordination.zookeeper_client import read_jaas_client_section

    path = getattr(args, "jaas_config", None)
    if not path:
        for arg in shlex.split(os.environ.get("KAFKA_OPTS", "")):
            if arg.startswith("-Djava.security.auth.login.config="):
                path = arg.partition("=")[2]
    return read_jaas_client_section(Path(path).read_text()) if path else None


_PERMS = "cdrwa"  # zkCli.sh's letters: CREATE 4, DELETE 8, READ 1, WRITE 2, ADMIN 16
_PERM_BITS = {"c": 4, "d": 8, "r": 1, "w": 2, "a": 16}


def format_acl(acls: list) -> list[str]:  # type: ignore[type-arg]  # kazoo ACL records
    """``acls`` as zkCli.sh getAcl prints them: ``'scheme,'id`` then ``: perms`` (cdrwa)."""
    out = []
    for a in acls:
        out.append(f"'{a.id.scheme},'{a.id.id}")
        out.append(": " + "".join(ch for ch in _PERMS if a.perms & _PERM_BITS[ch]))
    return out


def _getacl(args: argparse.Namespace) -> int:
    import logging

    import trio

    from kafkalike import logs
    from kafkalike.coordination import ConnectTimeout, CoordinationError, NoNode, ZooKeeperClient
    from kafkalike.coordination.zookeeper_client import NoAuth

    logs.configure(fmt=getattr(args, "log_format", "console"), level=logging.WARNING)
    connect = args.zookeeper
    if not connect:
        from kafkalike.cluster.zk_ensemble import ZkEnsembleError

        try:
            connect = _load(args.dir).connect_string
        except ZkEnsembleError as exc:
            return _err(f"{exc}; pass --zookeeper HOST:PORT")

    async def run() -> list[str]:
        async with ZooKeeperClient(connect, session_timeout_ms=6000, connection_timeout_ms=5000, name="getacl",
                                   sasl=_sasl(args)) as zk:
            acls, _ = await zk.get_acls(args.path)
        return format_acl(acls)

    try:
        lines = trio.run(run)
    except NoNode:
        return _err(f"no znode {args.path}")
    except NoAuth:
        return _err(f"Insufficient permission : {args.path}")  # zkCli.sh's message
    except ConnectTimeout:
        return _err(f"cannot connect to ZooKeeper at {connect}")
    except (CoordinationError, OSError) as exc:
        return _err(str(exc))
    for line in lines:
        print(line)
    return 0


def _load(directory: str) -> "ZkEnsemble":
    """The ensemble in ``directory``, or in ``directory/zk`` when given a cluster's base dir."""
    from pathlib import Path

    from kafkalike.cluster.zk_ensemble import STATE_FILE, ZkEnsemble

    d = Path(directory)
    if not (d / STATE_FILE).exists() and (d / "zk" / STATE_FILE).exists():
        d = d / "zk"
    return ZkEnsemble.load(d)


def _err(msg: str) -> int:
    print(f"kafkalike zk: {msg}", file=sys.stderr)
    return 1


def _print_status(statuses: list, as_json: bool = False) -> None:  # type: ignore[type-arg]  # list of ZooKeeper status records of mixed shapes
    if as_json:
        print(json.dumps([
            {"node": s.node_id, "address": s.address, "pid": s.pid, "alive": s.alive, "mode": s.mode,
             "zxid": s.zxid, "error": s.error} for s in statuses
        ], indent=2))
        return
    print(f"{'node':<5} {'address':<22} {'pid':<8} {'mode':<11} detail")
    for s in statuses:
        print(f"{s.node_id:<5} {s.address:<22} {str(s.pid or '-'):<8} {s.mode or '-':<11} "
              f"{s.error or ('zxid ' + s.zxid if s.zxid else '')}")


def _up(args: argparse.Namespace) -> int:
    from kafkalike.cluster.zk_ensemble import ZkEnsemble, ZkEnsembleError

    users = dict(u.partition("=")[::2] for u in args.sasl_user)
    if any(not name or not pw for name, pw in users.items()):
        return _err("--sasl-user takes NAME=PASSWORD")
    try:
        ens = ZkEnsemble(args.dir, nodes=args.nodes, base_port=args.base_port, host_prefix=args.host_prefix,
                         sasl_users=users or None)
        ens.start(timeout=args.timeout)
    except ZkEnsembleError as exc:
        return _err(str(exc))
    _print_status(ens.status())
    print(f"zookeeper.connect={ens.connect_string}")
    return 0


def _down(args: argparse.Namespace) -> int:
    from kafkalike.cluster.zk_ensemble import ZkEnsembleError

    try:
        ens = _load(args.dir)
    except ZkEnsembleError as exc:
        return _err(str(exc))
    if args.purge:
        ens.destroy()
    else:
        ens.stop()
    print(f"ZooKeeper ensemble in {args.dir} stopped ({ens.nodes} nodes)")
    return 0


def _status(args: argparse.Namespace) -> int:
    from kafkalike.cluster.zk_ensemble import ZkEnsembleError

    try:
        ens = _load(args.dir)
    except ZkEnsembleError as exc:
        return _err(str(exc))
    statuses = ens.status()
    _print_status(statuses, args.json)
    return 0 if sum(s.serving for s in statuses) > ens.nodes // 2 else 1


def _tree(args: argparse.Namespace) -> int:
    import logging

    import trio

    from kafkalike import logs
    from kafkalike.coordination import ConnectTimeout, CoordinationError, NoNode, ZooKeeperClient
    from kafkalike.coordination.zk_tree import render, walk
    from kafkalike.coordination.zookeeper_client import NoAuth

    logs.configure(fmt=getattr(args, "log_format", "console"), level=logging.WARNING)
    connect = args.zookeeper
    if not connect:
        from kafkalike.cluster.zk_ensemble import ZkEnsembleError

        try:
            connect = _load(args.dir).connect_string
        except ZkEnsembleError as exc:
            return _err(f"{exc}; pass --zookeeper HOST:PORT")

    sasl = None
    try:
        sasl = _sasl(args)
    except (CoordinationError, OSError) as exc:
        return _err(str(exc))
    reads = _ReadTracker()

    async def run() -> list[str]:
        async with ZooKeeperClient(connect, session_timeout_ms=6000, connection_timeout_ms=5000, name="tree",
                                   sasl=sasl) as zk:
            reads.zk = zk
            nodes = await walk(cast("ZooKeeperClient", reads), args.path, include_internal=args.all)
        if args.json:
            return [json.dumps({
                "path": n.path, "ephemeral": n.ephemeral,
                "owner": f"0x{n.stat.ephemeral_owner:x}" if n.ephemeral else None,
                "czxid": n.stat.czxid, "version": n.stat.version,
                "data": None if args.no_data else n.data_text(args.max_bytes),
            }) for n in nodes]
        return render(nodes, with_data=not args.no_data, max_bytes=args.max_bytes)

    try:
        lines = trio.run(run)
    except NoNode:
        return _err(f"no znode {args.path}")
    except NoAuth:  # a secured tree (zookeeper.set.acl=true): credentials are the brokers' only
        return _err(_no_auth_line(reads.last_path or args.path, sasl))
    except ConnectTimeout:
        return _err(f"cannot connect to ZooKeeper at {connect}")
    except CoordinationError as exc:
        return _err(str(exc))
    for line in lines:
        print(line)
    return 0


class _ReadTracker:
    """Stands in for the ZooKeeperClient that ``zk_tree.walk`` reads through and remembers the
    znode of the last read (``last_path``), so a NoAuth names the znode it was refused on."""

    def __init__(self) -> None:
        self.zk: Any = None
        self.last_path = ""

    async def sync(self, path: str) -> Any:
        self.last_path = path
        return await self.zk.sync(path)

    async def get(self, path: str) -> Any:
        self.last_path = path
        return await self.zk.get(path)

    async def get_children(self, path: str) -> Any:
        self.last_path = path
        return await self.zk.get_children(path)


def _no_auth_line(path: str, sasl: "ZkSaslCredentials | None") -> str:
    """One line for a NOAUTH (-102) on ``path``: zkCli.sh's "Insufficient permission : <path>"
    (Kafka's tools: "KeeperErrorCode = NoAuth for <path>") and what to pass to log in."""
    if sasl is None:
        how = ("the tree is secured (zookeeper.set.acl=true); log in as the brokers' ZooKeeper user with "
               "--jaas-config FILE or KAFKA_OPTS=-Djava.security.auth.login.config=FILE (its Client section)")
    else:
        how = f"the login sasl:{sasl.username} may not read it (its ACL names another identity)"
    return f"Insufficient permission : {path} (KeeperErrorCode = NoAuth for {path}): {how}"


def _security_migration(args: argparse.Namespace) -> int:
    """Kafka's ZkSecurityMigrator: the tree's ACLs set as a broker with zookeeper.set.acl would
    have created them (secure) or opened again (unsecure)."""
    import logging

    import trio

    from kafkalike import logs
    from kafkalike.coordination import ConnectTimeout, CoordinationError, ZooKeeperClient
    from kafkalike.coordination.kafka_zk_client import migrate_acls
    from kafkalike.coordination.zookeeper_client import NoAuth

    logs.configure(fmt=getattr(args, "log_format", "console"), level=logging.WARNING)
    secure = args.zookeeper_acl == "secure"
    try:
        sasl = _sasl(args)
    except (CoordinationError, OSError) as exc:
        return _err(str(exc))
    if secure and sasl is None:  # Kafka: "...but JAAS login file was not found"
        return _err("zookeeper.acl is secure but no JAAS login was given (--jaas-config or "
                    "-Djava.security.auth.login.config in KAFKA_OPTS)")

    async def run() -> int:
        async with ZooKeeperClient(args.zookeeper, session_timeout_ms=6000, connection_timeout_ms=5000,
                                   name="security-migration", sasl=sasl) as zk:
            return await migrate_acls(zk, secure)

    try:
        n = trio.run(run)
    except NoAuth as exc:
        return _err(f"not allowed to set ACLs (run as the brokers' ZooKeeper user): {exc!r}")
    except ConnectTimeout:
        return _err(f"cannot connect to ZooKeeper at {args.zookeeper}")
    except CoordinationError as exc:
        return _err(str(exc))
    print(f"set {args.zookeeper_acl} ACLs on {n} znodes")
    return 0

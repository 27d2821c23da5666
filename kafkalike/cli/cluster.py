"""``kafkalike cluster up|down|status``: a local ZooKeeper ensemble plus broker processes."""

from __future__ import annotations

import argparse
import json
import sys

EXAMPLE = """examples:
  kafkalike cluster up                      # 3 ZooKeeper nodes + 3 brokers in .kafkalike
  kafkalike cluster up --brokers 1 --zk-nodes 1
  kafkalike cluster up --with-prometheus    # + Prometheus on 127.0.0.1:9090 scraping every broker
  kafkalike cluster status --json           # metrics_url per broker
  kafkalike cluster down"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("cluster", help="run a local cluster (ZooKeeper ensemble + brokers)",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    csub = p.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    up = csub.add_parser("up", help="start (or restart, keeping data) a local cluster; a broker killed "
                         "moments ago is started once its old ZooKeeper registration has expired", epilog=EXAMPLE,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    up.add_argument("--brokers", type=int, default=None, help="number of brokers (default 3)")
    up.add_argument("--mode", choices=["zk", "kraft"], default=None,
                    help="zk (default): a ZooKeeper ensemble + brokers; kraft: a Raft quorum of controller "
                         "processes + brokers (process.roles=broker), no ZooKeeper")
    up.add_argument("--controllers", type=int, choices=[1, 3, 5], default=None,
                    help="--mode kraft: number of controllers (default 3)")
    up.add_argument("--combined", action="store_true",
                    help="--mode kraft: no separate controllers; each broker is also a voter "
                         "(process.roles=broker,controller, Kafka's combined mode)")
    up.add_argument("--zk-nodes", type=int, choices=[1, 3, 5], default=None,
                    help="ZooKeeper ensemble size (default 3)")
    up.add_argument("--dir", default=".kafkalike", help="base directory (default .kafkalike)")
    up.add_argument("--base-port", type=int, default=None, help="broker port (default 9092)")
    up.add_argument("--zk-base-port", type=int, default=None,
                    help="ZooKeeper client port of the cluster's own ensemble (default 2181; quorum and election "
                         "ports follow it)")
    up.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                    help="server.properties override for every broker (repeatable)")
    up.add_argument("--metrics-port", type=int, default=None,
                    help="every broker's /metrics port, each on its own 127.0.0.<i> (default 7071 with the "
                    "default --base-port, else off; -1 = off)")
    up.add_argument("--security", choices=["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"], default=None,
                    help="ssl: each broker also serves mutual TLS (ssl.client.auth=required) on base port + 1 "
                         "with certificates from a CA made for the cluster, also used between brokers; deny "
                         "by default, super.users = the brokers' and the admin's certificates; the admin's "
                         "client properties in <dir>/admin-client.properties; ZooKeeper secured as below. "
                         "sasl_plaintext / sasl_ssl: a SASL listener (PLAIN, SCRAM-SHA-256/512) on base "
                         "port + 1, also used between brokers (SCRAM-SHA-512 as user admin); the admin's "
                         "client properties in <dir>/admin-client.properties; ZooKeeper with SASL and "
                         "zookeeper.set.acl=true (the brokers' login in <dir>/kafka_server_jaas.conf). "
                         "sasl_ssl also denies by default (AclAuthorizer, super.users=User:admin)")
    up.add_argument("--with-prometheus", action="store_true",
                    help="also start Debian's prometheus scraping every broker (stopped by 'cluster down')")
    up.add_argument("--prometheus-port", type=int, default=None, help="Prometheus web port (default 9090)")
    up.set_defaults(func=_up)
    down = csub.add_parser("down", help="stop every process of the cluster, Prometheus included (data is kept)")
    down.add_argument("--dir", default=".kafkalike")
    down.set_defaults(func=_down)
    status = csub.add_parser("status", help="list the cluster's processes")
    status.add_argument("--dir", default=".kafkalike")
    status.add_argument("--json", action="store_true", help="one JSON document")
    status.set_defaults(func=_status)


def _up(args: argparse.Namespace) -> int:
    from kafkalike.cluster.kraft_cluster import KRaftCluster
    from kafkalike.cluster.local_cluster import ClusterError, LocalCluster
    from kafkalike.cluster.zk_ensemble import ZkEnsembleError

    if args.mode == "kraft" or args.combined or KRaftCluster.is_kraft(args.dir):
        return _up_kraft(args)
    try:
        cluster = LocalCluster.load(args.dir)
        if args.brokers is not None and args.brokers != cluster.brokers:
            print(f"kafkalike cluster: {args.dir} already holds a {cluster.brokers}-broker cluster; "
                  "run 'kafkalike cluster down' and use another --dir for a different shape",
                  file=sys.stderr)
            return 2
    except ClusterError:
        overrides = {}
        for item in args.override:
            if "=" not in item:
                print(f"kafkalike cluster: invalid --override {item!r}: expected key=value", file=sys.stderr)
                return 2
            k, v = item.split("=", 1)
            overrides[k] = v
        cluster = LocalCluster(args.dir, brokers=args.brokers or 3, zk_nodes=args.zk_nodes or 3,
                               base_port=args.base_port or 9092, zk_base_port=args.zk_base_port or 2181,
                               overrides=overrides, security=args.security or "plaintext")
    if args.metrics_port is not None:
        cluster.metrics_port = args.metrics_port
    if args.prometheus_port is not None:
        cluster.prometheus_port = args.prometheus_port
    try:
        # a broker killed moments ago is started once its old registration expired; say so
        cluster.start(say=lambda line: print(line, flush=True))
        if args.with_prometheus:
            cluster.start_prometheus()
    except (ClusterError, ZkEnsembleError, TimeoutError) as exc:
        print(f"kafkalike cluster: {exc}", file=sys.stderr)
        return 1
    _print_status(cluster)
    for i in cluster.broker_ids:
        if url := cluster.metrics_url(i):
            print(f"broker {i} metrics: {url}")
    if cluster.prometheus_alive():
        print(f"prometheus: {cluster.prometheus_url} (targets: {cluster.prometheus_url}/targets)")
    print(f"zookeeper.connect={cluster.zk_connect}")
    print(f"bootstrap.servers={cluster.bootstrap_servers}")
    if cluster.security == "ssl":
        print(f"SSL bootstrap.servers={cluster.ssl_bootstrap_servers} "
              f"(admin client properties: {cluster.admin_client_properties_path}; mutual TLS)")
    if cluster.security in ("sasl_plaintext", "sasl_ssl"):
        print(f"{cluster.sasl_listener_name} bootstrap.servers={cluster.sasl_bootstrap_servers} "
              f"(admin client properties: {cluster.admin_client_properties_path})")
    if cluster.security != "plaintext":
        if cluster.server_properties(cluster.broker_ids[0]).get("authorizer.class.name"):
            print(f"ACLs: deny by default; super.users={cluster.server_properties(cluster.broker_ids[0]).get('super.users', '(none)')}")
        if cluster.zk_secured:
            print(f"ZooKeeper: SASL, zookeeper.set.acl=true (login: {cluster.zk_jaas_path}, its Client section)")
    return 0


def _down(args: argparse.Namespace) -> int:
    from kafkalike.cluster.kraft_cluster import KRaftCluster
    from kafkalike.cluster.local_cluster import ClusterError, LocalCluster

    if KRaftCluster.is_kraft(args.dir):
        return _kraft(args, "down")
    try:
        cluster = LocalCluster.load(args.dir)
    except ClusterError as exc:
        print(f"kafkalike cluster: {exc}", file=sys.stderr)
        return 1
    cluster.stop()
    left = [s for s in cluster.status() if s.alive]
    if left:
        print(f"kafkalike cluster: still running: {left}", file=sys.stderr)
        return 1
    print(f"cluster in {args.dir} stopped ({cluster.brokers} brokers, {cluster.zk_nodes} ZooKeeper nodes); data kept")
    return 0


def _print_status(cluster: object) -> None:
    rows = cluster.status()  # type: ignore[attr-defined]  # cluster: a LocalCluster (imported lazily)
    print(f"{'role':<10} {'id':<3} {'address':<18} {'pid':<8} {'alive':<6} detail")
    for s in rows:
        print(f"{s.role:<10} {s.id:<3} {s.address:<18} {str(s.pid or '-'):<8} {str(s.alive).lower():<6} {s.detail}")


def _status(args: argparse.Namespace) -> int:
    from kafkalike.cluster.kraft_cluster import KRaftCluster
    from kafkalike.cluster.local_cluster import ClusterError, LocalCluster

    if KRaftCluster.is_kraft(args.dir):
        return _kraft(args, "status")
    try:
        cluster = LocalCluster.load(args.dir)
    except ClusterError as exc:
        print(f"kafkalike cluster: {exc}", file=sys.stderr)
        return 1
    if args.json:
        import attrs

        print(json.dumps({"bootstrap_servers": cluster.bootstrap_servers,
                          "zookeeper_connect": cluster.zk_connect,
                          "processes": [attrs.asdict(s) for s in cluster.status()]}, indent=2))
    else:
        _print_status(cluster)
    return 0


def _up_kraft(args: argparse.Namespace) -> int:
    """``cluster up --mode kraft``: controllers + brokers (kafkalike.cluster.kraft_cluster)."""
    from kafkalike.cluster.kraft_cluster import KRaftCluster
    from kafkalike.cluster.local_cluster import ClusterError

    if args.mode == "zk":
        print(f"kafkalike cluster: {args.dir} holds a KRaft cluster (or --combined, a KRaft option, was given); "
              "use another --dir", file=sys.stderr)
        return 2
    try:
        cluster = KRaftCluster.load(args.dir)
        if (args.brokers or cluster.brokers) != cluster.brokers or \
                (args.controllers or cluster.controllers) != cluster.controllers or \
                (args.combined and not cluster.combined):
            print(f"kafkalike cluster: {args.dir} already holds a KRaft cluster of {cluster.controllers} controllers "
                  f"and {cluster.brokers} brokers; run 'kafkalike cluster down' and use another --dir",
                  file=sys.stderr)
            return 2
    except ClusterError:
        overrides = dict(item.split("=", 1) for item in args.override if "=" in item)
        if len(overrides) != len(args.override):
            print("kafkalike cluster: invalid --override: expected key=value", file=sys.stderr)
            return 2
        brokers = args.brokers or 3
        cluster = KRaftCluster(args.dir, brokers=brokers, controllers=brokers if args.combined else args.controllers or 3,
                               base_port=args.base_port or 9092, controller_port=(args.base_port or 9092) + 1,
                               overrides=overrides, combined=args.combined)
    try:
        cluster.start(say=lambda line: print(line, flush=True))
    except (ClusterError, TimeoutError) as exc:
        print(f"kafkalike cluster: {exc}", file=sys.stderr)
        return 1
    _print_kraft_status(cluster)
    print(f"controller.quorum.voters={cluster.quorum_voters}")
    print(f"bootstrap.servers={cluster.bootstrap_servers}")
    return 0


def _print_kraft_status(cluster: object) -> None:
    quorum = cluster.quorum()  # type: ignore[attr-defined]  # cluster: a KRaftCluster (imported lazily)
    _print_rows(cluster.status(quorum))  # type: ignore[attr-defined]  # as above
    if quorum is None:
        print("quorum: no leader answered DescribeQuorum")
        return
    print(f"quorum: leader {quorum.leader_id}, epoch {quorum.epoch}, high watermark {quorum.high_watermark}")
    for kind, replicas in (("voter", quorum.voters), ("observer", quorum.observers)):
        for r in replicas:
            print(f"  {kind:<8} {r.node_id:<5} log end offset {r.log_end_offset:<7} lag {r.lag:<5} "
                  f"last fetch {r.last_fetch_ms_ago} ms ago")


def _print_rows(rows: list) -> None:  # type: ignore[type-arg]  # ProcessStatus rows
    print(f"{'role':<10} {'id':<5} {'address':<18} {'pid':<8} {'alive':<6} detail")
    for s in rows:
        print(f"{s.role:<10} {s.id:<5} {s.address:<18} {str(s.pid or '-'):<8} {str(s.alive).lower():<6} {s.detail}")


def _kraft(args: argparse.Namespace, action: str) -> int:
    """``cluster down`` / ``cluster status`` of a KRaft cluster."""
    import attrs

    from kafkalike.cluster.kraft_cluster import KRaftCluster

    cluster = KRaftCluster.load(args.dir)
    if action == "down":
        cluster.stop()
        left = [s for s in cluster.status() if s.alive]
        if left:
            print(f"kafkalike cluster: still running: {left}", file=sys.stderr)
            return 1
        shape = f"{cluster.brokers} combined nodes" if cluster.combined else \
            f"{cluster.controllers} controllers, {cluster.brokers} brokers"
        print(f"cluster in {args.dir} stopped ({shape}); data kept")
        return 0
    if args.json:
        quorum = cluster.quorum()
        print(json.dumps({"mode": "kraft", "bootstrap_servers": cluster.bootstrap_servers,
                          "controller_quorum_voters": cluster.quorum_voters,
                          "quorum": attrs.asdict(quorum) if quorum else None,
                          "processes": [attrs.asdict(s) for s in cluster.status(quorum)]}, indent=2))
    else:
        _print_kraft_status(cluster)
    return 0

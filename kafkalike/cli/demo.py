"""``kafkalike demo``: bring up a local cluster and show it working (the first teaching view).

``kafkalike demo`` (what ./scripts/demo runs) starts — or reuses — a cluster of 3 ZooKeeper
nodes and 3 brokers in .kafkalike, then prints what a learner should look at first: the
processes, the brokers' ephemeral registrations in ZooKeeper, and the controller.
"""

from __future__ import annotations

import argparse
import sys

EXAMPLE = """examples:
  kafkalike demo flights         # 336,776 real flights through the cluster while a broker dies
  kafkalike demo flights --limit 20000
  kafkalike demo flights --exactly-once --limit 20000   # consume-transform-produce with transactions
  kafkalike demo flights --command-config flights.properties   # as a SASL_SSL user (docs/security.md)
  kafkalike demo                 # just bring up 3 ZooKeeper nodes + 3 brokers in .kafkalike
  kafkalike zk tree /brokers     # look at the registrations yourself
  kafkalike cluster down"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="bring up a local cluster and show it working",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("which", nargs="?", choices=["cluster", "flights"], default="cluster",
                   help="cluster (default): bring the cluster up and show it; flights: the flights demo")
    p.add_argument("--dir", default=".kafkalike", help="cluster base directory (default .kafkalike)")
    p.add_argument("--limit", type=int, default=None, help="flights demo: only the first N flights")
    p.add_argument("--no-kill", action="store_true", help="flights demo: do not kill a broker")
    p.add_argument("--exactly-once", action="store_true",
                   help="flights demo: per-airport delay aggregates by consume-transform-produce with a "
                        "transactional producer and read_committed; checks every flight is counted once")
    p.add_argument("--kill-coordinator", action="store_true",
                   help="with --exactly-once: kill the transaction coordinator rather than the busiest leader")
    p.add_argument("--command-config", metavar="FILE",
                   help="flights demo: Kafka client properties (security.protocol, sasl.mechanism, "
                        "sasl.jaas.config, ssl.truststore.*) for every client the demo creates; a SASL_* "
                        "protocol uses the cluster's SASL listener (cluster up --security)")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    if args.which == "flights":
        from kafkalike.cluster.local_cluster import ClusterError
        from kafkalike.cluster.zk_ensemble import ZkEnsembleError
        from kafkalike.cluster.client_properties import ClientProperties, ClientPropertiesError
        from kafkalike.demo.flights import DemoError, run_demo

        try:
            command_config = ClientProperties.load(args.command_config) if args.command_config else None
            if args.exactly_once:
                from kafkalike.demo.exactly_once import run_exactly_once_demo

                return run_exactly_once_demo(args.dir, limit=args.limit, kill=not args.no_kill,
                                             kill_coordinator=args.kill_coordinator, command_config=command_config)
            return run_demo(args.dir, limit=args.limit, kill=not args.no_kill, command_config=command_config)
        except (DemoError, ClusterError, ZkEnsembleError, ClientPropertiesError) as exc:
            print(f"kafkalike demo: {exc}", file=sys.stderr)
            return 1
    return _cluster_demo(args)


def _cluster_demo(args: argparse.Namespace) -> int:
    import trio

    from kafkalike.cluster.local_cluster import ClusterError, LocalCluster
    from kafkalike.cluster.zk_ensemble import ZkEnsembleError
    from kafkalike.coordination import ZooKeeperClient
    from kafkalike.coordination.zk_tree import render, walk

    try:
        cluster = LocalCluster.load(args.dir)
        print(f"== reusing the cluster in {args.dir}")
    except ClusterError:
        cluster = LocalCluster(args.dir, brokers=3, zk_nodes=3)
        print(f"== starting 3 ZooKeeper nodes and 3 brokers in {args.dir}")
    try:
        cluster.start()
    except (ClusterError, ZkEnsembleError, TimeoutError) as exc:
        print(f"kafkalike demo: {exc}", file=sys.stderr)
        return 1

    print("\n== processes (kafkalike cluster status)")
    for s in cluster.status():
        print(f"  {s.role:<10} {s.id}  {s.address:<16} pid {s.pid}  {'alive' if s.alive else 'DEAD'}  {s.detail}")

    async def show() -> str:
        async with ZooKeeperClient(cluster.zk_connect, name="demo") as zk:
            lines = render(await walk(zk, "/brokers/ids"))
            if await zk.exists("/controller") is not None:
                lines += render(await walk(zk, "/controller"))
            return "\n".join("  " + line for line in lines)

    print("\n== each broker's ephemeral registration (kafkalike zk tree /brokers/ids)")
    try:
        print(trio.run(show))
    except Exception as exc:  # /controller may not exist before a controller is elected
        print(f"  ({exc})")
    print(f"\nbootstrap.servers={cluster.bootstrap_servers}")
    print("explore:  kafkalike zk tree /brokers   |   kafkalike cluster status   |   kafkalike cluster down")
    return 0

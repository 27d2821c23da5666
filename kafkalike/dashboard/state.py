"""Snapshots of a local cluster as the dashboard shows it, and the timeline built by diffing
consecutive snapshots.

``collect(cluster, zk)`` reads one ``Snapshot``: the ZooKeeper ensemble (``srvr`` four-letter
word per node), ``/brokers/ids/*`` (czxid = broker epoch, KIP-380), ``/controller`` and
``/controller_epoch``, every ``/brokers/topics/<t>`` assignment and partition ``state`` znode
(leader, leader_epoch, ISR, zkVersion, mtime), each broker's process (LocalCluster's pid
files), and over the Kafka protocol each partition's high watermark (ListOffsets LATEST to
the leader) and the consumer groups (ListGroups, FindCoordinator, DescribeGroups,
OffsetFetch; lag = high watermark - committed offset, as kafka-consumer-groups.sh computes
it). Any part that cannot be read is left empty and named in ``errors``: a cluster that is
down gives a snapshot saying so, never an exception.

``read_znode_tree(zk)`` walks the cluster's whole znode tree (under its chroot), level by
level with pipelined reads: each znode's path, ephemeral or not (its ephemeralOwner), data
version, child version, mtime and the start of its data, for the page's tree view.

``diff(before, after)`` turns two snapshots into timeline ``Event``s, ordered cause first:
ZooKeeper nodes, broker processes, registrations deleted, controller, partition leader /
leader epoch / ISR, registrations created.
"""

from __future__ import annotations

import json
import time
from typing import Any

import attrs
import structlog
import trio

from kafkalike.client.cluster import TopicPartition
from kafkalike.client.kafka_client import LATEST, KafkaClient
from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.cluster.zk_ensemble import four_letter_word, parse_srvr
from kafkalike.coordination import NoNode, ZooKeeperClient
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.kafka_zk_client import KafkaZkClient
from kafkalike.coordination.zookeeper_client import split_connect_string
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.errors import ErrorCode

log = structlog.get_logger(__name__)

#: seconds one snapshot's Kafka-protocol part may take before it is given up for this round
KAFKA_TIMEOUT_S = 3.0
#: Kafka's internal topics (Topic.INTERNAL_TOPICS): the page hides their partitions unless
#: asked, and the timeline sums up their changes in one line per snapshot
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})
#: at most this many consumer groups are described per snapshot
MAX_GROUPS = 20
#: at most this many znodes are read for the tree view per snapshot (the rest is counted)
MAX_ZNODES = 2000
#: characters of a znode's data shown in the tree view
ZNODE_DATA_CHARS = 160


def now_ms() -> int:
    """Wall-clock ms since the epoch."""
    return int(time.time() * 1000)


@attrs.frozen
class Event:
    """One timeline line: ``ts_ms`` (ms since the epoch; a znode's mtime/ctime when the change
    is a znode write, else when the dashboard saw it), ``kind`` (zk | process | broker |
    controller | partition | action | error), ``text``."""

    ts_ms: int
    kind: str
    text: str
    #: True when ``ts_ms`` is a bound, not a znode time: the change happened at or before it
    #: (a deletion is seen by polling; ZooKeeper keeps no time for it)
    at_or_before: bool = False


@attrs.define
class Snapshot:
    """What the page shows at ``taken_ms``; JSON-able through ``to_json``.

    zk_nodes: [{address, up, mode, zxid}]; zk_connected: the dashboard's own session works;
    brokers: {id: {id, address, registered, epoch, pid, alive}}; controller: {id, epoch,
    since_ms} or None; partitions: [{topic, partition, replicas, leader, leader_epoch, isr,
    zk_version, mtime_ms, high_watermark}]; groups: [{group, state, members, lag}];
    errors: [str] (parts that could not be read)."""

    taken_ms: int
    cluster_dir: str
    zk_nodes: list[dict[str, Any]] = attrs.Factory(list)
    zk_connected: bool = False
    brokers: dict[int, dict[str, Any]] = attrs.Factory(dict)
    controller: dict[str, Any] | None = None
    partitions: list[dict[str, Any]] = attrs.Factory(list)
    groups: list[dict[str, Any]] = attrs.Factory(list)
    #: the znode tree, depth first: [{path, ephemeral, owner, version, cversion, mtime_ms,
    #: children, data}] (read_znode_tree); znodes_truncated: more than MAX_ZNODES
    znodes: list[dict[str, Any]] = attrs.Factory(list)
    znodes_truncated: bool = False
    errors: list[str] = attrs.Factory(list)

    def to_json(self) -> dict[str, Any]:
        """A dict for json.dumps (broker ids as strings, as JSON keys are)."""
        d = attrs.asdict(self)
        d["brokers"] = {str(k): v for k, v in self.brokers.items()}
        return d


# ---------------------------------------------------------------------------- collecting

def _zk_nodes(connect: str) -> list[dict[str, Any]]:
    """``srvr`` to every host of the connect string (blocking; run in a thread)."""
    hosts, _ = split_connect_string(connect)
    out = []
    for hp in hosts.split(","):
        host, _, port = hp.rpartition(":")
        try:
            info = parse_srvr(four_letter_word(host, int(port), "srvr", timeout=1.0))
            out.append({"address": hp, "up": bool(info.get("Mode")), "mode": info.get("Mode"),
                        "zxid": info.get("Zxid")})
        except OSError as exc:
            out.append({"address": hp, "up": False, "mode": None, "zxid": None, "error": str(exc)})
    return out


def _processes(cluster: LocalCluster) -> dict[int, tuple[int | None, bool]]:
    """{broker id: (pid from its pid file, alive)} (blocking; run in a thread)."""
    return {i: (cluster.broker_pid(i), cluster.broker_alive(i)) for i in cluster.broker_ids}


async def _read_zk(zk: ZooKeeperClient, snap: Snapshot) -> None:
    """Brokers, controller and partition states from ZooKeeper into ``snap``."""
    kz = KafkaZkClient(zk)
    for broker_id, reg in (await kz.get_all_brokers()).items():
        b = snap.brokers.setdefault(broker_id, {"id": broker_id})
        eps = reg.registration.endpoints
        b.update(registered=True, epoch=reg.broker_epoch,
                 address=f"{eps[0].host}:{eps[0].port}" if eps else b.get("address"))
    try:
        data, stat = await zk.get(zd.CONTROLLER_PATH)
        controller_id = zd.ControllerZNode.from_json(data).broker_id
        epoch = await kz.get_controller_epoch()
        snap.controller = {"id": controller_id, "epoch": epoch.epoch if epoch else None,
                           "since_ms": stat.ctime_ms}
    except NoNode:
        snap.controller = None
    tps: list[tuple[str, int, list[int]]] = []
    for topic in sorted(await kz.get_all_topics()):
        got = await kz.get_topic_assignment(topic)
        if got is None:
            continue
        for p, replicas in sorted(got[0].partitions.items()):
            tps.append((topic, p, list(getattr(replicas, "replicas", replicas))))
    states = await zk.get_many([zd.partition_state_path(t, p) for t, p, _ in tps])
    for (topic, p, replicas), got in zip(tps, states):
        row: dict[str, Any] = {"topic": topic, "partition": p, "internal": topic in INTERNAL_TOPICS,
                               "replicas": replicas, "leader": None,
                               "leader_epoch": None, "isr": [], "zk_version": None, "mtime_ms": None,
                               "high_watermark": None}
        if got is not None:
            st = zd.LeaderIsrAndControllerEpoch.from_json(got[0], got[1].version)
            row.update(leader=st.leader, leader_epoch=st.leader_epoch, isr=list(st.isr),
                       zk_version=st.zk_version, mtime_ms=got[1].mtime_ms)
        snap.partitions.append(row)


#: {path: (cversion, pzxid, children)} kept between walks: a znode's children are listed again
#: only when its Stat says they changed
ChildrenCache = dict[str, tuple[int, int, list[str]]]


async def read_znode_tree(zk: ZooKeeperClient, limit: int = MAX_ZNODES,
                          cache: ChildrenCache | None = None) -> tuple[list[dict[str, Any]], bool]:
    """The znode tree under the client's chroot, depth-first sorted by path: (znodes, truncated).
    Each level's data and stats come in one pipelined batch (``get_many``); children are listed
    only for znodes whose stat says they have some, and (with ``cache``, updated in place) only
    when the stat's cversion/pzxid moved since the last walk. A znode deleted while walking is
    left out. Raises what the client raises (ConnectionLoss, ...)."""
    cache = {} if cache is None else cache
    out: dict[str, dict[str, Any]] = {}
    level = ["/"]
    truncated = False
    while level:
        if len(out) + len(level) > limit:
            level, truncated = level[:max(0, limit - len(out))], True
        got = await zk.get_many(level)
        parents: list[str] = []
        stale: list[tuple[str, int, int]] = []
        for path, item in zip(level, got):
            if item is None:
                continue
            data, stat = item
            out[path] = {"path": path, "ephemeral": stat.ephemeral_owner != 0,
                         "owner": f"0x{stat.ephemeral_owner:x}" if stat.ephemeral_owner else None,
                         "version": stat.version, "cversion": stat.cversion, "mtime_ms": stat.mtime_ms,
                         "children": stat.num_children,
                         "data": data[:ZNODE_DATA_CHARS].decode("utf-8", "replace") if data else ""}
            if stat.num_children:
                parents.append(path)
                known = cache.get(path)
                if known is not None and known[:2] == (stat.cversion, stat.pzxid):
                    continue
                stale.append((path, stat.cversion, stat.pzxid))
        children: dict[str, list[str]] = {p: cache[p][2] for p in parents if p in cache}
        limiter = trio.Semaphore(16)

        async def list_children(path: str, cversion: int, pzxid: int) -> None:
            async with limiter:
                try:
                    children[path] = await zk.get_children(path)
                    cache[path] = (cversion, pzxid, children[path])
                except NoNode:
                    children.pop(path, None)
                    cache.pop(path, None)

        async with trio.open_nursery() as nursery:
            for path, cversion, pzxid in stale:
                nursery.start_soon(list_children, path, cversion, pzxid)
        level = [("" if p == "/" else p) + "/" + c for p in parents for c in sorted(children.get(p, []))]
        if truncated:
            break
    return [out[p] for p in sorted(out, key=lambda p: p.split("/"))], truncated


async def _read_kafka(bootstrap: list[str], snap: Snapshot) -> None:
    """High watermarks and consumer groups over the Kafka protocol into ``snap``."""
    async with KafkaClient(bootstrap, client_id="kafkalike-dashboard", request_timeout_ms=2000,
                           connect_timeout_ms=1000, retries=1, retry_backoff_ms=100) as client:
        led = [r for r in snap.partitions if r["leader"] is not None and r["leader"] >= 0]
        hws: dict[TopicPartition, int] = {}
        if led:
            try:
                got = await client.list_offsets({TopicPartition(r["topic"], r["partition"]): LATEST for r in led})
                hws = {tp: o.offset for tp, o in got.items()}
            except Exception as exc:  # a partition without a live leader: leave its HW empty
                snap.errors.append(f"ListOffsets: {exc}")
        for r in snap.partitions:
            r["high_watermark"] = hws.get(TopicPartition(r["topic"], r["partition"]))
        group_ids: set[str] = set()
        for node_id in sorted(client.cluster.brokers):
            try:
                conn = await client.connection(node_id)
                resp = await conn.call(ApiKey.LIST_GROUPS, states_filter=[])
                group_ids.update(g.group_id for g in resp.groups)
            except Exception as exc:
                snap.errors.append(f"ListGroups to broker {node_id}: {exc}")
        for group in sorted(group_ids)[:MAX_GROUPS]:
            snap.groups.append(await _describe_group(client, group, hws))


async def _describe_group(client: KafkaClient, group: str, hws: dict[TopicPartition, int]) -> dict[str, Any]:
    """{group, state, members, lag} of one group (lag None when not computable)."""
    out: dict[str, Any] = {"group": group, "state": "?", "members": 0, "lag": None, "coordinator": None}
    try:
        conn = await client.any_connection()
        fc = await conn.call(ApiKey.FIND_COORDINATOR, key=group, key_type=0)
        if fc.error_code != ErrorCode.none:
            out["state"] = fc.error_code.name.upper()
            return out
        out["coordinator"] = int(fc.node_id)
        if client.broker(fc.node_id) is None:
            await client.refresh_metadata()
        coord = await client.connection(fc.node_id)
        d = await coord.call(ApiKey.DESCRIBE_GROUPS, groups=[group], include_authorized_operations=False)
        g = d.groups[0]
        out["state"] = g.group_state if g.error_code == ErrorCode.none else g.error_code.name.upper()
        out["members"] = len(g.members)
        f = await coord.call(ApiKey.OFFSET_FETCH, group_id=group, topics=None, require_stable=False)
        lag = 0
        for t in f.topics:
            for p in t.partitions:
                hw = hws.get(TopicPartition(t.name, int(p.partition_index)))
                if int(p.committed_offset) >= 0 and hw is not None:
                    lag += max(0, hw - int(p.committed_offset))
        out["lag"] = lag
    except Exception as exc:
        out["state"] = f"unreachable ({exc})"
    return out


async def collect(cluster: LocalCluster, zk: ZooKeeperClient | None,
                  tree_cache: ChildrenCache | None = None) -> Snapshot:
    """One snapshot of ``cluster``; ``zk`` a started client on ``cluster.zk_connect`` (or None
    when ZooKeeper cannot be reached); ``tree_cache``: read_znode_tree's, kept by the caller.
    Never raises for an unreachable cluster: what could not
    be read is named in ``errors``."""
    snap = Snapshot(taken_ms=now_ms(), cluster_dir=str(cluster.base_dir))
    for i in cluster.broker_ids:
        snap.brokers[i] = {"id": i, "address": cluster.broker_address(i), "registered": False,
                           "epoch": None, "pid": None, "alive": False}
    snap.zk_nodes = await trio.to_thread.run_sync(_zk_nodes, cluster.zk_connect)
    for i, (pid, alive) in (await trio.to_thread.run_sync(_processes, cluster)).items():
        snap.brokers[i].update(pid=pid, alive=alive)
    if zk is None:
        snap.errors.append("ZooKeeper: not connected")
        return snap
    try:
        with trio.fail_after(KAFKA_TIMEOUT_S):
            await _read_zk(zk, snap)
        snap.zk_connected = True
    except Exception as exc:
        snap.errors.append(f"ZooKeeper: {type(exc).__name__} {exc}")
        return snap
    try:
        with trio.fail_after(KAFKA_TIMEOUT_S):
            snap.znodes, snap.znodes_truncated = await read_znode_tree(zk, cache=tree_cache)
    except Exception as exc:
        snap.errors.append(f"ZooKeeper tree: {type(exc).__name__} {exc}")
    bootstrap = [b["address"] for b in snap.brokers.values() if b.get("registered") and b.get("address")]
    if bootstrap:
        with trio.move_on_after(KAFKA_TIMEOUT_S) as scope:
            try:
                await _read_kafka(bootstrap, snap)
            except Exception as exc:
                snap.errors.append(f"Kafka: {type(exc).__name__} {exc}")
        if scope.cancelled_caught:
            snap.errors.append(f"Kafka: no answer within {KAFKA_TIMEOUT_S:g} s")
    return snap


# ---------------------------------------------------------------------------- timeline

def _arrow(a: Any, b: Any) -> str:
    return f"{json.dumps(a)}\u2192{json.dumps(b)}"


def diff(before: Snapshot | None, after: Snapshot) -> list[Event]:
    """Timeline events for what changed from ``before`` to ``after`` (cause first; see the
    module doc). ``before`` None: the first snapshot, summarised in one event."""
    seen = after.taken_ms
    if before is None:
        regs = sorted(i for i, b in after.brokers.items() if b.get("registered"))
        ctl = after.controller
        return [Event(seen, "zk", f"watching {after.cluster_dir}: brokers registered {regs}, "
                                  f"controller {ctl['id'] if ctl else 'none'}"
                                  f"{' (epoch %s)' % ctl['epoch'] if ctl else ''}, "
                                  f"{len(after.partitions)} partitions")]
    events: list[Event] = []
    old_zk = {n["address"]: n for n in before.zk_nodes}
    for n in after.zk_nodes:
        o = old_zk.get(n["address"])
        if o and (o["up"], o["mode"]) != (n["up"], n["mode"]):
            events.append(Event(seen, "zk", f"ZooKeeper {n['address']}: "
                                            f"{o['mode'] or 'down'} \u2192 {n['mode'] or 'down'}"))
    if before.zk_connected != after.zk_connected:
        events.append(Event(seen, "zk", "dashboard's ZooKeeper session " +
                            ("connected" if after.zk_connected else "lost")))
    if not after.zk_connected:
        return events  # nothing below was read: no news is not a deletion
    for i, b in sorted(after.brokers.items()):
        o = before.brokers.get(i, {})
        if o.get("alive") and not b["alive"]:
            events.append(Event(seen, "process", f"broker {i} process (pid {o.get('pid')}) is gone"))
        elif not o.get("alive") and b["alive"]:
            events.append(Event(seen, "process", f"broker {i} process running (pid {b.get('pid')})"))
    for i, b in sorted(after.brokers.items()):
        o = before.brokers.get(i, {})
        if o.get("registered") and not b.get("registered") and before.zk_connected:
            why = "session expired: its process is gone" if not b["alive"] else "session closed"
            events.append(Event(seen, "broker", f"/brokers/ids/{i} deleted ({why}; broker epoch "
                                                f"{o.get('epoch')} ends)"))
    oc, nc = before.controller, after.controller
    if (oc or {}).get("id") != (nc or {}).get("id") or (oc or {}).get("epoch") != (nc or {}).get("epoch"):
        if nc is None:
            events.append(Event(seen, "controller", f"/controller deleted (was broker {oc['id'] if oc else '?'})"))
        else:
            was = f"broker {oc['id']}, epoch {oc['epoch']}" if oc else "none"
            events.append(Event(nc.get("since_ms") or seen, "controller",
                                f"/controller: broker {nc['id']} elected, controller epoch {nc['epoch']} "
                                f"(was {was})"))
    old_parts = {(r["topic"], r["partition"]): r for r in before.partitions}
    internal: dict[str, list[int]] = {}  # topic -> [partitions changed, of which leader moved, first mtime]
    for r in after.partitions:
        o = old_parts.get((r["topic"], r["partition"]))
        name = f"{r['topic']}-{r['partition']}"
        if o is None:
            if r["topic"] in INTERNAL_TOPICS:
                agg = internal.setdefault(r["topic"], [0, 0, r["mtime_ms"] or seen])
                agg[0] += 1
                continue
            if before.partitions or r["leader"] is not None:
                events.append(Event(r["mtime_ms"] or seen, "partition",
                                    f"partition {name} created: replicas {r['replicas']}, leader {r['leader']}, "
                                    f"ISR {r['isr']}"))
            continue
        parts = []
        if o["leader"] != r["leader"]:
            parts.append(f"leader {_arrow(o['leader'], r['leader'])}")
        if o["leader_epoch"] != r["leader_epoch"]:
            parts.append(f"leader_epoch {_arrow(o['leader_epoch'], r['leader_epoch'])}")
        if o["isr"] != r["isr"]:
            parts.append(f"ISR {_arrow(o['isr'], r['isr'])}")
        if parts and r["topic"] in INTERNAL_TOPICS:
            agg = internal.setdefault(r["topic"], [0, 0, r["mtime_ms"] or seen])
            agg[0] += 1
            agg[1] += o["leader"] != r["leader"]
            agg[2] = min(agg[2], r["mtime_ms"] or seen)
        elif parts:
            events.append(Event(r["mtime_ms"] or seen, "partition", f"partition {name} " + ", ".join(parts)))
    for topic, (changed, moved, first) in sorted(internal.items()):
        events.append(Event(first, "partition", f"{topic}: {changed} partitions changed state "
                                                f"(leader moved in {moved})"))
    for i, b in sorted(after.brokers.items()):
        o = before.brokers.get(i, {})
        if b.get("registered") and not o.get("registered"):
            events.append(Event(seen, "broker", f"/brokers/ids/{i} created (broker epoch {b.get('epoch')})"))
        elif b.get("registered") and o.get("registered") and o.get("epoch") != b.get("epoch"):
            events.append(Event(seen, "broker", f"/brokers/ids/{i} re-registered: broker epoch "
                                                f"{o.get('epoch')}\u2192{b.get('epoch')}"))
    return _bound_times(events, seen)


def _bound_times(events: list[Event], seen: int) -> list[Event]:
    """Give each event without a znode time (ts_ms == seen) the earliest znode time of the
    events after it in the batch (its effects), when that is earlier, marked at_or_before:
    e.g. a broker's registration was gone before the controller rewrote the partition states
    it triggered."""
    out: list[Event] = []
    later = seen
    for e in reversed(events):
        if e.ts_ms == seen and later < seen:
            e = attrs.evolve(e, ts_ms=later, at_or_before=True)
        later = min(later, e.ts_ms)
        out.append(e)
    return out[::-1]

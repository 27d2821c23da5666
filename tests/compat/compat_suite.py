"""The operator compatibility suite (issue 17): every Kafka tool and admin-client call an operator
uses, run against one 3-broker kafkalike cluster (real broker processes, two log dirs each),
each recorded as a row: client, call, Kafka API, WORKS / FAILS, what it showed.

Clients: Apache Kafka 3.9's own command-line tools (the reference jars, run as
``java -cp <lib>/* <tool class>``, exactly what the kafka-*.sh scripts run), confluent-kafka's
AdminClient (librdkafka), kafka-python's KafkaAdminClient and franz-go's kadm (tests/compat/kadm,
built with ``go build`` from the Go module proxy). tests/compat/test_compat_suite.py runs it
(the Java tools with KAFKALIKE_KAFKA_LIB; the Python clients and kadm with the jars or
KAFKALIKE_SLOW=1) and asserts every row works; ``KAFKALIKE_COMPAT_TABLE=<file>`` also writes the table (Markdown) there, which is
what docs/compatibility.md shows.

Each check is a function ``(suite) -> note``; it raises (AssertionError with the tool's output,
or the client's exception) when the call does not do what Kafka's broker would.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from kafkalike.cluster.local_cluster import LocalCluster


@attrs.frozen
class Row:
    """One call: who made it, what it was, which Kafka API it needs, did it work, note."""

    client: str
    call: str
    api: str
    works: bool
    note: str


class TwoDirCluster(LocalCluster):
    """A LocalCluster whose brokers each have two log dirs (``logs`` and ``logs2``), so
    AlterReplicaLogDirs and kafka-log-dirs.sh have something to show."""

    def server_properties(self, broker_id: int) -> dict[str, str]:
        props = super().server_properties(broker_id)
        props["log.dirs"] = f"{self.broker_dir(broker_id) / 'logs'},{self.broker_dir(broker_id) / 'logs2'}"
        return props

    def log_dirs(self, broker_id: int) -> list[Path]:
        return [self.broker_dir(broker_id) / "logs", self.broker_dir(broker_id) / "logs2"]


def expect(out: subprocess.CompletedProcess[str], *patterns: str) -> str:
    """The tool's stdout when it exited 0 and every regex pattern occurs in stdout+stderr;
    else AssertionError with the tail of its output."""
    text = out.stdout + out.stderr
    missing = [p for p in patterns if not re.search(p, text, re.M)]
    if out.returncode != 0 or missing:
        err = "\n".join(line for line in out.stderr.splitlines() if not line.startswith("log4j:"))
        raise AssertionError(f"exit {out.returncode}, missing {missing}: stdout {out.stdout.strip()[-300:]!r} "
                             f"stderr {err.strip()[-300:]!r}")
    return out.stdout


class Suite:
    """Runs the checks against ``cluster``; ``lib``: the Kafka 3.9 jars (None: no Java rows)."""

    def __init__(self, cluster: TwoDirCluster, lib: Path | None, work: Path) -> None:
        self.cluster = cluster
        self.lib = lib
        self.work = work
        self.bootstrap = cluster.bootstrap_servers
        self.rows: list[Row] = []
        self.suffix = uuid.uuid4().hex[:6]

    # ------------------------------------------------------------------ plumbing
    def run(self, client: str, call: str, api: str, check: Callable[[Suite], str]) -> Row:
        """Run one check and record its row (an exception is a FAILS row with its message)."""
        try:
            note, works = check(self), True
        except Exception as exc:  # the row records what went wrong
            note, works = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}", False
        row = Row(client, call, api, works, note)
        self.rows.append(row)
        return row

    def java(self, cls: str, *args: str, stdin: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """One Kafka 3.9 tool run (the class its kafka-*.sh script starts)."""
        assert self.lib is not None
        return subprocess.run(["java", "-Xmx256m", "-cp", f"{self.lib}/*", cls, *args], input=stdin,
                              capture_output=True, text=True, timeout=timeout)

    def topic(self, name: str) -> str:
        return f"{name}-{self.suffix}"

    def leader(self, topic: str, partition: int) -> int:
        from confluent_kafka.admin import AdminClient

        md = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(topic, timeout=20)
        return int(md.topics[topic].partitions[partition].leader)

    def replicas(self, topic: str, partition: int) -> list[int]:
        from confluent_kafka.admin import AdminClient

        md = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(topic, timeout=20)
        return [int(r) for r in md.topics[topic].partitions[partition].replicas]

    def wait_for(self, what: str, cond: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.25)
        raise AssertionError(f"{what} did not happen in {timeout:g} s")

    def table(self) -> str:
        """The rows as a Markdown table."""
        lines = ["| client | call | Kafka API | works | notes |", "|---|---|---|---|---|"]
        for r in self.rows:
            note = r.note.replace("|", "\\|")
            lines.append(f"| {r.client} | {r.call} | {r.api} | {'WORKS' if r.works else 'FAILS'} | {note} |")
        return "\n".join(lines)


# ---------------------------------------------------------------------- set-up shared by the checks
def setup(s: Suite) -> None:
    """Topics ``ops`` (3 partitions, RF 3; idempotent records, a committed group), ``ts`` (a
    batch whose max timestamp is in its middle), ``rt`` (RF 1, to move), ``seg`` (small
    segments: rolled, so .snapshot files exist) and ``gone`` (deleted later)."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka import TopicPartition as CTP

    from tests.fixtures_cluster import create_topic

    create_topic(s.bootstrap, s.topic("ops"), 3, 3, leaders_within=60)
    create_topic(s.bootstrap, s.topic("ts"), 1, 3, leaders_within=60)
    create_topic(s.bootstrap, s.topic("rt"), 1, 1, leaders_within=60)
    create_topic(s.bootstrap, s.topic("seg"), 1, 3, configs={"segment.bytes": "2000"}, leaders_within=60)
    create_topic(s.bootstrap, s.topic("gone"), 1, 3, leaders_within=60)
    p = Producer({"bootstrap.servers": s.bootstrap, "enable.idempotence": True, "linger.ms": 50})
    for part in range(3):
        for i in range(10):
            p.produce(s.topic("ops"), value=b"v%d" % i, key=b"k%d" % i, partition=part)
    for i in range(10):
        p.produce(s.topic("rt"), value=b"r%d" % i, partition=0)
        p.produce(s.topic("gone"), value=b"g%d" % i, partition=0)
    p.flush(30)
    for i in range(60):  # one batch each, so that the 2000-byte segments roll
        p.produce(s.topic("seg"), value=b"s" * 100, key=b"k%d" % i, partition=0)
        p.flush(30)
    # one batch, timestamps 1000, 5000, 2000: the max timestamp is the middle record's
    p2 = Producer({"bootstrap.servers": s.bootstrap, "linger.ms": 500, "batch.num.messages": 3})
    for ts in (1_700_000_001_000, 1_700_000_005_000, 1_700_000_002_000):
        p2.produce(s.topic("ts"), value=b"t", partition=0, timestamp=ts)
    p2.flush(30)
    for group, topics in ((s.topic("g-del"), [s.topic("ops")]), (s.topic("grp-deleted"), [s.topic("ops"), s.topic("gone")]),
                          (s.topic("grp-kadm"), [s.topic("ops")])):
        c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": group, "enable.auto.commit": False})
        c.commit(offsets=[CTP(t, 0, 5) for t in topics], asynchronous=False)
        c.close()


# ---------------------------------------------------------------------- Kafka 3.9's tools
def j_topics(s: Suite) -> str:
    t = s.topic("jt")
    expect(s.java("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", s.bootstrap, "--create", "--topic", t,
                  "--partitions", "2", "--replication-factor", "3"), f"Created topic {t}")
    expect(s.java("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", s.bootstrap, "--describe", "--topic", t),
           r"PartitionCount: 2\s+ReplicationFactor: 3")
    return "create, describe"


def j_console(s: Suite) -> str:
    t = s.topic("ops")
    expect(s.java("kafka.tools.ConsoleProducer", "--bootstrap-server", s.bootstrap, "--topic", t,
                  "--property", "parse.key=true", "--property", "key.separator=:", stdin="ck1:hello\nck2:world\n"))
    out = expect(s.java("org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", s.bootstrap, "--topic", t,
                        "--from-beginning", "--max-messages", "32", "--timeout-ms", "30000"), "hello", "world")
    return f"produced 2 lines, consumed {len(out.splitlines())}"


def j_reassign(s: Suite) -> str:
    t = s.topic("rt")
    src = s.replicas(t, 0)[0]
    dst = next(b for b in s.cluster.broker_ids if b != src)
    plan = s.work / "reassign.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": t, "partition": 0, "replicas": [dst]}]}))
    cmd = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
    expect(s.java(cmd, "--bootstrap-server", s.bootstrap, "--execute", "--reassignment-json-file", str(plan)),
           "Successfully started partition reassignment")
    expect(s.java(cmd, "--bootstrap-server", s.bootstrap, "--list"),
           r"Current partition reassignments|No partition reassignments found")

    def verified() -> bool:
        out = s.java(cmd, "--bootstrap-server", s.bootstrap, "--verify", "--reassignment-json-file", str(plan))
        return out.returncode == 0 and f"Reassignment of partition {t}-0 is completed" in out.stdout
    s.wait_for("reassignment", verified)
    return f"{t}-0 moved from broker {src} to {dst}: --execute, --list, --verify"


def j_reassign_log_dirs(s: Suite) -> str:
    t = s.topic("rt")
    b = s.replicas(t, 0)[0]
    d = s.cluster.log_dirs(b)
    where = next(x for x in d if (x / f"{t}-0").exists())
    dest = d[1] if where == d[0] else d[0]
    plan = s.work / "reassign-dirs.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": t, "partition": 0, "replicas": [b], "log_dirs": [str(dest)]}]}))
    cmd = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
    expect(s.java(cmd, "--bootstrap-server", s.bootstrap, "--execute", "--reassignment-json-file", str(plan)),
           "Successfully started partition reassignment")

    def verified() -> bool:
        out = s.java(cmd, "--bootstrap-server", s.bootstrap, "--verify", "--reassignment-json-file", str(plan))
        return out.returncode == 0 and f"Reassignment of replica {t}-0-{b} completed successfully" in out.stdout
    s.wait_for("log dir move", verified)
    assert (dest / f"{t}-0").is_dir() and not (where / f"{t}-0").exists()
    return f"replica {t}-0-{b} moved to its other log dir (AlterReplicaLogDirs, a -future log swapped in)"


def j_log_dirs(s: Suite) -> str:
    out = expect(s.java("org.apache.kafka.tools.LogDirsCommand", "--bootstrap-server", s.bootstrap, "--describe",
                        "--broker-list", "1,2,3"), r'"logDirs"')
    answer = json.loads(out.strip().splitlines()[-1])
    dirs = [d for b in answer["brokers"] for d in b["logDirs"]]
    assert len(dirs) == 6 and all(d["error"] is None for d in dirs), dirs
    parts = sum(len(d["partitions"]) for d in dirs)
    return f"3 brokers x 2 log dirs, {parts} replicas with size and offsetLag"


def _election(s: Suite, *args: str) -> str:
    out = expect(s.java("org.apache.kafka.tools.LeaderElectionCommand", "--bootstrap-server", s.bootstrap, *args),
                 r"Successfully completed leader election|Valid replica already elected")
    return out.strip().splitlines()[0][:100]


def j_election_preferred(s: Suite) -> str:
    return _election(s, "--election-type", "preferred", "--topic", s.topic("ops"), "--partition", "0")


def j_election_unclean(s: Suite) -> str:
    return _election(s, "--election-type", "unclean", "--topic", s.topic("ops"), "--partition", "1")


def j_election_all(s: Suite) -> str:
    out = expect(s.java("org.apache.kafka.tools.LeaderElectionCommand", "--bootstrap-server", s.bootstrap,
                        "--election-type", "preferred", "--all-topic-partitions"))
    # as Kafka's controller does for "all partitions", partitions already led by their
    # preferred replica are left out of the answer, so the tool prints nothing for them
    assert out.strip() == "" or "Successfully completed leader election" in out, out
    return out.strip().splitlines()[0][:100] if out.strip() else "exit 0; nothing needed electing (no output, as Kafka)"


def j_delete_records(s: Suite) -> str:
    f = s.work / "delete-records.json"
    f.write_text(json.dumps({"version": 1, "partitions": [{"topic": s.topic("ops"), "partition": 1, "offset": 3}]}))
    expect(s.java("org.apache.kafka.tools.DeleteRecordsCommand", "--bootstrap-server", s.bootstrap,
                  "--offset-json-file", str(f)), rf"partition: {s.topic('ops')}-1\s+low_watermark: 3")
    return "low_watermark: 3"


def j_broker_configs(s: Suite) -> str:
    cmd = "kafka.admin.ConfigCommand"
    expect(s.java(cmd, "--bootstrap-server", s.bootstrap, "--alter", "--entity-type", "brokers", "--entity-name", "1",
                  "--add-config", "log.cleaner.threads=2"), "Completed updating config for broker 1")
    expect(s.java(cmd, "--bootstrap-server", s.bootstrap, "--describe", "--entity-type", "brokers", "--entity-name", "1"),
           r"log.cleaner.threads=2 sensitive=false synonyms=\{DYNAMIC_BROKER_CONFIG:log.cleaner.threads=2")
    expect(s.java(cmd, "--bootstrap-server", s.bootstrap, "--alter", "--entity-type", "brokers", "--entity-default",
                  "--add-config", "log.retention.ms=604800001"), "Completed updating default config for brokers")
    expect(s.java(cmd, "--bootstrap-server", s.bootstrap, "--alter", "--entity-type", "brokers", "--entity-name", "1",
                  "--delete-config", "log.cleaner.threads"), "Completed updating config for broker 1")
    expect(s.java(cmd, "--bootstrap-server", s.bootstrap, "--alter", "--entity-type", "brokers", "--entity-default",
                  "--delete-config", "log.retention.ms"), "Completed updating default config for brokers")
    return "--entity-name 1 and --entity-default: add, describe (DYNAMIC_BROKER_CONFIG synonym), delete"


def j_delete_offsets(s: Suite) -> str:
    expect(s.java("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", "--bootstrap-server", s.bootstrap,
                  "--delete-offsets", "--group", s.topic("g-del"), "--topic", s.topic("ops")),
           r"Request succeed for deleting offsets", r"Successful")
    return "OffsetDelete of an empty group's committed offsets"


def j_get_offsets(s: Suite) -> str:
    t = s.topic("ts")
    cmd = "org.apache.kafka.tools.GetOffsetShell"
    out4 = expect(s.java(cmd, "--bootstrap-server", s.bootstrap, "--topic", t, "--time", "-4"), rf"^{t}:0:0$")
    out3 = expect(s.java(cmd, "--bootstrap-server", s.bootstrap, "--topic", t, "--time", "-3"), rf"^{t}:0:1$")
    return f"-4 (earliest-local): {out4.strip()}; -3 (max timestamp, the middle record): {out3.strip()}"


def j_describe_producers(s: Suite) -> str:
    out = expect(s.java("org.apache.kafka.tools.TransactionsCommand", "--bootstrap-server", s.bootstrap,
                        "describe-producers", "--topic", s.topic("ops"), "--partition", "0"),
                 r"ProducerId\s+ProducerEpoch\s+LatestCoordinatorEpoch\s+LastSequence", r"^\d+\s+\d+\s+-1\s+9\s")
    return f"{len(out.strip().splitlines()) - 1} producer(s), last sequence 9"


def j_deleted_topic_offsets(s: Suite) -> str:
    from kafka import KafkaAdminClient

    a = KafkaAdminClient(bootstrap_servers=s.bootstrap)
    try:
        a.delete_topics([s.topic("gone")])
    finally:
        a.close()
    cmd = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"

    last: list[str] = []

    def described() -> bool:
        out = s.java(cmd, "--bootstrap-server", s.bootstrap, "--describe", "--group", s.topic("grp-deleted"))
        gone_rows = [line for line in out.stdout.splitlines() if line.split()[1:2] == [s.topic("gone")]]
        last[:] = [" / ".join(" ".join(r.split()) for r in gone_rows)[:200],
                   " ".join(x for x in out.stderr.split() if "Exception" in x)[:200]]
        return out.returncode == 0 and not gone_rows and s.topic("ops") in out.stdout \
            and "Exception" not in out.stdout + out.stderr
    try:
        s.wait_for("describe without the deleted topic", described, timeout=30)
    except AssertionError:
        raise AssertionError(f"after 30 s the deleted topic's rows are still there: {last[0]!r}, errors {last[1]!r}") from None
    return "--describe works; the deleted topic's offsets are gone"


def j_dump_log(s: Suite) -> str:
    t = s.topic("seg")
    b = s.leader(t, 0)
    pdir = next(d / f"{t}-0" for d in s.cluster.log_dirs(b) if (d / f"{t}-0").exists())
    logs = sorted(pdir.glob("*.log"))
    assert len(logs) >= 3, logs
    rolled = logs[-2]  # the active segment's indexes are preallocated while it is written, as in Kafka
    files = [str(rolled.with_suffix(".index")), str(rolled.with_suffix(".timeindex"))]
    out = expect(s.java("kafka.tools.DumpLogSegments", "--files", ",".join(files), "--verify-index-only"))
    assert "Mismatches" not in out and "Exception" not in out, out[-500:]
    out = expect(s.java("kafka.tools.DumpLogSegments", "--files", str(logs[-1])), r"isValid: true|isvalid: true")
    assert "isvalid: false" not in out
    snaps = sorted(pdir.glob("*.snapshot"))
    assert snaps, f"no .snapshot in {pdir}"
    out = expect(s.java("kafka.tools.DumpLogSegments", "--files", str(snaps[-1])), r"producerId: \d+ producerEpoch")
    assert (pdir / "partition.metadata").exists()
    return (f"live broker: {rolled.name}'s .index/.timeindex verified, active {logs[-1].name} read, "
            f"{snaps[-1].name} read; partition.metadata present")


JAVA_CHECKS: list[tuple[str, str, Callable[[Suite], str]]] = [
    ("kafka-topics.sh --create / --describe", "CreateTopics, Metadata", j_topics),
    ("kafka-console-producer.sh / kafka-console-consumer.sh", "Produce, Fetch, groups", j_console),
    ("kafka-reassign-partitions.sh --execute / --list / --verify", "AlterPartitionReassignments, ListPartitionReassignments", j_reassign),
    ("kafka-reassign-partitions.sh with log_dirs", "AlterReplicaLogDirs, DescribeLogDirs", j_reassign_log_dirs),
    ("kafka-log-dirs.sh --describe", "DescribeLogDirs", j_log_dirs),
    ("kafka-leader-election.sh --election-type preferred --topic --partition", "ElectLeaders", j_election_preferred),
    ("kafka-leader-election.sh --election-type unclean --topic --partition", "ElectLeaders", j_election_unclean),
    ("kafka-leader-election.sh --election-type preferred --all-topic-partitions", "ElectLeaders", j_election_all),
    ("kafka-delete-records.sh", "DeleteRecords", j_delete_records),
    ("kafka-configs.sh --alter --entity-type brokers", "IncrementalAlterConfigs, DescribeConfigs", j_broker_configs),
    ("kafka-consumer-groups.sh --delete-offsets", "OffsetDelete", j_delete_offsets),
    ("kafka-get-offsets.sh --time -4 / -3", "ListOffsets v8-9", j_get_offsets),
    ("kafka-transactions.sh describe-producers", "DescribeProducers", j_describe_producers),
    ("kafka-consumer-groups.sh --describe after a topic deletion", "OffsetFetch, DeleteTopics", j_deleted_topic_offsets),
    ("kafka-dump-log.sh on a live segment and a .snapshot", "(files)", j_dump_log),
]


# ---------------------------------------------------------------------- confluent-kafka
def c_delete_records(s: Suite) -> str:
    from confluent_kafka import TopicPartition as CTP
    from confluent_kafka.admin import AdminClient

    a = AdminClient({"bootstrap.servers": s.bootstrap})
    res = a.delete_records([CTP(s.topic("ops"), 2, 4)])
    (fut,) = res.values()
    info = fut.result(30)
    assert info.low_watermark == 4, info
    return f"low_watermark {info.low_watermark}"


def c_elect_leaders(s: Suite) -> str:
    from confluent_kafka import ElectionType
    from confluent_kafka import TopicPartition as CTP
    from confluent_kafka.admin import AdminClient

    a = AdminClient({"bootstrap.servers": s.bootstrap})
    result = a.elect_leaders(ElectionType.PREFERRED, [CTP(s.topic("ops"), 0)]).result(30)
    (tp,) = result
    code = tp.error.name() if tp.error is not None else "NONE"
    assert code in ("NONE", "ELECTION_NOT_NEEDED"), code
    return f"preferred election of {s.topic('ops')}-0: {code}"


def c_list_offsets(s: Suite) -> str:
    from confluent_kafka import TopicPartition as CTP
    from confluent_kafka.admin import AdminClient, OffsetSpec

    a = AdminClient({"bootstrap.servers": s.bootstrap})
    tp = CTP(s.topic("ts"), 0)
    got = {name: a.list_offsets({tp: spec})[tp].result(30).offset
           for name, spec in (("earliest", OffsetSpec.earliest()), ("latest", OffsetSpec.latest()),
                              ("max_timestamp", OffsetSpec.max_timestamp()))}
    assert got == {"earliest": 0, "latest": 3, "max_timestamp": 1}, got
    return f"{got}"


def c_broker_configs(s: Suite) -> str:
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                       ResourceType)

    a = AdminClient({"bootstrap.servers": s.bootstrap})
    res = ConfigResource(ResourceType.BROKER, "2", incremental_configs=[
        ConfigEntry("log.cleaner.threads", "2", incremental_operation=AlterConfigOpType.SET)])
    for fut in a.incremental_alter_configs([res]).values():
        fut.result(30)
    seen: list[Any] = []

    def applied() -> bool:  # Kafka applies it when the broker sees the /config/changes notification
        described = a.describe_configs([ConfigResource(ResourceType.BROKER, "2")])
        e = next(iter(described.values())).result(30)["log.cleaner.threads"]
        seen[:] = [e.value, e.source]
        return e.value == "2" and e.source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    try:
        s.wait_for("the dynamic config", applied, timeout=30)
    except AssertionError:
        raise AssertionError(f"log.cleaner.threads after the change: value, source = {seen}") from None
    res = ConfigResource(ResourceType.BROKER, "2", incremental_configs=[
        ConfigEntry("log.cleaner.threads", "", incremental_operation=AlterConfigOpType.DELETE)])
    for fut in a.incremental_alter_configs([res]).values():
        fut.result(30)
    return "SET/DELETE log.cleaner.threads on broker 2; source DYNAMIC_BROKER_CONFIG"


def c_describe_cluster(s: Suite) -> str:
    from confluent_kafka.admin import AdminClient

    a = AdminClient({"bootstrap.servers": s.bootstrap})
    d = a.describe_cluster().result(30)
    assert sorted(n.id for n in d.nodes) == [1, 2, 3], d.nodes
    return f"3 nodes, controller {d.controller.id}"


CONFLUENT_CHECKS: list[tuple[str, str, Callable[[Suite], str]]] = [
    ("AdminClient.delete_records", "DeleteRecords", c_delete_records),
    ("AdminClient.elect_leaders(PREFERRED)", "ElectLeaders", c_elect_leaders),
    ("AdminClient.list_offsets (earliest, latest, max_timestamp)", "ListOffsets", c_list_offsets),
    ("AdminClient.incremental_alter_configs / describe_configs (BROKER)", "IncrementalAlterConfigs, DescribeConfigs",
     c_broker_configs),
    ("AdminClient.describe_cluster", "DescribeCluster", c_describe_cluster),
]


# ---------------------------------------------------------------------- kafka-python
def _kp(s: Suite) -> Any:
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=s.bootstrap, request_timeout_ms=30000)


def k_describe_log_dirs(s: Suite) -> str:
    a = _kp(s)
    try:
        answer = a.describe_log_dirs()
    finally:
        a.close()
    text = str(answer)
    dirs = sum(text.count(str(d)) > 0 for b in s.cluster.broker_ids for d in s.cluster.log_dirs(b))
    assert dirs == 6, text[:500]
    return "every broker's 2 log dirs"


def k_alter_replica_log_dirs(s: Suite) -> str:
    from kafka import TopicPartitionReplica

    t = s.topic("ops")
    b = s.replicas(t, 2)[0]
    d = s.cluster.log_dirs(b)
    where = next(x for x in d if (x / f"{t}-2").exists())
    dest = d[1] if where == d[0] else d[0]
    a = _kp(s)
    try:
        res = a.alter_replica_log_dirs({TopicPartitionReplica(t, 2, b): str(dest)})
    finally:
        a.close()
    assert all(e.__name__ == "NoError" for e in res.values()), res
    s.wait_for("the move", lambda: (dest / f"{t}-2").is_dir() and not (where / f"{t}-2").exists())
    return f"replica {t}-2-{b} moved to its other log dir"


def k_reassignments(s: Suite) -> str:
    from kafka import TopicPartition

    t = s.topic("rt")
    now = s.replicas(t, 0)
    dst = next(b for b in s.cluster.broker_ids if b not in now)
    a = _kp(s)
    try:
        res = a.alter_partition_reassignments({TopicPartition(t, 0): [dst]})
        assert all(e is None for e in res.values()), res
        a.list_partition_reassignments()
    finally:
        a.close()
    s.wait_for("reassignment", lambda: s.replicas(t, 0) == [dst])
    return f"{t}-0 to broker {dst}; list_partition_reassignments answered"


def k_elect_leaders(s: Suite) -> str:
    a = _kp(s)
    try:
        a.elect_leaders(0, {s.topic("ops"): [1]}, raise_errors=False)
    finally:
        a.close()
    return "preferred election answered"


def k_delete_records(s: Suite) -> str:
    from kafka import TopicPartition

    a = _kp(s)
    try:
        res = a.delete_records({TopicPartition(s.topic("ops"), 0): 2})
    finally:
        a.close()
    return f"{res}"[:120]


def k_delete_group_offsets(s: Suite) -> str:
    from confluent_kafka import Consumer
    from confluent_kafka import TopicPartition as CTP
    from kafka import TopicPartition

    g = s.topic("g-kp")
    c = Consumer({"bootstrap.servers": s.bootstrap, "group.id": g, "enable.auto.commit": False})
    c.commit(offsets=[CTP(s.topic("ops"), 1, 5)], asynchronous=False)
    c.close()
    a = _kp(s)
    try:
        res = a.delete_group_offsets(g, [TopicPartition(s.topic("ops"), 1)])
    finally:
        a.close()
    assert all(e.__name__ == "NoError" for e in res.values()), res
    return "NoError"


def k_describe_producers(s: Suite) -> str:
    from kafka import TopicPartition

    a = _kp(s)
    try:
        res = a.describe_producers([TopicPartition(s.topic("ops"), 0)])
    finally:
        a.close()
    state = next(iter(res.values()))
    assert "9" in str(state), state
    return str(state)[:140]


def k_list_offsets(s: Suite) -> str:
    from kafka import TopicPartition
    from kafka.admin import OffsetSpec

    a = _kp(s)
    tp = TopicPartition(s.topic("ts"), 0)
    try:
        got = a.list_partition_offsets({tp: OffsetSpec.MAX_TIMESTAMP})[tp].offset
    finally:
        a.close()
    assert got == 1, got
    return "max timestamp: offset 1 (the middle record)"


KAFKA_PYTHON_CHECKS: list[tuple[str, str, Callable[[Suite], str]]] = [
    ("KafkaAdminClient.describe_log_dirs", "DescribeLogDirs", k_describe_log_dirs),
    ("KafkaAdminClient.alter_replica_log_dirs", "AlterReplicaLogDirs", k_alter_replica_log_dirs),
    ("KafkaAdminClient.alter_partition_reassignments / list_partition_reassignments",
     "AlterPartitionReassignments, ListPartitionReassignments", k_reassignments),
    ("KafkaAdminClient.elect_leaders", "ElectLeaders", k_elect_leaders),
    ("KafkaAdminClient.delete_records", "DeleteRecords", k_delete_records),
    ("KafkaAdminClient.delete_group_offsets", "OffsetDelete", k_delete_group_offsets),
    ("KafkaAdminClient.describe_producers", "DescribeProducers", k_describe_producers),
    ("KafkaAdminClient.list_partition_offsets(MAX_TIMESTAMP)", "ListOffsets v7+", k_list_offsets),
]


def run_python_clients(s: Suite) -> None:
    import confluent_kafka
    import kafka

    for call, api, fn in CONFLUENT_CHECKS:
        s.run(f"confluent-kafka {confluent_kafka.__version__}", call, api, fn)
    for call, api, fn in KAFKA_PYTHON_CHECKS:
        s.run(f"kafka-python {kafka.__version__}", call, api, fn)


def run_java_tools(s: Suite) -> None:
    for call, api, fn in JAVA_CHECKS:
        s.run("Kafka 3.9 tools", call, api, fn)


# ---------------------------------------------------------------------- franz-go kadm
KADM_DIR = Path(__file__).resolve().parent / "kadm"


def run_kadm(s: Suite, go: str) -> None:
    """Build tests/compat/kadm (franz-go's kadm from the Go module proxy, pinned in go.mod /
    go.sum) with ``go`` and record one row per call it makes; then check the log dir move it
    asked for happened."""
    binary = s.work / "kadm-compat"
    build = subprocess.run([go, "build", "-o", str(binary), "."], cwd=KADM_DIR, capture_output=True, text=True,
                           timeout=900)
    if build.returncode != 0:
        s.rows.append(Row("franz-go kadm", "go build tests/compat/kadm", "-", False, build.stderr.strip()[-300:]))
        return
    t = s.topic("ops")
    b = s.replicas(t, 0)[0]
    d = s.cluster.log_dirs(b)
    where = next(x for x in d if (x / f"{t}-0").exists())
    dest = d[1] if where == d[0] else d[0]
    out = subprocess.run([str(binary), s.bootstrap, t, s.topic("rt"), s.topic("grp-kadm"), str(dest), str(b)],
                         capture_output=True, text=True, timeout=300)
    version = next((line.split()[1] for line in (KADM_DIR / "go.mod").read_text().splitlines()
                    if line.strip().startswith("github.com/twmb/franz-go/pkg/kadm")), "?")
    for line in out.stdout.splitlines():
        r = json.loads(line)
        s.rows.append(Row(f"franz-go kadm {version}", f"kadm.Client.{r['call']}", _KADM_APIS.get(r["call"], "-"),
                          bool(r["ok"]), str(r["note"])[:300]))
    if out.returncode != 0 or not out.stdout.strip():
        s.rows.append(Row("franz-go kadm", "kadm-compat run", "-", False, (out.stdout + out.stderr).strip()[-300:]))

    def moved() -> str:
        s.wait_for("the kadm log dir move", lambda: (dest / f"{t}-0").is_dir() and not (where / f"{t}-0").exists())
        return f"{t}-0 on broker {b} is now in {dest.name}"
    s.run(f"franz-go kadm {version}", "AlterBrokerReplicaLogDirs: the move completes", "AlterReplicaLogDirs", lambda _s: moved())


_KADM_APIS = {
    "DescribeAllLogDirs": "DescribeLogDirs", "AlterReplicaLogDirs": "AlterReplicaLogDirs",
    "AlterPartitionAssignments": "AlterPartitionReassignments", "ListPartitionReassignments": "ListPartitionReassignments",
    "ElectLeaders(preferred)": "ElectLeaders", "DeleteRecords": "DeleteRecords", "DeleteOffsets": "OffsetDelete",
    "DescribeProducers": "DescribeProducers", "AlterBrokerConfigs": "IncrementalAlterConfigs",
    "ListEndOffsets": "ListOffsets",
}

"""KafkaConfig: the broker's configuration, with Kafka's property names, types and defaults.

Follows Kafka's ``kafka.server.KafkaConfig`` (ZooKeeper mode, Kafka 3.x). A config comes from
a ``server.properties`` file (Java properties syntax) plus ``--override key=value`` pairs.
Every key is checked: an unknown key or a bad value raises ConfigError whose message is one
line naming the key and what was expected, which the CLI prints before exiting.

Kafka keys that kafkalike accepts but that have no effect here (thread pool sizes, socket
buffer sizes, transaction log settings ...) are listed with ``effective=False``; the broker
logs them once at start-up (``config_ignored``) so a user can bring Kafka's own
server.properties unchanged. docs/configuration.md lists both kinds. Keys starting with
``kafkalike.`` are kafkalike's own (Kafka has no such key), e.g. ``kafkalike.api.versions``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from kafkalike.coordination.zk_data import EndPoint
from kafkalike.protocol.api_keys import API_VERSION_PROFILES, parse_ibp

INT_MAX = 2**31 - 1
LONG_MAX = 2**63 - 1


class ConfigError(ValueError):
    """A configuration key is unknown, or its value does not fit its type or range.

    ``str(err)`` is one line naming the key and what was expected.
    """


@attrs.frozen
class ConfigKey:
    """One broker property: its name, type, default (None = no default), range and doc.

    type is one of "int" (32-bit), "long" (64-bit), "short", "double", "boolean", "string",
    "list" (comma separated strings), "password". at_least / at_most: Kafka's ConfigDef.Range
    (inclusive); choices: ValidString.in, or for a list ValidList.in (every item one of them).
    ``effective=False`` marks a Kafka key that kafkalike accepts but ignores.
    """

    name: str
    type: str
    default: Any
    doc: str
    at_least: float | None = None
    at_most: float | None = None
    choices: tuple[str, ...] | None = None
    effective: bool = True
    required: bool = False


_BOUNDS = {"int": (-(2**31), INT_MAX), "long": (-(2**63), LONG_MAX), "short": (-(2**15), 2**15 - 1)}


def _key(name: str, type_: str, default: Any, doc: str, **kw: Any) -> ConfigKey:
    return ConfigKey(name=name, type=type_, default=default, doc=doc, **kw)


def _ignored(name: str, type_: str, default: Any, **kw: Any) -> ConfigKey:
    return ConfigKey(name=name, type=type_, default=default,
                     doc="accepted for compatibility with Kafka; no effect in kafkalike",
                     effective=False, **kw)


# Kafka 3.x defaults (ZooKeeper mode). Sources: Kafka's KafkaConfig / ServerLogConfigs /
# ReplicationConfigs / GroupCoordinatorConfig, and the broker configs page of the docs.
CONFIG_KEYS: dict[str, ConfigKey] = {k.name: k for k in [
    # --- identity and listeners
    _key("broker.id", "int", -1, "broker id; -1 = generate one from /brokers/seqid", at_least=-1),
    _key("broker.id.generation.enable", "boolean", True, "generate a broker id when broker.id is -1"),
    _key("reserved.broker.max.id", "int", 1000, "generated ids start above this", at_least=0),
    _key("broker.rack", "string", None, "rack of this broker (registered in ZooKeeper)"),
    _key("listeners", "list", ["PLAINTEXT://:9092"], "listener URIs NAME://host:port"),
    _key("advertised.listeners", "list", None, "listeners published in ZooKeeper (default: listeners)"),
    _key("listener.security.protocol.map", "string",
         "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
         "listener name -> security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)"),
    _key("inter.broker.listener.name", "string", None, "listener used between brokers"),
    _key("security.inter.broker.protocol", "string", "PLAINTEXT",
         "protocol between brokers (names the inter-broker listener when inter.broker.listener.name is unset)",
         choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")),
    # --- SASL (Kafka's BrokerSecurityConfigs / SaslConfigs; KIP-43): sasl.enabled.mechanisms may be
    # set per listener (listener.name.<listener>.sasl.enabled.mechanisms), the JAAS config only per
    # listener and mechanism: listener.name.<listener>.<mechanism, lower case>.sasl.jaas.config
    _key("sasl.enabled.mechanisms", "list", ["GSSAPI"],
         "SASL mechanisms of the SASL listeners (kafkalike: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"),
    _key("sasl.mechanism.inter.broker.protocol", "string", "GSSAPI",
         "mechanism the broker uses on a SASL inter-broker listener"),
    _key("sasl.jaas.config", "password", None,
         "JAAS login module and options; on a broker only as listener.name.<l>.<mechanism>.sasl.jaas.config"),
    # --- TLS (Kafka's SslConfigs / BrokerSecurityConfigs); each may also be set per listener
    # as listener.name.<listener name, lower case>.<key>, which wins for that listener
    _key("ssl.keystore.type", "string", "JKS", "keystore format: PEM or PKCS12 (JKS is refused)"),
    _key("ssl.keystore.location", "string", None, "keystore file (PEM: private key + certificate chain)"),
    _key("ssl.keystore.password", "password", None, "keystore password (PKCS12)"),
    _key("ssl.key.password", "password", None, "password of the private key (encrypted PEM key)"),
    _key("ssl.keystore.certificate.chain", "password", None, "PEM certificate chain inline (KIP-651)"),
    _key("ssl.keystore.key", "password", None, "PEM private key inline (KIP-651)"),
    _key("ssl.truststore.type", "string", "JKS", "truststore format: PEM or PKCS12 (JKS is refused)"),
    _key("ssl.truststore.location", "string", None, "truststore file (CA certificates)"),
    _key("ssl.truststore.password", "password", None, "truststore password (PKCS12)"),
    _key("ssl.truststore.certificates", "password", None, "PEM CA certificates inline (KIP-651)"),
    _key("ssl.client.auth", "string", "none", "client certificates: none, requested or required",
         choices=("none", "requested", "required")),
    _key("ssl.enabled.protocols", "list", ["TLSv1.2", "TLSv1.3"], "TLS versions served",
         choices=("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")),
    _key("ssl.protocol", "string", "TLSv1.3", "TLS protocol of the context (Python negotiates within "
         "ssl.enabled.protocols)", choices=("TLS", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")),
    _key("ssl.cipher.suites", "list", None, "cipher suites (OpenSSL names; null = OpenSSL's defaults)"),
    _key("ssl.endpoint.identification.algorithm", "string", "https",
         "client side: check the server's host name against its certificate (https) or not (empty)"),
    _key("ssl.principal.mapping.rules", "string", "DEFAULT",
         "client certificate subject DN -> principal name: RULE:pattern/replacement/[LU],... or DEFAULT "
         "(KIP-371)"),
    # --- authorization (Kafka's AclAuthorizer; broker/acl_authorizer.py)
    _key("authorizer.class.name", "string", "",
         "authorizer: empty (none), kafka.security.authorizer.AclAuthorizer (ACLs in ZooKeeper) or, on a "
         "KRaft broker, org.apache.kafka.metadata.authorizer.StandardAuthorizer (ACLs in the metadata log)",
         choices=("", "kafka.security.authorizer.AclAuthorizer",
                  "org.apache.kafka.metadata.authorizer.StandardAuthorizer")),
    _key("super.users", "string", None, "principals allowed everything, ';'-separated (User:admin;User:alice)"),
    _key("allow.everyone.if.no.acl.found", "boolean", False,
         "with an authorizer: allow access to resources no ACL names (default false: deny)"),
    # --- ZooKeeper
    _key("zookeeper.connect", "string", None,
         "host:port[,host:port...][/chroot]; required unless process.roles is set (KRaft)"),
    _key("zookeeper.session.timeout.ms", "int", 18000, "ZooKeeper session timeout (ms)", at_least=1),
    _key("zookeeper.connection.timeout.ms", "int", None, "max wait for a ZooKeeper connection (ms)",
         at_least=1),
    _ignored("zookeeper.max.in.flight.requests", "int", 10, at_least=1),
    _key("zookeeper.set.acl", "boolean", False,
         "create znodes with Kafka's secure ACLs (creator ALL, world READ except credentials); needs a "
         "ZooKeeper SASL login (kafkalike.zookeeper.jaas.config)"),
    _key("kafkalike.zookeeper.jaas.config", "string", None,
         "kafkalike only: a JAAS file whose Client section (DigestLoginModule username/password) logs the "
         "broker in to ZooKeeper with SASL DIGEST-MD5; Kafka takes this file from the JVM's "
         "-Djava.security.auth.login.config (KAFKA_OPTS), which kafkalike also reads when this is unset"),
    # --- KRaft (KIP-500/KIP-595/KIP-631; Kafka's KRaftConfigs, QuorumConfig): process.roles set = KRaft mode
    _key("process.roles", "list", [], "KRaft roles of this node: broker, controller or both; empty = ZooKeeper mode",
         choices=("broker", "controller")),
    _key("node.id", "int", -1, "KRaft node id (broker and controller); required when process.roles is set",
         at_least=-1),
    _key("controller.quorum.voters", "string", "", "the static Raft voters: id@host:port,... (kraft.version 0)"),
    _key("controller.listener.names", "list", None, "listeners the controllers serve on (the first is the one "
         "brokers and other controllers connect to); unmapped names default to PLAINTEXT"),
    _key("metadata.log.dir", "string", None, "dir of __cluster_metadata-0 (default: the first log dir)"),
    _key("broker.session.timeout.ms", "int", 9000, "KRaft: a broker without a heartbeat for this long is fenced "
         "by the controller (ms)", at_least=1),
    _key("broker.heartbeat.interval.ms", "int", 2000, "KRaft: broker -> controller heartbeat period (ms)",
         at_least=1),
    _key("controller.quorum.election.timeout.ms", "int", 1000, "Raft: election timeout (ms; random in [t, 2t])",
         at_least=1),
    _key("controller.quorum.election.backoff.max.ms", "int", 1000, "Raft: max backoff before standing again (ms)",
         at_least=1),
    _key("controller.quorum.fetch.timeout.ms", "int", 2000, "Raft: a follower without a good Fetch for this long "
         "stands for election (ms)", at_least=1),
    _key("controller.quorum.request.timeout.ms", "int", 2000, "Raft: request timeout between voters (ms)",
         at_least=1),
    _key("controller.quorum.retry.backoff.ms", "int", 20, "Raft: wait before retrying a failed request (ms)",
         at_least=0),
    _key("metadata.max.idle.interval.ms", "int", 500, "KRaft: the active controller appends a NoOpRecord this "
         "often when idle (ms; 0 = never)", at_least=0),
    _key("metadata.log.max.record.bytes.between.snapshots", "long", 20971520, "KRaft: a controller writes a "
         "snapshot of its state once this many bytes of records were committed since the last one", at_least=1),
    _ignored("controller.quorum.append.linger.ms", "int", 25, at_least=0),
    # --- log storage
    _key("log.dirs", "list", None, "log directories (default: log.dir)"),
    _key("log.dir", "string", "/tmp/kafka-logs", "log directory used when log.dirs is unset"),
    _key("log.segment.bytes", "int", 1073741824, "segment size before a roll (bytes)", at_least=14),
    _key("log.roll.ms", "long", None, "max segment age before a roll (ms)", at_least=1),
    _key("log.roll.hours", "int", 168, "max segment age before a roll (hours)", at_least=1),
    _key("log.retention.ms", "long", None, "retention time (ms); -1 = unlimited"),
    _key("log.retention.minutes", "int", None, "retention time (minutes)"),
    _key("log.retention.hours", "int", 168, "retention time (hours)"),
    _key("log.retention.bytes", "long", -1, "max log size per partition (bytes); -1 = unlimited"),
    _key("log.retention.check.interval.ms", "long", 300000, "retention check period (ms)", at_least=1),
    _key("log.index.size.max.bytes", "int", 10485760, "max offset index size (bytes)", at_least=4),
    _key("log.index.interval.bytes", "int", 4096, "bytes between offset index entries", at_least=0),
    _key("log.flush.interval.messages", "long", LONG_MAX, "messages between fsyncs", at_least=1),
    _key("log.flush.interval.ms", "long", None, "max ms a message stays unflushed"),
    _key("log.flush.scheduler.interval.ms", "long", LONG_MAX, "flush check period (ms)"),
    _key("log.flush.offset.checkpoint.interval.ms", "int", 60000, "recovery point checkpoint period (ms)",
         at_least=0),
    _key("log.flush.start.offset.checkpoint.interval.ms", "int", 60000,
         "log start offset checkpoint period (ms)", at_least=0),
    _key("log.segment.delete.delay.ms", "long", 60000,
         "wait before a deleted log's renamed *-delete dir is removed (ms)", at_least=0),
    _key("log.cleanup.policy", "list", ["delete"], "delete, compact, or both",
         choices=("compact", "delete")),
    _key("log.cleaner.enable", "boolean", True, "run the log cleaner (compaction)"),
    _key("log.cleaner.threads", "int", 1, "cleaner workers", at_least=0),
    _key("log.cleaner.backoff.ms", "long", 15000, "cleaner sleep when idle (ms)", at_least=0),
    _key("log.cleaner.min.cleanable.ratio", "double", 0.5, "dirty ratio that triggers cleaning",
         at_least=0, at_most=1),
    _key("log.cleaner.delete.retention.ms", "long", 86400000, "tombstone retention (ms)", at_least=0),
    _key("log.cleaner.min.compaction.lag.ms", "long", 0, "min age before compaction (ms)", at_least=0),
    _key("log.message.timestamp.type", "string", "CreateTime", "timestamp type",
         choices=("CreateTime", "LogAppendTime")),
    _key("compression.type", "string", "producer", "compression of stored batches",
         choices=("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")),
    _key("num.recovery.threads.per.data.dir", "int", 1, "log recovery workers", at_least=1),
    _key("message.max.bytes", "int", 1048588, "largest record batch accepted (bytes)", at_least=0),
    # --- topics and replication
    _key("num.partitions", "int", 1, "partitions of auto-created topics", at_least=1),
    _key("default.replication.factor", "int", 1, "replication factor of auto-created topics", at_least=1),
    _key("min.insync.replicas", "int", 1, "ISR size needed for acks=all", at_least=1),
    _key("unclean.leader.election.enable", "boolean", False, "elect an out-of-sync replica as last resort"),
    _key("auto.create.topics.enable", "boolean", True, "create topics on Metadata / Produce"),
    _key("delete.topic.enable", "boolean", True, "allow topic deletion"),
    _key("auto.leader.rebalance.enable", "boolean", True, "move leadership back to preferred replicas"),
    _key("leader.imbalance.check.interval.seconds", "long", 300, "rebalance check period (s)", at_least=1),
    _key("leader.imbalance.per.broker.percentage", "int", 10, "imbalance that triggers a rebalance (%)",
         at_least=0),
    _key("replica.lag.time.max.ms", "long", 30000, "max follower lag before leaving the ISR (ms)"),
    _key("replica.fetch.max.bytes", "int", 1048576, "follower fetch bytes per partition", at_least=0),
    _key("replica.fetch.response.max.bytes", "int", 10485760, "follower fetch bytes per response",
         at_least=0),
    _key("replica.fetch.min.bytes", "int", 1, "follower fetch min bytes"),
    _key("replica.fetch.wait.max.ms", "int", 500, "follower fetch max wait (ms)"),
    _key("replica.fetch.backoff.ms", "int", 1000, "follower sleep after a fetch error (ms)", at_least=0),
    _key("replica.socket.timeout.ms", "int", 30000, "follower socket timeout (ms)"),
    _key("num.replica.fetchers", "int", 1, "fetcher tasks per source broker", at_least=1),
    _key("replica.high.watermark.checkpoint.interval.ms", "long", 5000, "HW checkpoint period (ms)"),
    _key("controlled.shutdown.enable", "boolean", True, "move leaderships away before shutdown"),
    _key("controlled.shutdown.max.retries", "int", 3, "ControlledShutdown attempts"),
    _key("controlled.shutdown.retry.backoff.ms", "long", 5000, "wait between attempts (ms)"),
    _key("controller.socket.timeout.ms", "int", 30000, "controller -> broker request timeout (ms)"),
    # --- network
    _key("socket.request.max.bytes", "int", 104857600, "largest request frame (bytes)", at_least=1),
    _key("connections.max.idle.ms", "long", 600000, "idle connections are closed after (ms)"),
    _key("connection.failed.authentication.delay.ms", "int", 100,
         "a connection whose SASL authentication failed is closed this long after its error response (ms)",
         at_least=0),
    _key("queued.max.request.bytes", "long", 536870912,
         "bytes of requests being received or waiting to be handled before connections stop "
         "reading; <= 0 = unbounded (Kafka's default -1; kafkalike bounds it, docs/broker.md)"),
    _key("max.connections", "int", INT_MAX,
         "connections the broker accepts; then accept waits for one to close", at_least=0),
    _key("max.connections.per.ip", "int", INT_MAX,
         "connections from one IP address; more are closed at once", at_least=0),
    _key("max.connections.per.ip.overrides", "string", "",
         "per-host limits host:count[,host:count...] (names or IPs)"),
    _key("fetch.max.bytes", "int", 57671680, "max bytes of one fetch response", at_least=1024),
    _key("max.incremental.fetch.session.cache.slots", "int", 1000,
         "incremental fetch sessions (KIP-227) a broker keeps", at_least=0),
    _ignored("num.network.threads", "int", 3, at_least=1),
    _ignored("num.io.threads", "int", 8, at_least=1),
    _ignored("background.threads", "int", 10, at_least=1),
    _ignored("queued.max.requests", "int", 500, at_least=1),
    _ignored("socket.send.buffer.bytes", "int", 102400),
    _ignored("socket.receive.buffer.bytes", "int", 102400),
    # --- group coordinator and __consumer_offsets
    _key("offsets.topic.replication.factor", "short", 3, "replication factor of __consumer_offsets",
         at_least=1),
    _key("offsets.topic.num.partitions", "int", 50, "partitions of __consumer_offsets", at_least=1),
    _key("offsets.topic.segment.bytes", "int", 104857600, "segment size of __consumer_offsets", at_least=1),
    _key("offsets.retention.minutes", "int", 10080, "committed offset retention (minutes)", at_least=1),
    _key("offsets.retention.check.interval.ms", "long", 600000, "offset expiry check period (ms)",
         at_least=1),
    _key("offsets.commit.timeout.ms", "int", 5000, "offset commit replication timeout (ms)", at_least=1),
    _key("offsets.load.buffer.size", "int", 5242880, "read size when loading groups (bytes)", at_least=1),
    _key("group.initial.rebalance.delay.ms", "int", 3000, "delay of the first rebalance (ms)"),
    _key("group.min.session.timeout.ms", "int", 6000, "min consumer session timeout (ms)"),
    _key("group.max.session.timeout.ms", "int", 1800000, "max consumer session timeout (ms)"),
    _key("group.max.size", "int", INT_MAX, "max members per group", at_least=1),
    # --- producer ids and transactions
    _key("producer.id.expiration.ms", "int", 86400000, "idle producer state expiry (ms)", at_least=1),
    _key("transaction.state.log.replication.factor", "short", 3,
         "replication factor of __transaction_state (capped at the live brokers)", at_least=1),
    _key("transaction.state.log.min.isr", "int", 2, "min.insync.replicas of __transaction_state", at_least=1),
    _key("transaction.state.log.num.partitions", "int", 50, "partitions of __transaction_state", at_least=1),
    _key("transaction.state.log.segment.bytes", "int", 104857600, "segment size of __transaction_state",
         at_least=1),
    _key("transaction.state.log.load.buffer.size", "int", 5242880,
         "read size when loading transactions (bytes)", at_least=1),
    _key("transaction.max.timeout.ms", "int", 900000,
         "largest transaction.timeout.ms a producer may ask for (ms)", at_least=1),
    _key("transaction.abort.timed.out.transaction.cleanup.interval.ms", "int", 10000,
         "how often timed-out transactions are aborted (ms)", at_least=1),
    _key("transaction.partition.verification.enable", "boolean", True,
         "KIP-890 part 1: a leader asks the transaction coordinator (AddPartitionsToTxn v4) before a "
         "producer's first transactional write to a partition"),
    _ignored("transactional.id.expiration.ms", "int", 604800000, at_least=1),
    _ignored("transaction.remove.expired.transaction.cleanup.interval.ms", "int", 3600000, at_least=1),
    # --- versions (kafkalike speaks one protocol set; see docs/protocol.md)
    _key("inter.broker.protocol.version", "string", "3.9",
         "Kafka's IBP (e.g. 2.4, 2.4-IV0): picks the versions brokers send each other, "
         "controller LeaderAndIsr/UpdateMetadata/StopReplica and follower "
         "Fetch/OffsetForLeaderEpoch/ListOffsets, as Kafka does"),
    # --- kafkalike's own keys (not in Kafka)
    _key("kafkalike.api.versions", "string", "latest",
         "kafkalike only: the API version table the broker advertises and accepts; latest, or "
         "wireshark-4.0 (capped so Debian 12's tshark decodes every frame; docs/protocol.md)",
         choices=("latest", "wireshark-4.0")),
    _key("kafkalike.debug.request.hops", "boolean", False,
         "kafkalike only, a debug metric: log a request_hops line per Produce and Fetch with the "
         "time of each hop (read, append, follower fetch, high watermark, response written; "
         "broker/request_hops.py, docs/benchmarks.md)"),
    _key("kafkalike.produce.pipelining", "boolean", True,
         "kafkalike only: while an acks=all Produce waits for its followers, read and serve the "
         "connection's next request (Kafka mutes the connection until the response is sent); "
         "requests are still handled, and answered, in order (broker/request_pipelining.py, "
         "docs/benchmarks.md)"),
    _ignored("log.message.format.version", "string", "3.0"),
    # --- limits on admin requests (docs/broker.md "Limits on admin requests")
    _key("kafkalike.max.partitions.per.request", "int", 10000,
         "kafkalike only: partitions one CreateTopics / CreatePartitions request may create, and "
         "topics one DeleteTopics request may delete (Kafka's KRaft controller caps a user "
         "operation at 10,000 metadata records); more: POLICY_VIOLATION", at_least=1),
    _key("kafkalike.max.partitions", "int", 200000,
         "kafkalike only: partitions in the cluster; creating more: POLICY_VIOLATION", at_least=1),
    _key("kafkalike.max.replicas.per.broker", "int", 30000,
         "kafkalike only: replicas one broker may host; creating more: POLICY_VIOLATION",
         at_least=1),
    # --- metrics (docs/observability.md)
    _key("kafkalike.metrics.port", "int", 7071,
         "kafkalike only: port of the broker's Prometheus endpoint /metrics, on the first listener's "
         "host; 0 = any free port, -1 = off (Kafka has no such key: operators run the Prometheus JMX "
         "exporter agent, commonly on port 7071). Set and taken: start-up fails; default and taken: "
         "a warning, no endpoint", at_least=-1, at_most=65535),
    # --- garbage collection (kafkalike/broker/gc_policy.py, docs/design.md)
    _key("kafkalike.gc.freeze.interval.ms", "int", 10000,
         "kafkalike only: every this many ms the broker runs a full garbage collection of the objects "
         "allocated since the last one and gc.freeze()s the survivors (also once after start-up), so "
         "collections never walk the long-lived objects of thousands of topics; 0 = off (CPython's "
         "defaults). Kafka has no such key (its JVM runs G1 with MaxGCPauseMillis=20)", at_least=0),
    _key("kafkalike.gc.unfreeze.interval.ms", "int", 3600000,
         "kafkalike only: every this many ms one freeze pass unfreezes everything first, so cyclic "
         "garbage among frozen objects (e.g. deleted topics' logs) is collected; 0 = never",
         at_least=0),
    # --- controller mutation quota (KIP-599; the quota itself is the client quota
    # controller_mutation_rate in /config/clients)
    _key("controller.quota.window.num", "int", 11,
         "samples of the controller mutation quota: burst = num x size x rate", at_least=1),
    _key("controller.quota.window.size.seconds", "int", 1,
         "seconds per sample of the controller mutation quota", at_least=1),
    # --- replication throttles (KIP-73; the rates themselves are dynamic broker configs)
    _key("replication.quota.window.num", "int", 11,
         "samples of the replication throttles' byte rate (leader/follower.replication.throttled.rate)",
         at_least=1),
    _key("replication.quota.window.size.seconds", "int", 1,
         "seconds per sample of the replication throttles' byte rate", at_least=1),
]}

_LINE_CONT = re.compile(r"(?<!\\)(\\\\)*\\$")


def parse_properties(text: str) -> list[tuple[int, str, str]]:
    """Parse Java properties text into (line number, key, value) triples, in file order.

    Supports ``#`` and ``!`` comments, ``=``, ``:`` or whitespace separators, and backslash
    line continuations, as java.util.Properties does (unicode escapes are not decoded).
    """
    out: list[tuple[int, str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        lineno = i + 1
        line = lines[i].lstrip()
        i += 1
        if not line or line[0] in "#!":
            continue
        while _LINE_CONT.search(line) and i < len(lines):
            line = line[:-1] + lines[i].lstrip()
            i += 1
        m = re.match(r"((?:\\.|[^=:\s\\])+)\s*[=:\s]?\s*(.*)$", line)
        if not m:
            continue
        key = re.sub(r"\\(.)", r"\1", m.group(1))
        out.append((lineno, key, m.group(2).rstrip()))
    return out


_LISTENER_PREFIX = re.compile(r"listener\.name\.([^.]+)\.(ssl\..+|sasl\.enabled\.mechanisms)$")
_LISTENER_MECHANISM_PREFIX = re.compile(r"listener\.name\.([^.]+)\.([A-Za-z0-9-]+)\.(sasl\.jaas\.config)$")


def config_key(name: str) -> ConfigKey | None:
    """The ConfigKey of a property name: a known key, ``listener.name.<listener>.ssl.*`` /
    ``.sasl.enabled.mechanisms`` (set for one listener), or
    ``listener.name.<listener>.<mechanism>.sasl.jaas.config``; None for an unknown name."""
    key = CONFIG_KEYS.get(name)
    if key is None:
        m = _LISTENER_PREFIX.match(name) or _LISTENER_MECHANISM_PREFIX.match(name)
        if m:
            key = CONFIG_KEYS.get(m.group(m.lastindex or 2))
    return key


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _convert(key: ConfigKey, raw: str) -> Any:
    """Convert one raw string to the key's type, raising ConfigError naming the key."""
    raw = raw.strip()
    t = key.type

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"invalid value {raw!r} for configuration {key.name!r}: expected {expected}")

    if t in _BOUNDS:
        try:
            value: Any = int(raw)
        except ValueError:
            raise bad(f"{_article(t)} {t}") from None
        lo, hi = _BOUNDS[t]
        lo = max(lo, int(key.at_least)) if key.at_least is not None else lo
        if not lo <= value <= hi:
            raise bad(f"{_article(t)} {t} in [{lo}, {hi}]")
        return value
    if t == "double":
        try:
            value = float(raw)
        except ValueError:
            raise bad("a number") from None
        if key.at_least is not None and value < key.at_least:
            raise bad(f"a number >= {key.at_least:g}")
        if key.at_most is not None and value > key.at_most:
            raise bad(f"a number <= {key.at_most:g}")
        return value
    if t == "boolean":
        if raw.lower() not in ("true", "false"):
            raise bad("true or false")
        return raw.lower() == "true"
    if t == "list":
        items = [item.strip() for item in raw.split(",") if item.strip()]
        if key.choices is not None:
            for item in items:
                if item not in key.choices:
                    raise ConfigError(f"invalid value {item!r} in configuration {key.name!r}: "
                                      "expected a comma separated list of " + ", ".join(key.choices))
        return items
    if key.choices is not None and raw not in key.choices:
        raise bad("one of " + ", ".join(key.choices))
    return raw


def parse_endpoint(uri: str, config_name: str, protocol_map: Mapping[str, str]) -> EndPoint:
    """Parse a listener ``NAME://host:port`` (host "" = all interfaces) into coordination's
    EndPoint, the type registered in ZooKeeper; raises ConfigError naming config_name."""
    try:
        ep = EndPoint.parse(uri.strip(), protocol_map)
    except ValueError:
        raise ConfigError(
            f"invalid value {uri!r} for configuration {config_name!r}: "
            "expected NAME://host:port (e.g. PLAINTEXT://127.0.0.1:9092) with NAME in "
            "listener.security.protocol.map") from None
    if not 0 <= ep.port <= 65535:
        raise ConfigError(f"invalid value {uri!r} for configuration {config_name!r}: "
                          "expected a port in [0, 65535]")
    return ep


def apply_overrides(props: dict[str, str], where: dict[str, str], overrides: Iterable[str]) -> None:
    """Apply ``key=value`` overrides to ``props`` in order (later wins), recording
    ``where[key] = "--override"``. ConfigError for an item without ``=``."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"invalid override {item!r}: expected key=value")
        key, value = item.split("=", 1)
        props[key.strip()] = value
        where[key.strip()] = "--override"


@attrs.frozen
class KafkaConfig:
    """A validated broker configuration. ``values`` maps every known key to its typed value
    (defaults filled in); ``originals`` holds only the keys the user set.

    Build one with ``KafkaConfig.from_properties(text, overrides)`` or ``from_file``; read
    values with ``config["num.partitions"]`` or the typed properties below.
    """

    values: Mapping[str, Any]
    originals: Mapping[str, str]

    @classmethod
    def from_mapping(cls, props: Mapping[str, str] | Iterable[tuple[str, str]],
                     source: Callable[[str], str] | None = None) -> "KafkaConfig":
        """Validate key -> raw string pairs; raises ConfigError (one line) on the first bad one.

        source(key) may describe where a key came from (e.g. "line 3 of server.properties").
        """
        pairs = list(props.items()) if isinstance(props, Mapping) else list(props)
        originals: dict[str, str] = {}
        values: dict[str, Any] = {name: k.default for name, k in CONFIG_KEYS.items()}
        for name, raw in pairs:
            key = config_key(name)
            if key is None:
                where = f" ({source(name)})" if source else ""
                raise ConfigError(
                    f"unknown configuration key {name!r}{where}: see docs/configuration.md "
                    "for the keys kafkalike knows")
            values[name] = _convert(attrs.evolve(key, name=name), raw)
            originals[name] = raw
        for key in CONFIG_KEYS.values():
            if key.required and values[key.name] in (None, ""):
                raise ConfigError(f"missing required configuration {key.name!r}: {key.doc}")
        config = cls(values=values, originals=originals)
        config._check_consistency()
        return config

    @classmethod
    def from_properties(cls, text: str, overrides: Iterable[str] = (),
                        filename: str = "server.properties") -> "KafkaConfig":
        """Parse properties text, then apply ``key=value`` overrides (later wins)."""
        where: dict[str, str] = {}
        merged: dict[str, str] = {}
        for lineno, key, value in parse_properties(text):
            merged[key] = value
            where[key] = f"line {lineno} of {filename}"
        apply_overrides(merged, where, overrides)
        return cls.from_mapping(merged, source=lambda k: where.get(k, "?"))

    @classmethod
    def from_file(cls, path: str | Path, overrides: Iterable[str] = ()) -> "KafkaConfig":
        """Read a server.properties file; raises ConfigError if it can't be read or is invalid."""
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise ConfigError(f"cannot read configuration file {str(path)!r}: {e.strerror}") from None
        return cls.from_properties(text, overrides, filename=Path(path).name)

    def _check_consistency(self) -> None:
        if not self.process_roles and not self["zookeeper.connect"]:
            raise ConfigError("missing required configuration 'zookeeper.connect': host:port[,host:port...]"
                              "[/chroot] (or set process.roles for KRaft mode)")
        if self.process_roles and self.node_id < 0:
            raise ConfigError("missing required configuration 'node.id': a KRaft node (process.roles is set) "
                              "needs an id >= 0")
        if "controller" in self.process_roles:
            if not self["controller.quorum.voters"]:
                raise ConfigError("missing required configuration 'controller.quorum.voters': a controller "
                                  "needs the static voters id@host:port,...")
            if not self["controller.listener.names"]:
                raise ConfigError("missing required configuration 'controller.listener.names': a controller "
                                  "serves on one of its listeners")
        self.listeners  # parse now so a bad listener stops start-up
        self.advertised_listeners
        names = [e.listener_name for e in self.listeners]
        if len(set(names)) != len(names):
            raise ConfigError(f"invalid value for configuration 'listeners': "
                              f"each listener name must appear once, got {names}")
        self.listener_security_protocol_map  # parse now: a bad map stops start-up
        for ep in self.listeners:
            if ep.security_protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
                raise ConfigError(
                    f"invalid value for configuration 'listeners': listener {ep.listener_name} maps "
                    f"to {ep.security_protocol!r} in listener.security.protocol.map; "
                    "kafkalike serves PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL")
        ibl = self["inter.broker.listener.name"]
        if ibl is not None and ibl not in names:
            raise ConfigError(f"invalid value {ibl!r} for configuration 'inter.broker.listener.name': "
                              f"expected one of the listeners {names}")
        if ibl is not None and "security.inter.broker.protocol" in self.originals:
            raise ConfigError("invalid value for configuration 'security.inter.broker.protocol': "
                              "only one of inter.broker.listener.name and security.inter.broker.protocol "
                              "should be set")
        ibp = self["inter.broker.protocol.version"]
        if parse_ibp(ibp) is None:
            raise ConfigError(f"invalid value {ibp!r} for configuration "
                              "'inter.broker.protocol.version': expected a Kafka version such as "
                              "3.9, 2.4 or 2.4-IV1")
        if self.broker_id == -1 and not self["broker.id.generation.enable"]:
            raise ConfigError("invalid value '-1' for configuration 'broker.id': expected an id >= 0 "
                              "when broker.id.generation.enable is false")
        if self.broker_id > self["reserved.broker.max.id"]:
            raise ConfigError(
                f"invalid value '{self.broker_id}' for configuration 'broker.id': expected at most "
                f"reserved.broker.max.id ({self['reserved.broker.max.id']})")
        # KafkaConfig.validateValues' cross-key requirements, with Kafka's messages
        if self.log_retention_ms == 0:
            key = next(k for k in ("log.retention.ms", "log.retention.minutes", "log.retention.hours")
                       if self[k] is not None)
            raise ConfigError(f"invalid value '0' for configuration {key!r}: log.retention.ms must be "
                              "unlimited (-1) or, greater than or equal to 1")
        wait, socket_timeout = self["replica.fetch.wait.max.ms"], self["replica.socket.timeout.ms"]
        if wait > socket_timeout:
            raise ConfigError(f"invalid value '{socket_timeout}' for configuration 'replica.socket.timeout.ms': "
                              "replica.socket.timeout.ms should always be at least replica.fetch.wait.max.ms "
                              f"({wait}) to prevent unnecessary socket timeouts")
        if wait > self["replica.lag.time.max.ms"]:
            raise ConfigError(f"invalid value '{wait}' for configuration 'replica.fetch.wait.max.ms': "
                              "replica.fetch.wait.max.ms should always be less than or equal to "
                              f"replica.lag.time.max.ms ({self['replica.lag.time.max.ms']}) to prevent "
                              "frequent changes in ISR")

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def ignored_keys(self) -> list[str]:
        """Keys the user set that kafkalike accepts but does not act on."""
        return [k for k in self.originals if not config_key(k).effective]  # type: ignore[union-attr]  # config_key() of a key in originals is never None

    def listener_ssl_config(self, listener_name: str) -> dict[str, tuple[str, Any]]:
        """The ssl.* settings of one listener: {ssl key: (the key it came from, value)}, the
        listener-prefixed ``listener.name.<name>.ssl.*`` key winning over the plain one (Kafka's
        KafkaConfig.valuesWithPrefixOverride)."""
        prefix = f"listener.name.{listener_name.lower()}."
        out: dict[str, tuple[str, Any]] = {}
        for name in CONFIG_KEYS:
            if name.startswith("ssl."):
                out[name] = (name, self[name])
        for name in self.originals:
            if name.lower().startswith(prefix):
                base = name[len(prefix):]
                out[base] = (name, self.values[name])
        return out

    # --- typed views of the most used keys
    @property
    def broker_id(self) -> int:
        return int(self["broker.id"])

    @property
    def process_roles(self) -> frozenset[str]:
        """process.roles: {"broker"}, {"controller"}, both, or empty (ZooKeeper mode)."""
        return frozenset(self["process.roles"] or ())

    @property
    def node_id(self) -> int:
        """node.id (KRaft mode's id for brokers and controllers)."""
        return int(self["node.id"])

    @property
    def listener_security_protocol_map(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in str(self["listener.security.protocol.map"]).split(","):
            if ":" not in item:
                raise ConfigError(f"invalid value {item!r} in configuration "
                                  "'listener.security.protocol.map': expected NAME:PROTOCOL")
            name, proto = item.split(":", 1)
            out[name.strip().upper()] = proto.strip().upper()
        if "listener.security.protocol.map" not in self.originals:
            # Kafka 3.x: with the default map, a controller listener not in it is PLAINTEXT
            for name in self["controller.listener.names"] or ():
                out.setdefault(name.strip().upper(), "PLAINTEXT")
        return out

    @property
    def listeners(self) -> list[EndPoint]:
        return [parse_endpoint(u, "listeners", self.listener_security_protocol_map) for u in self["listeners"]]

    @property
    def advertised_listeners(self) -> list[EndPoint]:
        """advertised.listeners, else listeners; an empty host is left for the broker to fill."""
        if self["advertised.listeners"] is None:
            return self.listeners
        return [parse_endpoint(u, "advertised.listeners", self.listener_security_protocol_map)
                for u in self["advertised.listeners"]]

    @property
    def inter_broker_listener_name(self) -> str:
        """inter.broker.listener.name, else the listener named after security.inter.broker.protocol
        (Kafka's default: PLAINTEXT) when there is one, else the first listener."""
        if self["inter.broker.listener.name"]:
            return str(self["inter.broker.listener.name"])
        names = [e.listener_name for e in self.listeners]
        proto = str(self["security.inter.broker.protocol"])
        return proto if proto in names else names[0]

    @property
    def api_versions(self) -> dict[int, tuple[int, int]]:
        """{api key: (min, max)} this broker advertises in ApiVersions and accepts, from
        kafkalike.api.versions (kafkalike.protocol.api_keys.API_VERSION_PROFILES)."""
        return API_VERSION_PROFILES[self["kafkalike.api.versions"]]

    @property
    def log_dirs(self) -> list[str]:
        return list(self["log.dirs"]) if self["log.dirs"] else [self["log.dir"]]

    @property
    def zookeeper_connect(self) -> str:
        return str(self["zookeeper.connect"])

    @property
    def zookeeper_session_timeout_ms(self) -> int:
        return int(self["zookeeper.session.timeout.ms"])

    @property
    def zookeeper_connection_timeout_ms(self) -> int:
        v = self["zookeeper.connection.timeout.ms"]
        return int(v) if v is not None else self.zookeeper_session_timeout_ms

    @property
    def log_retention_ms(self) -> int:
        """log.retention.ms, else minutes, else hours (Kafka's precedence); any negative value
        is -1 = unlimited (KafkaConfig.logRetentionTimeMillis)."""
        if self["log.retention.ms"] is not None:
            millis = int(self["log.retention.ms"])
        elif self["log.retention.minutes"] is not None:
            millis = int(self["log.retention.minutes"]) * 60_000
        else:
            millis = int(self["log.retention.hours"]) * 3_600_000
        return -1 if millis < 0 else millis

    @property
    def log_roll_ms(self) -> int:
        """log.roll.ms, else log.roll.hours (Kafka's precedence)."""
        if self["log.roll.ms"] is not None:
            return int(self["log.roll.ms"])
        return int(self["log.roll.hours"]) * 3_600_000


def render_markdown() -> str:
    """docs/configuration.md's key table, generated from CONFIG_KEYS (a test keeps them equal)."""
    def fmt(v: Any) -> str:
        if v is None:
            return "null"
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, list):
            return ",".join(v)
        return str(v)

    rows = ["| key | type | default | effect in kafkalike |", "|---|---|---|---|"]
    for k in sorted(CONFIG_KEYS.values(), key=lambda k: (not k.effective, k.name)):
        rows.append(f"| `{k.name}` | {k.type} | `{fmt(k.default)}` | {k.doc} |")
    return "\n".join(rows) + "\n"

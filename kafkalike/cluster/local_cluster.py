"""LocalCluster: a ZooKeeper ensemble plus N broker processes on this machine, supervised by
pid file (what ``kafkalike cluster up|down|status`` and the integration tests run).

Layout under the base dir (default ``.kafkalike``)::

    <base>/cluster.json                 the cluster's shape, so ``up`` again reuses it
    <base>/zk/                          the ZooKeeper ensemble (see zk_ensemble.py)
    <base>/broker-<id>/server.properties
    <base>/broker-<id>/logs/            the broker's log.dirs (topic-partition directories)
    <base>/broker-<id>.log, .pid        the broker's output and pid
    <base>/prometheus/, prometheus.log, .pid   with --with-prometheus: config, TSDB, output, pid

Addresses: broker i listens on its own loopback address ``127.0.0.<i>`` at ``base_port``
(9092), so ``localhost:9092`` reaches broker 1 and an iptables rule can cut exactly one
broker's links (docs/design.md decision 8). ZooKeeper node i is on ``127.0.0.<i>:2181``.
Broker i serves Prometheus metrics at ``http://127.0.0.<i>:<metrics_port>/metrics``
(kafkalike.metrics.port: 7071 on the default base_port, off on other base ports unless
``metrics_port`` is given); ``start_prometheus`` runs Debian's prometheus scraping them all.

Teaching settings the launcher sets explicitly (and writes into each server.properties):
``zookeeper.session.timeout.ms=6000`` (Kafka's default is 18000; a shorter session makes a
killed broker's registration vanish, and its partitions move, within seconds, which is what
a learner wants to watch), ``controlled.shutdown.retry.backoff.ms=500`` (Kafka: 5000; when a
whole cluster stops at once no broker can take the leaderships, and each broker would wait
out three 5 s retries), ``group.initial.rebalance.delay.ms=0``
(as Kafka's quickstart server.properties), and, for clusters of fewer than 3 brokers,
``offsets.topic.replication.factor`` equal to the broker count (as Kafka's single-broker
examples set it to 1).

Restarting a killed broker: a kill -9 leaves the broker's ephemeral ``/brokers/ids/<id>``
in ZooKeeper until its session times out, and a broker started meanwhile exits at once, as
Kafka's does (KafkaZkClient.registerBroker -> checkedEphemeralCreate: NodeExistsException
"node already exists and owner ... does not match current session"). So before starting a
broker whose process is gone but whose id is still registered, ``start``/``start_broker``
say so (``say``, the CLI prints it) and wait for that registration to expire, at most the
broker's ``zookeeper.session.timeout.ms`` plus a margin (``stale_registration_wait_s``); a
registration still there then belongs to a live session (another broker with this id) and
is a ClusterError. A registration counts as the started process's only if it is not the one
seen before the start (its czxid, the broker epoch, differs), and every wait checks that the
started processes are alive, so one that exits during start-up fails the wait at once with
its last log lines.

All methods are synchronous; from trio use ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable, TypeVar

import attrs
import structlog
import trio

from kafkalike.cluster import process
from kafkalike.cluster.zk_ensemble import ZkEnsemble

if TYPE_CHECKING:
    from kafkalike.coordination.zookeeper_client import ZkSaslCredentials

log = structlog.get_logger(__name__)
T = TypeVar("T")

STATE_FILE = "cluster.json"

#: the admin's client certificate name with security "ssl" (principal User:CN=admin)
SSL_ADMIN = "admin"

# ZooKeeper expires a session between one and two ticks after its timeout; the margin also
# covers a busy machine. Seconds: max(STALE_MARGIN_MIN_S, timeout * STALE_MARGIN_FRACTION).
STALE_MARGIN_MIN_S = 3.0
STALE_MARGIN_FRACTION = 0.5

Say = Callable[[str], None]

#: kafkalike.metrics.port's default (the port Kafka users commonly give the JMX exporter agent)
DEFAULT_METRICS_PORT = 7071

#: the alert rules a --with-prometheus Prometheus loads (checked by promtool in the tests)
ALERT_RULES = Path(__file__).resolve().parents[2] / "prometheus" / "kafkalike-alerts.yml"


def _quiet(message: str) -> None:
    """The default ``say``: print nothing (every such message is also a structlog event)."""


class ClusterError(Exception):
    """The cluster could not be started, or a broker died; the message ends with the
    broker's last log lines when there are any."""


@attrs.frozen
class Registration:
    """The stat of one ``/brokers/ids/<id>``: ``czxid`` (the broker epoch, KIP-380) and
    ``session_id`` (its ephemeralOwner, the registering broker's ZooKeeper session)."""

    czxid: int
    session_id: int


@attrs.frozen
class ProcessStatus:
    """One supervised process: role ("zookeeper" | "broker"), id, address, pid, alive."""

    role: str
    id: int
    address: str
    pid: int | None
    alive: bool
    detail: str = ""
    metrics_url: str = ""


@attrs.define
class LocalCluster:
    """``brokers`` broker processes (ids 1..N) and, unless ``zookeeper_connect`` names an
    existing ensemble, a ``zk_nodes``-node ZooKeeper ensemble, all under ``base_dir``.

    base_port: every broker's port (each on its own address). chroot: ZooKeeper chroot for
    the brokers ("" = none; tests sharing an ensemble use one each). overrides: extra
    server.properties lines for every broker (Kafka property names).
    """

    base_dir: Path = attrs.field(converter=lambda p: Path(p).absolute())
    brokers: int = 3
    zk_nodes: int = 3
    base_port: int = 9092
    zk_base_port: int = 2181
    host_prefix: str = "127.0.0."
    first_host: int = 1
    chroot: str = ""
    zookeeper_connect: str | None = None
    overrides: dict[str, str] = attrs.Factory(dict)
    #: "plaintext", or "ssl": each broker also serves an SSL listener on ``ssl_port`` with a
    #: certificate from a CA made for this cluster (<base>/ssl/, kafkalike.cluster.certs),
    #: mutual TLS (ssl.client.auth=required, the principal the certificate's subject) used
    #: between brokers too, the AclAuthorizer denying by default with super.users naming every
    #: broker's certificate and the admin's (User:CN=admin, <base>/ssl/admin.pem), whose client
    #: properties are <base>/admin-client.properties; ZooKeeper secured as for sasl_* below;
    #: "sasl_plaintext"
    #: or "sasl_ssl": each broker also serves a SASL_PLAINTEXT / SASL_SSL listener on
    #: ``sasl_port`` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) that is also the inter-broker
    #: listener (SCRAM-SHA-512 as user "admin", whose credentials are written to ZooKeeper
    #: before the brokers start), and <base>/admin-client.properties holds the admin's client
    #: properties (SASL_SSL: certificates as for "ssl"). With sasl_* and the cluster's own
    #: ensemble, ZooKeeper is secured too: the ensemble accepts the SASL DIGEST-MD5 user "kafka"
    #: (password in <base>/kafka_server_jaas.conf, mode 0600) and the brokers log in as it with
    #: ``zookeeper.set.acl=true`` (docs/security.md "ZooKeeper security"). "sasl_ssl" also turns
    #: on the AclAuthorizer denying by default with ``super.users=User:admin`` (overrides win).
    security: str = "plaintext"
    #: every broker's kafkalike.metrics.port (each on its own address, like base_port); None:
    #: 7071 for a cluster on the default base_port 9092, else -1 (off), so that clusters on
    #: other ports (tests, benchmarks, chaos runs side by side) never fight over 7071
    metrics_port: int | None = None
    #: Prometheus's web port (on 127.0.0.1) for start_prometheus / --with-prometheus
    prometheus_port: int = 9090
    # broker id -> czxid of /brokers/ids/<id> seen right before this object started the
    # broker (None: absent); a registration with that czxid is not the new process's
    _seen_before_start: dict[int, int | None] = attrs.field(factory=dict, init=False, repr=False, eq=False)
    # the admin user's password with security sasl_* (see admin_password)
    _admin_password: str | None = attrs.field(default=None, init=False, repr=False, eq=False)
    # the brokers' ZooKeeper SASL password with security sasl_* (see zk_sasl_credentials)
    _zk_password: str | None = attrs.field(default=None, init=False, repr=False, eq=False)

    # ------------------------------------------------------------------ layout
    @classmethod
    def load(cls, base_dir: str | Path) -> "LocalCluster":
        """The cluster recorded in ``base_dir/cluster.json``; raises ClusterError if none."""
        path = Path(base_dir) / STATE_FILE
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            raise ClusterError(f"no kafkalike cluster in {base_dir} (no {STATE_FILE})") from None
        return cls(base_dir, **state)

    def _save(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        state = attrs.asdict(self, filter=lambda a, _: a.init)
        state.pop("base_dir")
        (self.base_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    @property
    def zk(self) -> ZkEnsemble | None:
        if self.zookeeper_connect:
            return None
        sasl = self.zk_sasl_credentials
        return ZkEnsemble(self.base_dir / "zk", nodes=self.zk_nodes, base_port=self.zk_base_port,
                          host_prefix=self.host_prefix, first_host=self.first_host,
                          sasl_users={sasl.username: sasl.password} if sasl else None)

    @property
    def zk_secured(self) -> bool:
        """True when the brokers log in to ZooKeeper and create znodes with Kafka's secure ACLs:
        security ssl or sasl_* on the cluster's own ensemble (an existing ``zookeeper_connect`` is
        left as it is: its users are not ours to make)."""
        return self.security in ("ssl", "sasl_plaintext", "sasl_ssl") and not self.zookeeper_connect

    @property
    def zk_jaas_path(self) -> Path:
        """<base>/kafka_server_jaas.conf: the brokers' (and tools') JAAS ``Client`` section."""
        return self.base_dir / "kafka_server_jaas.conf"

    @property
    def zk_sasl_credentials(self) -> ZkSaslCredentials | None:
        """The brokers' ZooKeeper login (user "kafka") when ``zk_secured``: read back from
        kafka_server_jaas.conf, else a random password made now (written by write_configs)."""
        from kafkalike.coordination import zookeeper_client

        if not self.zk_secured:
            return None
        if self._zk_password is None and self.zk_jaas_path.exists():
            found = zookeeper_client.read_jaas_client_section(self.zk_jaas_path.read_text())
            self._zk_password = found.password if found else None
        if self._zk_password is None:
            import secrets

            self._zk_password = secrets.token_urlsafe(24)
        return zookeeper_client.ZkSaslCredentials("kafka", self._zk_password)

    def _write_zk_jaas(self) -> None:
        sasl = self.zk_sasl_credentials
        if sasl is None:
            return
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.zk_jaas_path.write_text(
            "// written by kafkalike cluster up --security: the brokers' ZooKeeper login (Kafka's Client section)\n"
            "Client {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n"
            f'  username="{sasl.username}"\n  password="{sasl.password}";\n}};\n')
        self.zk_jaas_path.chmod(0o600)

    @property
    def zk_connect(self) -> str:
        """zookeeper.connect for the brokers, chroot included."""
        base = self.zookeeper_connect or self.zk.connect_string  # type: ignore[union-attr]  # zk is set when zookeeper_connect is not
        return base + ("/" + self.chroot.strip("/") if self.chroot.strip("/") else "")

    def broker_host(self, broker_id: int) -> str:
        return f"{self.host_prefix}{self.first_host + broker_id - 1}"

    def broker_address(self, broker_id: int) -> str:
        return f"{self.broker_host(broker_id)}:{self.base_port}"

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(self.broker_address(i) for i in self.broker_ids)

    @property
    def broker_ids(self) -> list[int]:
        return list(range(1, self.brokers + 1))

    def broker_dir(self, broker_id: int) -> Path:
        return self.base_dir / f"broker-{broker_id}"

    def config_path(self, broker_id: int) -> Path:
        return self.broker_dir(broker_id) / "server.properties"

    def log_path(self, broker_id: int) -> Path:
        return self.base_dir / f"broker-{broker_id}.log"

    def pid_path(self, broker_id: int) -> Path:
        return self.base_dir / f"broker-{broker_id}.pid"

    def server_properties(self, broker_id: int) -> dict[str, str]:
        """The properties broker ``broker_id`` runs with (Kafka names; see module doc)."""
        props = {
            "broker.id": str(broker_id),
            "listeners": f"PLAINTEXT://{self.broker_address(broker_id)}",
            **self._ssl_properties(broker_id),
            **self._sasl_properties(broker_id),
            "log.dirs": str(self.broker_dir(broker_id) / "logs"),
            "zookeeper.connect": self.zk_connect,
            "zookeeper.session.timeout.ms": "6000",
            "group.initial.rebalance.delay.ms": "0",
            "controlled.shutdown.retry.backoff.ms": "500",
            "offsets.topic.replication.factor": str(min(3, self.brokers)),
            "kafkalike.metrics.port": str(self.effective_metrics_port),
        }
        if self.zk_secured:
            props.update({"zookeeper.set.acl": "true", "kafkalike.zookeeper.jaas.config": str(self.zk_jaas_path)})
        props.update(self.overrides)
        return props

    @property
    def effective_metrics_port(self) -> int:
        """``metrics_port``, or its default: 7071 when base_port is 9092, else -1 (off)."""
        if self.metrics_port is not None:
            return self.metrics_port
        return DEFAULT_METRICS_PORT if self.base_port == 9092 else -1

    def metrics_url(self, broker_id: int) -> str:
        """Broker ``broker_id``'s Prometheus endpoint ``http://127.0.0.<i>:<port>/metrics``
        ("" when kafkalike.metrics.port is -1 or 0, i.e. off or not known in advance)."""
        port = int(self.server_properties(broker_id).get("kafkalike.metrics.port", DEFAULT_METRICS_PORT))
        return f"http://{self.broker_host(broker_id)}:{port}/metrics" if port > 0 else ""

    @property
    def ssl_port(self) -> int:
        """Every broker's SSL listener port with security "ssl": base_port + 1 (9093)."""
        return self.base_port + 1

    @property
    def ssl_dir(self) -> Path:
        return self.base_dir / "ssl"

    @property
    def ssl_bootstrap_servers(self) -> str:
        return ",".join(f"{self.broker_host(i)}:{self.ssl_port}" for i in self.broker_ids)

    @property
    def client_ssl_properties_path(self) -> Path:
        return self.base_dir / "client-ssl.properties"

    @property
    def ssl_super_users(self) -> str:
        """super.users with security "ssl": every broker's certificate principal (the
        inter-broker client's, which needs ClusterAction) and the admin's, ``;``-separated."""
        from kafkalike.cluster import certs

        return ";".join([f"User:{certs.broker_subject(i)}" for i in self.broker_ids] + [f"User:CN={SSL_ADMIN}"])

    def _ssl_properties(self, broker_id: int) -> dict[str, str]:
        """Mutual TLS (Kafka's SSL listener with ssl.client.auth=required) for clients and
        between brokers; the principal is the certificate's subject DN (default
        ssl.principal.mapping.rules); the AclAuthorizer denies by default."""
        if self.security != "ssl":
            return {}
        return {
            "listeners": f"PLAINTEXT://{self.broker_address(broker_id)},"
                         f"SSL://{self.broker_host(broker_id)}:{self.ssl_port}",
            "inter.broker.listener.name": "SSL",
            "ssl.client.auth": "required",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.ssl_dir / f"broker-{broker_id}.pem"),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ssl_dir / "ca.pem"),
            "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": self.ssl_super_users,
        }

    def _write_ssl_files(self) -> None:
        """The CA, each broker's PEM keystore and the admin's (made once), client-ssl.properties
        (truststore only: enough to check the brokers, not to pass ssl.client.auth=required) and
        admin-client.properties (the admin's PEM keystore too, mode 0600)."""
        from kafkalike.cluster import certs

        ca_pem, _ = certs.ensure_ca(self.ssl_dir)
        for i in self.broker_ids:
            certs.ensure_broker_keystore(self.ssl_dir, i, self.broker_host(i))
        admin_pem = certs.ensure_client_keystore(self.ssl_dir, SSL_ADMIN)
        self.client_ssl_properties_path.write_text(
            "# written by kafkalike cluster up --security ssl: Kafka Java client properties\n"
            f"# bootstrap.servers={self.ssl_bootstrap_servers}\n"
            "# the brokers require a client certificate (ssl.client.auth=required): add ssl.keystore.*\n"
            "security.protocol=SSL\n"
            "ssl.truststore.type=PEM\n"
            f"ssl.truststore.location={ca_pem}\n")
        path = self.admin_client_properties_path
        path.write_text(
            f"# written by kafkalike cluster up --security ssl: Kafka Java client properties (User:CN={SSL_ADMIN})\n"
            f"# bootstrap.servers={self.ssl_bootstrap_servers}\n"
            "security.protocol=SSL\n"
            "ssl.keystore.type=PEM\n"
            f"ssl.keystore.location={admin_pem}\n"
            "ssl.truststore.type=PEM\n"
            f"ssl.truststore.location={ca_pem}\n")
        path.chmod(0o600)

    # ------------------------------------------------------------------ SASL
    @property
    def sasl_listener_name(self) -> str:
        """SASL_PLAINTEXT or SASL_SSL (the listener name is the protocol's)."""
        return self.security.upper()

    @property
    def sasl_port(self) -> int:
        """Every broker's SASL listener port with security sasl_*: base_port + 1 (9093)."""
        return self.base_port + 1

    @property
    def sasl_bootstrap_servers(self) -> str:
        return ",".join(f"{self.broker_host(i)}:{self.sasl_port}" for i in self.broker_ids)

    @property
    def admin_client_properties_path(self) -> Path:
        return self.base_dir / "admin-client.properties"

    @property
    def admin_password(self) -> str:
        """The admin user's password: read back from admin-client.properties, else made now
        (random, 24 bytes URL-safe) and kept in memory until write_configs writes the file."""
        if self._admin_password:
            return self._admin_password
        from kafkalike.client.sasl import SaslClientConfig

        path = self.admin_client_properties_path
        if path.exists():
            props = dict(line.split("=", 1) for line in path.read_text().splitlines()
                         if "=" in line and not line.startswith("#"))
            password = SaslClientConfig.from_jaas("SCRAM-SHA-512", props["sasl.jaas.config"]).password
        else:
            import secrets

            password = secrets.token_urlsafe(24)
        self._admin_password = password
        return password

    def _sasl_properties(self, broker_id: int) -> dict[str, str]:
        if self.security not in ("sasl_plaintext", "sasl_ssl"):
            return {}
        name, password = self.sasl_listener_name, self.admin_password
        props = {
            "listeners": f"PLAINTEXT://{self.broker_address(broker_id)},"
                         f"{name}://{self.broker_host(broker_id)}:{self.sasl_port}",
            "inter.broker.listener.name": name,
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            f"listener.name.{name.lower()}.plain.sasl.jaas.config":
                f'org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
                f'password="{password}" user_admin="{password}";',
            f"listener.name.{name.lower()}.scram-sha-512.sasl.jaas.config":
                f'org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" '
                f'password="{password}";',
        }
        if self.security == "sasl_ssl":
            props.update({
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": str(self.ssl_dir / f"broker-{broker_id}.pem"),
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": str(self.ssl_dir / "ca.pem"),
                # deny by default; the inter-broker user may do anything (ClusterAction included)
                "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
                "allow.everyone.if.no.acl.found": "false",
                "super.users": "User:admin",
            })
        return props

    def _write_sasl_files(self) -> None:
        """The admin's SCRAM credentials in ZooKeeper (before any broker starts: the brokers
        authenticate to each other as admin), and admin-client.properties."""
        from kafkalike.broker.sasl_scram import ScramCredentialStore, ScramFormatter, ScramMechanism
        from kafkalike.cluster import certs
        from kafkalike.coordination import ZooKeeperClient
        from kafkalike.coordination.kafka_zk_client import KafkaZkClient, default_acls

        password = self.admin_password
        ca_pem = None
        if self.security == "sasl_ssl":
            self.ssl_dir.mkdir(parents=True, exist_ok=True)
            ca_pem, _ = certs.ensure_ca(self.ssl_dir)
            for i in self.broker_ids:
                certs.ensure_broker_keystore(self.ssl_dir, i, self.broker_host(i))

        zk_sasl = self.zk_sasl_credentials

        async def write_credentials() -> None:  # as the brokers' ZooKeeper user, with their ACLs
            async with ZooKeeperClient(self.zk_connect, name="cluster-sasl", sasl=zk_sasl,
                                       acl_provider=functools.partial(default_acls, True) if zk_sasl else None) as zk:
                kafka_zk = KafkaZkClient(zk)
                store = ScramCredentialStore(lambda: kafka_zk)
                existing = await store.user_config("admin")
                if all(m.mechanism_name in existing for m in ScramMechanism):
                    return
                await store.alter("admin", {m: ScramFormatter(m).generate_credential(password, 4096)
                                            for m in ScramMechanism}, ())

        _run_async(write_credentials)
        lines = [f"# written by kafkalike cluster up --security {self.security}: Kafka Java client properties",
                 f"# bootstrap.servers={self.sasl_bootstrap_servers}",
                 f"security.protocol={self.sasl_listener_name}",
                 "sasl.mechanism=SCRAM-SHA-512",
                 "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                 f'username="admin" password="{password}";']
        if ca_pem is not None:
            lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={ca_pem}"]
        path = self.admin_client_properties_path
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)

    def write_configs(self) -> None:
        self._write_zk_jaas()
        if self.security == "ssl":
            self._write_ssl_files()
        if self.security in ("sasl_plaintext", "sasl_ssl"):
            self._write_sasl_files()
        for i in self.broker_ids:
            self.broker_dir(i).mkdir(parents=True, exist_ok=True)
            lines = ["# written by kafkalike cluster up; Kafka's property names"]
            lines += [f"{k}={v}" for k, v in self.server_properties(i).items()]
            self.config_path(i).write_text("\n".join(lines) + "\n")

    # ------------------------------------------------------------------ processes
    def broker_pid(self, broker_id: int) -> int | None:
        return process.read_pid(self.pid_path(broker_id))

    def broker_alive(self, broker_id: int) -> bool:
        return process.is_alive(self.broker_pid(broker_id), expect_in_cmdline=str(self.config_path(broker_id)))

    def start_broker(self, broker_id: int, *, group: int | None = None, say: Say = _quiet,
                     stale_wait_s: float | None = None) -> int:
        """Start broker ``broker_id`` in the background (if not running); returns its pid.

        If its process is gone but ``/brokers/ids/<broker_id>`` is still registered (a kill -9:
        the old ZooKeeper session outlives the process), first ``say`` so and wait for that
        registration to expire, at most ``stale_wait_s`` seconds (default
        ``stale_registration_wait_s``); a broker started earlier would exit at once, as Kafka's
        does (KafkaZkClient.checkedEphemeralCreate: NodeExistsException). ClusterError if it
        is still there then (a live session: another broker with this id). ``group``: run the
        process with this gid (the chaos backend's iptables owner match). Does not wait for
        the registration; see ``wait_registered``.
        """
        if self.broker_alive(broker_id):
            return self.broker_pid(broker_id)  # type: ignore[return-value]  # broker_alive() True implies a pid
        stale = self._stale_registrations([broker_id])
        before = None
        if stale:
            before = self.wait_stale_registrations_gone(stale, say=say, timeout=stale_wait_s).get(broker_id)
        return self._spawn(broker_id, before, group=group)

    def _spawn(self, broker_id: int, before: "Registration | None", group: int | None = None) -> int:
        argv = [sys.executable, "-m", "kafkalike.cli.main", "broker", "start",
                "--config", str(self.config_path(broker_id))]
        self._seen_before_start[broker_id] = None if before is None else before.czxid
        spawned = process.spawn_detached(argv, self.log_path(broker_id), self.pid_path(broker_id), group=group)
        log.info("broker_process_started", broker=broker_id, pid=spawned.pid, gid=group)
        return spawned.pid

    def stop_broker(self, broker_id: int, timeout: float = 30.0) -> bool:
        """SIGTERM (clean shutdown), SIGKILL after ``timeout`` s. False if it wasn't running."""
        pid = self.broker_pid(broker_id)
        if not self.broker_alive(broker_id):
            return False
        return process.stop_pid(pid, timeout=timeout)

    def kill_broker(self, broker_id: int, sig: int = signal.SIGKILL) -> bool:
        """Send ``sig`` (default SIGKILL: a crash) to broker ``broker_id``."""
        if not self.broker_alive(broker_id):
            return False
        return process.kill_pid(self.broker_pid(broker_id), sig)

    def registered_broker_ids(self) -> list[int]:
        """Ids under /brokers/ids right now (asks ZooKeeper)."""
        from kafkalike.coordination import ZooKeeperClient
        from kafkalike.coordination.kafka_zk_client import KafkaZkClient

        async def ask() -> list[int]:
            async with ZooKeeperClient(self.zk_connect, session_timeout_ms=6000,
                                       connection_timeout_ms=10000, name="cluster-status") as zk:
                return await KafkaZkClient(zk).get_broker_ids()

        return _run_async(ask)

    def registrations(self) -> dict[int, Registration]:
        """Every ``/brokers/ids/<id>`` now, id -> its Registration (stats only: the JSON is not
        decoded, so a garbled one is still seen); one short ZooKeeper session, synced reads.
        Raises the coordination errors if ZooKeeper does not answer."""
        from kafkalike.coordination import NoNode, ZooKeeperClient
        from kafkalike.coordination.zk_data import BROKER_IDS_PATH, broker_id_path

        async def ask() -> dict[int, Registration]:
            async with ZooKeeperClient(self.zk_connect, session_timeout_ms=6000, connection_timeout_ms=10000,
                                       name="cluster-status", sync_reads=True) as zk:
                try:
                    names = await zk.get_children(BROKER_IDS_PATH)
                except NoNode:
                    return {}
                out = {}
                for name in names:
                    if name.isdigit() and (st := await zk.exists(broker_id_path(int(name)))) is not None:
                        out[int(name)] = Registration(st.czxid, st.ephemeral_owner)
                return out

        return _run_async(ask)

    def session_timeout_s(self, broker_id: int) -> float:
        """Broker ``broker_id``'s zookeeper.session.timeout.ms in seconds (Kafka's default
        18000 ms when the overrides remove it)."""
        return int(self.server_properties(broker_id).get("zookeeper.session.timeout.ms", "18000")) / 1000.0

    def stale_registration_wait_s(self, broker_id: int) -> float:
        """How long to wait for a dead broker's registration to expire, in seconds: its
        session timeout plus max(3 s, half of it) (ZooKeeper expires sessions on tick
        boundaries, and a busy machine is late)."""
        t = self.session_timeout_s(broker_id)
        return t + max(STALE_MARGIN_MIN_S, t * STALE_MARGIN_FRACTION)

    def _stale_registrations(self, broker_ids: list[int]) -> dict[int, Registration]:
        """Those of ``broker_ids`` whose process is not running but whose id is registered."""
        dead = [i for i in broker_ids if not self.broker_alive(i)]
        if not dead:
            return {}
        regs = self.registrations()
        return {i: regs[i] for i in dead if i in regs}

    def wait_stale_registrations_gone(self, stale: dict[int, Registration], say: Say = _quiet,
                                      timeout: float | None = None) -> dict[int, "Registration | None"]:
        """Block until each registration in ``stale`` (id -> the registration of a broker
        whose process is gone) has expired: the znode is absent or has another czxid.

        ``say`` gets one line per broker before waiting and one when it is gone. Waits at most
        ``timeout`` s (default: each broker's ``stale_registration_wait_s``). Returns id -> the
        registration there now (None: absent). ClusterError naming the owner session if one is
        still there then: that session is alive (another broker with this id runs against
        this ZooKeeper), and a broker started now would exit with Kafka's "node already exists
        and owner does not match current session".
        """
        started = time.monotonic()
        limits = {i: timeout if timeout is not None else self.stale_registration_wait_s(i) for i in stale}
        for i, reg in stale.items():
            t = self.session_timeout_s(i)
            say(f"broker {i}: waiting up to {t:g} s for the previous session's registration to expire "
                f"(/brokers/ids/{i} is held by session 0x{reg.session_id:x}; its process is gone) ...")
            log.info("broker_waiting_stale_registration", broker=i, session=f"0x{reg.session_id:x}",
                     broker_epoch=reg.czxid, wait_s=round(limits[i], 1))
        pending = dict(stale)
        now_regs: dict[int, Registration | None] = {}
        while True:
            try:
                regs = self.registrations()
            except Exception as exc:  # ZooKeeper not answering (e.g. no quorum): poll on until the limit
                log.info("registrations_read_failed", error=repr(exc))
                regs = dict(pending)
            for i in list(pending):
                cur = regs.get(i)
                if cur is None or cur.czxid != pending[i].czxid:
                    waited = time.monotonic() - started
                    say(f"broker {i}: the previous registration expired after {waited:.1f} s; starting it")
                    log.info("broker_stale_registration_gone", broker=i, waited_s=round(waited, 1))
                    now_regs[i] = cur
                    del pending[i]
            if not pending:
                return now_regs
            waited = time.monotonic() - started
            for i, reg in pending.items():
                if waited > limits[i]:
                    raise ClusterError(
                        f"broker {i}: /brokers/ids/{i} is still held by session 0x{reg.session_id:x} "
                        f"{waited:.0f} s after its process was found gone (zookeeper.session.timeout.ms="
                        f"{self.session_timeout_s(i) * 1000:.0f}): that session is alive, so another broker "
                        f"with id {i} runs against {self.zk_connect}; stop it or give this cluster its own "
                        "ZooKeeper chroot")
            time.sleep(0.25)

    def _raise_if_exited(self, broker_ids: list[int], when: str) -> None:
        """ClusterError with the last log lines of the first of ``broker_ids`` not running."""
        for i in broker_ids:
            if not self.broker_alive(i):
                pid = self.broker_pid(i)
                who = f"broker {i} (pid {pid})" if pid is not None else f"broker {i} (never started)"
                how = process.exit_description(pid)
                raise ClusterError(f"{who} exited {when}{' (' + how + ')' if how else ''}; last lines of "
                                   f"{self.log_path(i)}:\n{process.tail(self.log_path(i), 15)}")

    def wait_registered(self, broker_ids: list[int], timeout: float = 60.0) -> None:
        """Block until every id in ``broker_ids`` is registered by its new process: a
        registration seen right before this object started the broker (a dead predecessor's)
        does not count. ClusterError at once, with its last log lines, if a broker process
        is gone (e.g. it refused its config, its port or its id), or after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            self._raise_if_exited(broker_ids, "during start-up")
            regs = self.registrations()
            # None (absent before the start, or not started here) never equals a czxid
            registered = {i for i, reg in regs.items() if reg.czxid != self._seen_before_start.get(i)}
            if set(broker_ids) <= registered:
                return
            if time.monotonic() > deadline:
                missing = sorted(set(broker_ids) - registered)
                tails = "\n".join(f"--- broker {i}:\n{process.tail(self.log_path(i), 10)}" for i in missing)
                raise ClusterError(f"brokers {missing} did not register within {timeout:.0f}s\n{tails}")
            time.sleep(0.2)

    def metadata_broker_ids(self, broker_id: int) -> list[int]:
        """The live brokers broker ``broker_id`` lists in a Metadata response (its metadata
        cache, filled only by the controller's UpdateMetadata); [] if it doesn't answer."""
        return metadata_broker_ids_at(self.broker_address(broker_id))

    def wait_ready(self, broker_ids: list[int], timeout: float = 60.0) -> None:
        """Block until each of ``broker_ids`` answers Metadata listing all of them: registered
        is not enough, a broker knows the cluster only after the controller's UpdateMetadata
        (the ZooKeeper era's propagation lag). ClusterError on timeout, and at once (with its
        last log lines) if one of their processes is gone."""
        wait_metadata_lists_all(broker_ids, self.broker_address,
                                lambda: self._raise_if_exited(broker_ids, "before it was ready"), timeout,
                                "registered but did not receive the cluster's metadata from the controller",
                                poll_s=0.2)

    def start(self, timeout: float = 90.0, say: Say = _quiet) -> None:
        """Start the ensemble (if ours) and every broker; return once all are registered and
        each one's metadata cache lists them all (so clients can bootstrap from any of them).
        Re-running on a cluster that is up starts only what is missing and keeps all data.

        A broker killed moments ago (kill -9) is started once its old registration has
        expired (``say`` tells which, see ``wait_stale_registrations_gone``); the others are
        started at once. ClusterError, with a broker's last log lines, as soon as one of the
        started processes exits, or after ``timeout`` s of waiting for registration/metadata.
        """
        self._save()
        self._write_zk_jaas()  # the ensemble's SASL user and the brokers' login share its password
        ens = self.zk
        if ens is not None:
            ens.start(timeout=timeout)
        self.write_configs()
        stale = self._stale_registrations(self.broker_ids)
        for i in self.broker_ids:
            if i not in stale and not self.broker_alive(i):
                self._spawn(i, None)
        if stale:
            now = self.wait_stale_registrations_gone(stale, say=say)
            for i in stale:
                self._spawn(i, now.get(i))
        self.wait_registered(self.broker_ids, timeout=timeout)
        self.wait_ready(self.broker_ids, timeout=timeout)

    def stop(self) -> None:
        """Stop every broker (clean shutdown, in parallel) then the ensemble; nothing is left."""
        stop_in_parallel([self.broker_pid(i) for i in self.broker_ids if self.broker_alive(i)])
        self.stop_prometheus()
        ens = self.zk
        if ens is not None:
            ens.stop()

    def status(self) -> list[ProcessStatus]:
        """Every process of the cluster: ZooKeeper nodes then brokers."""
        out: list[ProcessStatus] = []
        ens = self.zk
        if ens is not None:
            for s in ens.status():
                out.append(ProcessStatus("zookeeper", s.node_id, s.address, s.pid, s.alive, s.mode or ""))
        for i in self.broker_ids:
            out.append(ProcessStatus("broker", i, self.broker_address(i), self.broker_pid(i), self.broker_alive(i),
                                     metrics_url=self.metrics_url(i)))
        pid = self.prometheus_pid()
        if pid is not None:
            out.append(ProcessStatus("prometheus", 0, f"127.0.0.1:{self.prometheus_port}", pid,
                                     self.prometheus_alive(), detail=self.prometheus_url))
        return out

    # ------------------------------------------------------------------ Prometheus
    @property
    def prometheus_dir(self) -> Path:
        return self.base_dir / "prometheus"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    def prometheus_pid(self) -> int | None:
        return process.read_pid(self.base_dir / "prometheus.pid")

    def prometheus_alive(self) -> bool:
        return process.is_alive(self.prometheus_pid(), expect_in_cmdline=str(self.prometheus_dir))

    def prometheus_config(self, scrape_interval_s: float = 5.0) -> str:
        """prometheus.yml scraping every broker's /metrics (job "kafkalike", label broker=<id>),
        with the alert rules of the repository's prometheus/kafkalike-alerts.yml when present."""
        lines = ["# written by kafkalike cluster up --with-prometheus", "global:",
                 f"  scrape_interval: {scrape_interval_s:g}s", f"  evaluation_interval: {scrape_interval_s:g}s"]
        if ALERT_RULES.exists():
            lines += ["rule_files:", f"  - {json.dumps(str(ALERT_RULES))}"]
        lines += ["scrape_configs:", "  - job_name: kafkalike", "    static_configs:"]
        for i in self.broker_ids:
            url = self.metrics_url(i)
            if url:
                target = url.removeprefix("http://").removesuffix("/metrics")
                lines += [f"      - targets: [{json.dumps(target)}]", f"        labels: {{broker: \"{i}\"}}"]
        return "\n".join(lines) + "\n"

    def start_prometheus(self, binary: str = "prometheus", timeout: float = 30.0) -> int:
        """Write the scrape config and start Debian's ``prometheus`` on 127.0.0.1:prometheus_port
        (pid in <base>/prometheus.pid, output in <base>/prometheus.log, TSDB under
        <base>/prometheus/data); returns its pid once its /-/ready answers. Already running:
        its pid. ClusterError if it is not installed, exits, or is not ready within ``timeout`` s
        (then it is stopped)."""
        import shutil
        import urllib.request

        if self.prometheus_alive():
            return self.prometheus_pid()  # type: ignore[return-value]  # prometheus_alive() True implies a pid
        exe = shutil.which(binary)
        if exe is None:
            raise ClusterError(f"{binary} is not installed (Debian: apt-get install prometheus)")
        self._save()
        self.prometheus_dir.mkdir(parents=True, exist_ok=True)
        config = self.prometheus_dir / "prometheus.yml"
        config.write_text(self.prometheus_config())
        argv = [exe, f"--config.file={config}", f"--storage.tsdb.path={self.prometheus_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.prometheus_port}", "--storage.tsdb.retention.time=2d"]
        log_path = self.base_dir / "prometheus.log"
        pid = process.spawn_detached(argv, log_path, self.base_dir / "prometheus.pid").pid
        log.info("prometheus_started", pid=pid, url=self.prometheus_url)
        deadline = time.monotonic() + timeout
        while True:
            if not self.prometheus_alive():
                raise ClusterError(f"prometheus (pid {pid}) exited; last lines of {log_path}:\n"
                                   f"{process.tail(log_path, 15)}")
            try:
                with urllib.request.urlopen(f"{self.prometheus_url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return pid
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop_prometheus()
                raise ClusterError(f"prometheus (pid {pid}) not ready within {timeout:.0f}s; last lines of "
                                   f"{log_path}:\n{process.tail(log_path, 15)}")
            time.sleep(0.2)

    def stop_prometheus(self) -> bool:
        """Stop the Prometheus this cluster started (by its pid file); False if none ran."""
        if not self.prometheus_alive():
            return False
        return process.stop_pid(self.prometheus_pid(), timeout=15.0)


def _run_async(fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn`` in a trio run of its own and return its result: here when no trio run is
    active in this thread, else in a worker thread (a test's async code calls these blocking
    methods too, and trio.run cannot nest)."""
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return trio.run(fn)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(trio.run, fn).result()


def metadata_broker_ids_at(address: str) -> list[int]:
    """The broker ids the broker at ``address`` (host:port) lists in a Metadata answer (ZooKeeper
    mode: its metadata cache, filled by the controller's UpdateMetadata; KRaft: its image's
    unfenced brokers), sorted; [] if it does not answer within 5 s."""
    from kafkalike.client.errors import ClientError
    from kafkalike.client.kafka_client import KafkaClient

    async def ask() -> list[int]:
        client = KafkaClient([address], client_id="cluster-status", request_timeout_ms=5000)
        try:
            await client.start()
            return sorted((await client.refresh_metadata([])).brokers)
        finally:
            await client.aclose()

    try:
        return _run_async(ask)
    except (ClientError, OSError):
        return []


def wait_metadata_lists_all(broker_ids: list[int], address_of: Callable[[int], str], check_running: Callable[[], None],
                            timeout: float, failure: str, poll_s: float) -> None:
    """Block until every broker of ``broker_ids`` (its address: ``address_of(id)``) answers
    Metadata listing all of them: clients can bootstrap from any. ``check_running()`` is called
    before each round (it raises ClusterError when a process is gone); ClusterError
    ``brokers [...] <failure> within <timeout>s`` after ``timeout`` s; polls every ``poll_s`` s."""
    deadline = time.monotonic() + timeout
    pending = list(broker_ids)
    while pending:
        check_running()
        pending = [i for i in pending if not set(broker_ids) <= set(metadata_broker_ids_at(address_of(i)))]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"brokers {pending} {failure} within {timeout:.0f}s")
        time.sleep(poll_s)


def stop_in_parallel(pids: list[int | None]) -> None:
    """SIGTERM every process of ``pids`` at once (a broker: controlled shutdown), then wait for
    each, SIGKILL after 30 s (process.stop_pid); None entries are skipped."""
    alive = [pid for pid in pids if pid is not None]
    for pid in alive:
        process.signal_pid(pid, signal.SIGTERM)
    for pid in alive:
        process.stop_pid(pid, timeout=30.0)

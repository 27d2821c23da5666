"""A broker's configuration from environment variables named in the KAFKA_CFG_* manner.

Containers are configured through their environment (compose/docker-compose.yml). The
convention is Bitnami's Kafka image's: every variable ``KAFKA_CFG_<NAME>`` sets one broker
property, named by stripping the prefix, lowercasing, and turning ``_`` into ``.``::

    KAFKA_CFG_ZOOKEEPER_CONNECT=zk1:2181,zk2:2181   ->  zookeeper.connect=zk1:2181,zk2:2181
    KAFKA_CFG_BROKER_ID=2                            ->  broker.id=2

Property names with a real underscore or a dash cannot be written that way, so (as
Confluent's images do for their ``KAFKA_`` variables) runs of underscores escape them:
``__`` (two) is ``-`` and ``___`` (three) is ``_``, e.g. ``KAFKA_CFG_A___B__C_D`` ->
``a_b-c.d``. A run of four or more underscores, or nothing after the prefix, is an error.

**Confluent's convention** (the ``confluentinc/cp-kafka`` image) is accepted beside it: every
other variable ``KAFKA_<NAME>`` sets a property the same way (``KAFKA_BROKER_ID`` ->
``broker.id``, ``KAFKA_ZOOKEEPER_CONNECT`` -> ``zookeeper.connect``; ``__`` is ``-``, ``___``
``_``, as Confluent's configuration reference says), except the variables cp-kafka reads for
the JVM and its logging, not as properties (CONFLUENT_NOT_PROPERTIES: ``KAFKA_HEAP_OPTS``,
``KAFKA_OPTS``, ``KAFKA_JMX_PORT`` ...), which are ignored, and ``confluent.*`` properties
(Confluent Server's own features, e.g. ``KAFKA_CONFLUENT_LICENSE_TOPIC_REPLICATION_FACTOR``
in Confluent's examples), which kafkalike does not have and skips (returned by
``ignored_from_env``). Two more cp-kafka defaults apply when any ``KAFKA_<NAME>`` property
is set: ``listeners`` unset is ``advertised.listeners`` with every host replaced by
``0.0.0.0`` (cp-kafka's ``cub listeners``), and ``log.dirs`` unset is ``/var/lib/kafka/data``.
Both conventions may be mixed; two variables setting one property are an error.

``property_name(variable) -> str`` and its inverse ``variable_for(property) -> str``;
``confluent_property_name(variable) -> str | None`` for ``KAFKA_<NAME>``;
``properties_from_env(environ) -> {property: value}`` (EnvConfigError on a bad name);
``config_from_env(environ, overrides) -> KafkaConfig`` validates them as a server.properties
would be: an unknown key raises the usual one-line ConfigError, here naming the variable.
Other variables (``KAFKA_HEAP_OPTS``, ``PATH``, ``KAFKALIKE_*`` ...) are ignored.
Sources: Bitnami's Kafka image README ("Configuration"); Confluent's "Docker Image
Configuration Reference" (cp-kafka, ``KAFKA_`` variables) and cp-kafka's ``configure`` script.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from kafkalike.broker.kafka_config import ConfigError, KafkaConfig, apply_overrides

PREFIX = "KAFKA_CFG_"
CONFLUENT_PREFIX = "KAFKA_"
CONFLUENT_NOT_PROPERTIES = frozenset({
    "KAFKA_VERSION", "KAFKA_HEAP_OPTS", "KAFKA_LOG4J_OPTS", "KAFKA_OPTS", "KAFKA_JMX_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_GC_LOG_OPTS", "KAFKA_LOG4J_ROOT_LOGLEVEL", "KAFKA_LOG4J_LOGGERS",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL", "KAFKA_JMX_HOSTNAME", "KAFKA_JMX_PORT", "KAFKA_DEBUG",
    "KAFKA_KRAFT_CLUSTER_ID",
})
"""``KAFKA_*`` variables cp-kafka reads for the JVM, JMX and log4j, never as broker properties, and
Bitnami's KAFKA_KRAFT_CLUSTER_ID (the cluster id the image's start script formats KRaft storage
with: compose/image/kafkalike-start)."""
CONFLUENT_LOG_DIRS = "/var/lib/kafka/data"
"""cp-kafka's default ``log.dirs``."""

_UNDERSCORES = {1: ".", 2: "-", 3: "_"}


class EnvConfigError(ConfigError):
    """A KAFKA_CFG_* variable's name does not map onto a property name (one line)."""


def property_name(variable: str) -> str:
    """The broker property a ``KAFKA_CFG_*`` variable sets ("KAFKA_CFG_LOG_DIRS" ->
    "log.dirs"). Raises EnvConfigError if ``variable`` lacks the prefix, names nothing, or
    holds a run of four or more underscores."""
    if not variable.startswith(PREFIX):
        raise EnvConfigError(f"environment variable {variable!r} does not start with {PREFIX!r}")
    rest = variable[len(PREFIX):]
    if not rest or rest.startswith("_") or rest.endswith("_"):
        raise EnvConfigError(f"environment variable {variable!r} names no configuration key "
                             f"(expected {PREFIX}<NAME>, e.g. {PREFIX}BROKER_ID)")

    return _unescape(variable, rest)


def _unescape(variable: str, rest: str) -> str:
    def sub(m: re.Match[str]) -> str:
        n = len(m.group(0))
        if n not in _UNDERSCORES:
            raise EnvConfigError(f"environment variable {variable!r}: {n} underscores in a row "
                                 "(one is '.', two are '-', three are '_')")
        return _UNDERSCORES[n]

    return re.sub(r"_+", sub, rest).lower()


def confluent_property_name(variable: str) -> str | None:
    """The broker property a Confluent-style ``KAFKA_<NAME>`` variable sets ("KAFKA_BROKER_ID"
    -> "broker.id", "KAFKA_A___B__C_D" -> "a_b-c.d"), or None for a variable that is not one
    (no ``KAFKA_`` prefix, a ``KAFKA_CFG_*`` one, or one of CONFLUENT_NOT_PROPERTIES). Raises
    EnvConfigError for a name with a stray underscore or four in a row."""
    if (not variable.startswith(CONFLUENT_PREFIX) or variable.startswith(PREFIX)
            or variable in CONFLUENT_NOT_PROPERTIES):
        return None
    rest = variable[len(CONFLUENT_PREFIX):]
    if not rest or rest.startswith("_") or rest.endswith("_"):
        raise EnvConfigError(f"environment variable {variable!r} names no configuration key "
                             f"(expected {CONFLUENT_PREFIX}<NAME>, e.g. {CONFLUENT_PREFIX}BROKER_ID)")
    return _unescape(variable, rest)


def _variables(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """(variable, property) of every variable that names a property, KAFKA_CFG_* first."""
    out = [(var, property_name(var)) for var in sorted(environ) if var.startswith(PREFIX)]
    for var in sorted(environ):
        name = confluent_property_name(var)
        if name is not None:
            out.append((var, name))
    return out


def ignored_from_env(environ: Mapping[str, str]) -> list[str]:
    """The ``KAFKA_<NAME>`` variables skipped because they set a ``confluent.*`` property."""
    return [var for var, name in _variables(environ) if name.startswith("confluent.") and not var.startswith(PREFIX)]


def properties_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """{property name: value} of every ``KAFKA_CFG_*`` and Confluent-style ``KAFKA_<NAME>``
    variable in ``environ`` (sorted by variable name), with cp-kafka's ``listeners`` and
    ``log.dirs`` defaults when a Confluent-style one is present (module doc). Raises
    EnvConfigError on a name that maps onto nothing, or on two variables mapping onto one
    property (e.g. ``KAFKA_CFG_LOG_DIRS`` and ``KAFKA_LOG_DIRS``)."""
    out: dict[str, str] = {}
    source: dict[str, str] = {}
    ignored = set(ignored_from_env(environ))
    for var, name in _variables(environ):
        if var in ignored:
            continue
        if name in out:
            raise EnvConfigError(f"environment variables {source[name]!r} and {var!r} both set {name!r}")
        out[name] = environ[var]
        source[name] = var
    if any(not var.startswith(PREFIX) for var in source.values()):
        if "listeners" not in out and out.get("advertised.listeners"):
            out["listeners"] = ",".join(re.sub(r"^([^:]+://)(\[[^]]*\]|[^:]*)(:)", r"\g<1>0.0.0.0\3", ep.strip())
                                        for ep in out["advertised.listeners"].split(","))
        if "log.dirs" not in out and "log.dir" not in out:
            out["log.dirs"] = CONFLUENT_LOG_DIRS
    return out


def config_from_env(environ: Mapping[str, str], overrides: Iterable[str] = ()) -> KafkaConfig:
    """A validated KafkaConfig from ``environ``'s KAFKA_CFG_* variables, then ``key=value``
    overrides (later wins, as ``--override`` after a server.properties). Raises ConfigError
    (one line: an unknown key names its variable, a bad value its key) or EnvConfigError."""
    props = properties_from_env(environ)
    variables = dict((name, var) for var, name in _variables(environ))
    where = {name: f"environment variable {variables.get(name, variable_for(name))}" for name in props}
    apply_overrides(props, where, overrides)
    if not props:
        raise EnvConfigError(f"no {PREFIX}* (or Confluent-style KAFKA_*) environment variables set "
                             f"(e.g. {PREFIX}BROKER_ID=1, {PREFIX}ZOOKEEPER_CONNECT=zk1:2181)")
    return KafkaConfig.from_mapping(props, source=lambda k: where.get(k, "?"))


def variable_for(name: str) -> str:
    """The variable that sets property ``name`` ("log.dirs" -> "KAFKA_CFG_LOG_DIRS"; the
    inverse of property_name)."""
    return PREFIX + name.replace("_", "___").replace("-", "__").replace(".", "_").upper()

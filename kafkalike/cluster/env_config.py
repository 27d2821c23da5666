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

``property_name(variable) -> str`` and its inverse ``variable_for(property) -> str``;
``properties_from_env(environ) -> {property: value}`` (EnvConfigError on a bad name);
``config_from_env(environ, overrides) -> KafkaConfig`` validates them as a server.properties
would be: an unknown key raises the usual one-line ConfigError, here naming the variable.
Other variables (``KAFKA_HEAP_OPTS``, ``PATH`` ...) are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from kafkalike.broker.kafka_config import ConfigError, KafkaConfig, apply_overrides

PREFIX = "KAFKA_CFG_"

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

    def sub(m: re.Match[str]) -> str:
        n = len(m.group(0))
        if n not in _UNDERSCORES:
            raise EnvConfigError(f"environment variable {variable!r}: {n} underscores in a row "
                                 "(one is '.', two are '-', three are '_')")
        return _UNDERSCORES[n]

    return re.sub(r"_+", sub, rest).lower()


def properties_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """{property name: value} of every ``KAFKA_CFG_*`` variable in ``environ`` (sorted by
    variable name). Raises EnvConfigError on a name that maps onto nothing, or on two
    variables mapping onto one property (e.g. ``KAFKA_CFG_LOG_DIRS`` and ``kafka_cfg_log_dirs``)."""
    out: dict[str, str] = {}
    source: dict[str, str] = {}
    for var in sorted(environ):
        if not var.startswith(PREFIX):
            continue
        name = property_name(var)
        if name in out:
            raise EnvConfigError(f"environment variables {source[name]!r} and {var!r} both set {name!r}")
        out[name] = environ[var]
        source[name] = var
    return out


def config_from_env(environ: Mapping[str, str], overrides: Iterable[str] = ()) -> KafkaConfig:
    """A validated KafkaConfig from ``environ``'s KAFKA_CFG_* variables, then ``key=value``
    overrides (later wins, as ``--override`` after a server.properties). Raises ConfigError
    (one line: an unknown key names its variable, a bad value its key) or EnvConfigError."""
    props = properties_from_env(environ)
    where = {name: f"environment variable {variable_for(name)}" for name in props}
    apply_overrides(props, where, overrides)
    if not props:
        raise EnvConfigError(f"no {PREFIX}* environment variables set (e.g. {PREFIX}BROKER_ID=1, "
                             f"{PREFIX}ZOOKEEPER_CONNECT=zk1:2181)")
    return KafkaConfig.from_mapping(props, source=lambda k: where.get(k, "?"))


def variable_for(name: str) -> str:
    """The variable that sets property ``name`` ("log.dirs" -> "KAFKA_CFG_LOG_DIRS"; the
    inverse of property_name)."""
    return PREFIX + name.replace("_", "___").replace("-", "__").replace(".", "_").upper()

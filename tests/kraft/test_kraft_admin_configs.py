"""Dynamic broker configs in KRaft mode: ConfigRecords of the BROKER resource ("" = the
cluster-wide <default>, or a broker id) reach the ZooKeeper mode's DynamicBrokerConfig through
the metadata publisher, which reconfigures a real ReplicaManager (LogManager on tmp_path) as a
/config/changes notification does in ZooKeeper mode (Kafka 3.9's DynamicConfigPublisher)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kafkalike.broker.dynamic_broker_config import LEADER_THROTTLED_RATE, DynamicBrokerConfig
from kafkalike.broker.forwarding_manager import KRaftControlPlane
from kafkalike.coordination.zk_data import TopicPartition
from kafkalike.image.metadata_image import CONFIG_RESOURCE_BROKER
from kafkalike.protocol import metadata_records as mr
from tests.kraft.test_kraft_broker_publisher import FOO, ME, kraft_broker, partition, register


def _broker_config(name: str, key: str, value: str | None) -> mr.ConfigRecord:
    return mr.ConfigRecord(resource_type=CONFIG_RESOURCE_BROKER, resource_name=name, name=key, value=value)


async def test_broker_config_records_reconfigure_the_broker_default_then_its_own_then_removed(
        tmp_path: Path) -> None:
    async with kraft_broker(tmp_path) as b:
        no_channel: Any = None  # configs are read from the image; nothing goes to a controller here
        plane = KRaftControlPlane(ME, no_channel, lambda: b.loader.image, lambda: 10)
        static_config = b.rm.config
        dynamic = DynamicBrokerConfig(static_config, ME, plane)  # type: ignore[arg-type]
        dynamic.reconfigurables.append(b.rm.reconfigure)
        b.publisher.dynamic_config = dynamic
        await b.commit(register(ME), register(2), mr.TopicRecord(name="foo", topic_id=FOO),
                       partition(FOO, 0, (ME, 2)))
        foo0 = b.log_manager.logs[TopicPartition("foo", 0)]
        default_retention = foo0.config.retention_ms

        await b.commit(_broker_config("", "log.retention.ms", "3600000"))
        assert dynamic.dynamic_default == {"log.retention.ms": "3600000"}
        assert b.rm.config["log.retention.ms"] == 3600000 and foo0.config.retention_ms == 3600000

        # another broker's configs are not this broker's; its own win over the default
        await b.commit(_broker_config("2", "log.retention.ms", "60000"))
        assert foo0.config.retention_ms == 3600000
        await b.commit(_broker_config(str(ME), "log.retention.ms", "120000"),
                       _broker_config(str(ME), LEADER_THROTTLED_RATE, "1000000"))
        assert foo0.config.retention_ms == 120000 and dynamic.quota_rate(LEADER_THROTTLED_RATE) == 1000000
        described = {d.name: d for d in dynamic.describe(str(ME))}
        assert described["log.retention.ms"].value == "120000"

        # a null value deletes the key (ConfigRecord semantics): back to the default, then static
        await b.commit(_broker_config(str(ME), "log.retention.ms", None))
        assert foo0.config.retention_ms == 3600000
        await b.commit(_broker_config("", "log.retention.ms", None))
        assert foo0.config.retention_ms == default_retention and dynamic.dynamic_default == {}


async def test_a_full_resynchronisation_loads_the_broker_configs_already_in_the_image(tmp_path: Path) -> None:
    async with kraft_broker(tmp_path) as b:
        no_channel: Any = None
        plane = KRaftControlPlane(ME, no_channel, lambda: b.loader.image, lambda: 10)
        dynamic = DynamicBrokerConfig(b.rm.config, ME, plane)  # type: ignore[arg-type]
        b.publisher.dynamic_config = dynamic
        # the first publish is a full one: the configs it carries are applied as they are loaded
        await b.commit(register(ME), _broker_config("", "log.retention.ms", "7200000"),
                       _broker_config(str(ME), "message.max.bytes", "2000000"))
        assert dynamic.current["log.retention.ms"] == 7200000 and dynamic.current["message.max.bytes"] == 2000000

"""Controller timings against a real 3-node ZooKeeper ensemble (not collected by pytest).

    .venv/bin/python tests/controller/bench_controller.py [PARTITIONS]

Starts its own ensemble (stopped at the end), registers brokers 1-3 (ZooKeeper sessions
holding /brokers/ids/<id>, no listeners, so no broker answers: this measures the controller
and ZooKeeper, not request delivery), then times, for one RF=3 topic of PARTITIONS partitions:
creation until every partition has a leader in the context (state znodes written); broker 1's
failure until no partition is led by it or has it in its ISR; a controlled shutdown of
broker 2; a new controller's failover (read everything, elect nothing).
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path

import structlog
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kafkalike.cluster.zk_ensemble import ZkEnsemble, find_free_base_port  # noqa: E402
from kafkalike.controller.kafka_controller import KafkaController  # noqa: E402
from kafkalike.coordination import ZooKeeperClient  # noqa: E402
from kafkalike.coordination import zk_data as zd  # noqa: E402
from kafkalike.coordination.kafka_zk_client import KafkaZkClient  # noqa: E402
from kafkalike.coordination.zookeeper_client import now_ms  # noqa: E402


async def register(connect: str, broker_id: int) -> ZooKeeperClient:
    zk = ZooKeeperClient(connect, session_timeout_ms=6000, name=f"broker-{broker_id}")
    await zk.start()
    await KafkaZkClient(zk).register_broker(zd.BrokerRegistration(
        broker_id, (zd.EndPoint("PLAINTEXT", "127.0.0.1", 1),), timestamp_ms=now_ms()))
    return zk


async def measure(connect: str, n: int) -> dict[str, float]:
    zk = ZooKeeperClient(connect, session_timeout_ms=6000)
    await zk.start()
    kzk = KafkaZkClient(zk)
    await kzk.create_top_level_paths()
    brokers = {b: await register(connect, b) for b in (1, 2, 3)}
    out: dict[str, float] = {"partitions": n}
    config = {"auto.leader.rebalance.enable": False}
    async with trio.open_nursery() as nursery:
        c = KafkaController(100, config, zk=zk)
        await nursery.start(c.run)
        await c.became_active.wait()
        while len(c.context.live_brokers) < 3:
            await trio.sleep(0.01)
        parts = {p: zd.ReplicaAssignment(tuple((p + i) % 3 + 1 for i in range(3))) for p in range(n)}
        t0 = time.monotonic()
        await kzk.create_topic_assignment(zd.TopicAssignment("big", parts, zd.generate_uuid_base64()))
        while len(c.context.leadership) < n:
            await trio.sleep(0.005)
        out["create_s"] = time.monotonic() - t0
        t0 = time.monotonic()
        await brokers[1].close()
        while any(li.leader == 1 or 1 in li.isr for li in c.context.leadership.values()):
            await trio.sleep(0.005)
        out["broker_failure_s"] = time.monotonic() - t0
        t0 = time.monotonic()
        _error, remaining = await c.controlled_shutdown(2)
        out["controlled_shutdown_s"] = time.monotonic() - t0
        out["remaining"] = len(remaining)
        c.shutdown()
        await c.stopped.wait()
        zk2 = ZooKeeperClient(connect, session_timeout_ms=6000)
        await zk2.start()
        c2 = KafkaController(200, config, zk=zk2)
        t0 = time.monotonic()
        await nursery.start(c2.run)
        await c2.became_active.wait()
        out["failover_s"] = time.monotonic() - t0
        c2.shutdown()
        await c2.stopped.wait()
        await zk2.close()
    for b in brokers.values():
        await b.close()
    await zk.close()
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    with tempfile.TemporaryDirectory() as d:
        ens = ZkEnsemble(d, nodes=3, base_port=find_free_base_port(hosts))
        ens.start(timeout=60)
        try:
            result = trio.run(measure, ens.connect_string + "/bench", n)
        finally:
            ens.stop()
    print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()

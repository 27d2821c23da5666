"""Measure kafkalike.client against a reference Apache Kafka 3.9 cluster (ZooKeeper mode).

Not a test (pytest does not collect it). Run: ``.venv/bin/python
tests/client/measure_client_reference.py [RECORDS]`` (default 100,000). It starts a 3-broker
``ReferenceKafka`` in a temporary directory (stopped by pid at the end), creates a
6-partition RF-3 topic, and prints JSON: producer records/s (acks=1, acks=all, lz4), consumer
records/s, Metadata latency on one connection sequential vs 500 pipelined, and kafka-python's
producer records/s for scale. docs/client.md, "Measured", holds results.
"""
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import trio
from kafkalike.bench import reference_kafka as rk
from kafkalike.client import AdminClient, KafkaClient, KafkaConsumer, KafkaProducer, NewTopic, TopicPartition
from kafkalike.protocol.api_keys import ApiKey

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
SIZE = 100

async def bench(bootstrap: str) -> dict:
    out = {}
    async with KafkaClient(bootstrap) as client:
        topic = f"bench-{uuid.uuid4().hex[:6]}"
        await AdminClient(client).create_topics([NewTopic(topic, 6, 3)])
        value = b"x" * SIZE
        for acks, comp in ((1, "none"), (-1, "none"), (1, "lz4")):
            async with KafkaProducer(client, acks=acks, compression_type=comp, linger_ms=5, batch_size=65536) as p:
                t0 = time.perf_counter()
                pend = [await p.enqueue(topic, value, key=str(i).encode()) for i in range(N)]
                await p.flush()
                dt = time.perf_counter() - t0
                assert all(x.done for x in pend)
            out[f"produce acks={acks} {comp}"] = round(N / dt)
        cons = KafkaConsumer(client, auto_offset_reset="earliest", fetch_max_wait_ms=100)
        cons.assign([TopicPartition(topic, p) for p in range(6)])
        t0 = time.perf_counter()
        n = 0
        while n < 3 * N:
            n += len(await cons.poll())
        out["consume"] = round(n / (time.perf_counter() - t0))
        conn = await client.any_connection()
        t0 = time.perf_counter()
        for _ in range(500):
            await conn.call(ApiKey.METADATA, topics=[{"name": topic}])
        seq = (time.perf_counter() - t0) / 500
        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(500):
                nursery.start_soon(lambda: conn.call(ApiKey.METADATA, topics=[{"name": topic}]))
        pip = (time.perf_counter() - t0) / 500
        out["metadata sequential us/req"] = round(seq * 1e6)
        out["metadata pipelined(500) us/req"] = round(pip * 1e6)
    return out

def kp_bench(bootstrap: str) -> dict:
    from kafka import KafkaProducer as KP
    topic = f"kp-{uuid.uuid4().hex[:6]}"
    p = KP(bootstrap_servers=bootstrap, acks=1, linger_ms=5, batch_size=65536)
    t0 = time.perf_counter()
    for i in range(N):
        p.send(topic, key=str(i).encode(), value=b"x" * SIZE)
    p.flush()
    return {"kafka-python produce acks=1": round(N / (time.perf_counter() - t0))}

def main():
    rk.fetch()
    hosts = [f"{rk.HOST_PREFIX}{i}" for i in (1, 2, 3)]
    port = rk.find_free_port(hosts, span=2)
    c = rk.ReferenceKafka(mode="zk", base_dir=Path(tempfile.mkdtemp(prefix="client-bench-")) / "ref", port=port, controller_port=port+1,
                          zookeeper_port=rk.find_free_port([rk.ZOOKEEPER_HOST], span=1))
    try:
        c.up(fresh=True, timeout=240)
        res = trio.run(bench, c.bootstrap)
        res.update(kp_bench(c.bootstrap))
        print(json.dumps(res, indent=1))
    finally:
        c.down(timeout=60)


if __name__ == "__main__":
    main()

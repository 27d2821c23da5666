"""`kafkalike zk tree`: the znode tree with data and ephemeral markers, from a real ensemble."""

from __future__ import annotations

import json
import subprocess
import sys

import trio

from kafkalike.coordination import ZooKeeperClient
from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.kafka_zk_client import KafkaZkClient
from kafkalike.coordination.zk_tree import render, walk


async def _populate(zk: ZooKeeperClient) -> None:
    kzk = KafkaZkClient(zk)
    await kzk.create_top_level_paths()
    for bid in (1, 2, 3):
        await kzk.register_broker(
            zd.BrokerRegistration(bid, (zd.EndPoint("PLAINTEXT", f"127.0.0.{bid}", 9092),), timestamp_ms=1700000000000)
        )
    await zk.create("/bin", b"\x00\xff\x01")


async def test_walk_lists_subtree_depth_first_with_ephemeral_flags(zk_client: ZooKeeperClient) -> None:
    """walk() returns /brokers and everything below it in name order; only broker ids are ephemeral."""
    await _populate(zk_client)
    nodes = await walk(zk_client, "/brokers")
    assert [n.path for n in nodes] == [
        "/brokers", "/brokers/ids", "/brokers/ids/1", "/brokers/ids/2", "/brokers/ids/3",
        "/brokers/seqid", "/brokers/topics",
    ]
    assert [n.path for n in nodes if n.ephemeral] == ["/brokers/ids/1", "/brokers/ids/2", "/brokers/ids/3"]
    lines = render(nodes)
    assert lines[2].startswith("/brokers/ids/1  [ephemeral owner=0x")
    assert lines[2].endswith('"host":"127.0.0.1","version":5,"timestamp":"1700000000000"}')
    [binary] = render(await walk(zk_client, "/bin"))
    assert binary == "/bin  0x00ff01"


async def test_cli_tree_prints_broker_nodes(zk_client: ZooKeeperClient, zk_chroot_connect: str) -> None:
    """`kafkalike zk tree /brokers/ids --zookeeper ...` prints three ephemeral nodes with JSON."""
    await _populate(zk_client)
    proc = await trio.to_thread.run_sync(lambda: subprocess.run(
        [sys.executable, "-m", "kafkalike.cli.main", "zk", "tree", "/brokers/ids", "--zookeeper", zk_chroot_connect],
        capture_output=True, text=True, timeout=60,
    ))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "/brokers/ids"
    assert len(lines) == 4 and all("[ephemeral owner=0x" in line for line in lines[1:])
    assert '"endpoints":["PLAINTEXT://127.0.0.2:9092"]' in lines[2]
    as_json = await trio.to_thread.run_sync(lambda: subprocess.run(
        [sys.executable, "-m", "kafkalike.cli.main", "zk", "tree", "/brokers/ids", "--zookeeper", zk_chroot_connect, "--json"],
        capture_output=True, text=True, timeout=60,
    ))
    docs = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [d["ephemeral"] for d in docs] == [False, True, True, True]
    assert json.loads(docs[3]["data"])["host"] == "127.0.0.3"


async def test_cli_tree_on_missing_path_is_one_line_error(zk_chroot_connect: str) -> None:
    """A path that does not exist gives exit code 1 and one line naming it."""
    proc = await trio.to_thread.run_sync(lambda: subprocess.run(
        [sys.executable, "-m", "kafkalike.cli.main", "zk", "tree", "/nope", "--zookeeper", zk_chroot_connect],
        capture_output=True, text=True, timeout=60,
    ))
    assert proc.returncode == 1
    assert proc.stderr.strip() == "kafkalike zk: no znode /nope"

"""A Raft voter as a process, for tests and demos: ``python -m kafkalike.raft.node``.

    python -m kafkalike.raft.node --node-id 1 --voters 1@127.0.0.1:9093,2@127.0.0.1:9094,3@127.0.0.1:9095 \\
        --dir /tmp/raft/1 [--cluster-id ID] [--noop-interval-ms 100] [--snapshot-every 0] \\
        [--election-timeout-ms 1000] ...

Opens (or creates) ``<dir>/__cluster_metadata-0`` (segments and ``quorum-state``), serves the Raft
RPCs on its own voter address, and while it is leader appends one NoOpRecord batch every
``--noop-interval-ms`` (0: none) as a demo workload. Every event is one JSON line on stdout
(structlog): ``raft_leader_elected``, ``quorum_state_changed``, ``raft_log_truncated``, and
``committed`` for each batch the node sees committed (``base_offset``, ``last_offset``, ``epoch``,
``control``), so a test can follow it. ``--snapshot-every N``: every N committed offsets the node
writes a snapshot and drops the log before it (``raft_snapshot_created``); a voter that comes back
behind the leader's log start fetches it (``raft_snapshot_installed``). SIGTERM/SIGINT: the leader
resigns (EndQuorumEpoch), the log is flushed and closed, exit 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import structlog
import trio

from kafkalike.logs import configure as configure_logs
from kafkalike.protocol import metadata_records as mr
from kafkalike.raft.kafka_metadata_log import Batch, KafkaMetadataLog
from kafkalike.raft.kafka_raft_client import (KafkaRaftClient, LeaderAndEpoch, NotLeaderError, RaftConfig,
                                              RaftServer, parse_voters)
from kafkalike.raft.quorum_state import QUORUM_STATE_FILE, FileQuorumStateStore, QuorumState
from kafkalike.storage.snapshots import Snapshot, SnapshotId

log = structlog.get_logger("kafkalike.raft.node")


class _PrintingListener:
    """Logs every committed batch and leader change (one JSON line each); remembers the last
    committed offset (for --snapshot-every)."""

    last_committed_offset = -1

    def handle_commit(self, batch: Batch) -> None:
        self.last_committed_offset = batch.last_offset
        log.info("committed", base_offset=batch.base_offset, last_offset=batch.last_offset, epoch=batch.epoch,
                 control=bool(batch.control_records), records=len(batch.records))

    def handle_leader_change(self, leader: LeaderAndEpoch) -> None:
        log.info("leader_changed", leader_id=leader.leader_id, epoch=leader.epoch)

    def handle_load_snapshot(self, snapshot_id: SnapshotId, snapshot: Snapshot) -> None:
        self.last_committed_offset = snapshot_id.end_offset - 1
        log.info("snapshot_loaded", end_offset=snapshot_id.end_offset, epoch=snapshot_id.epoch,
                 records=len(snapshot.records))


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m kafkalike.raft.node", description=__doc__.splitlines()[0])
    p.add_argument("--node-id", type=int, required=True)
    p.add_argument("--voters", required=True, help="controller.quorum.voters: 1@host:port,2@host:port,...")
    p.add_argument("--dir", type=Path, required=True, help="metadata log dir (holds __cluster_metadata-0)")
    p.add_argument("--cluster-id", default=None)
    p.add_argument("--noop-interval-ms", type=int, default=100)
    p.add_argument("--election-timeout-ms", type=int, default=1000)
    p.add_argument("--election-backoff-max-ms", type=int, default=1000)
    p.add_argument("--fetch-timeout-ms", type=int, default=2000)
    p.add_argument("--snapshot-every", type=int, default=0,
                   help="write a snapshot (and drop the log before it) every N committed offsets; 0: never")
    return p.parse_args(argv)


async def run_node(args: argparse.Namespace) -> None:
    """Run one voter until SIGTERM/SIGINT."""
    voters = parse_voters(args.voters)
    if args.node_id not in voters:
        raise SystemExit(f"node {args.node_id} is not among the voters {sorted(voters)}")
    config = RaftConfig(node_id=args.node_id, voters=voters, cluster_id=args.cluster_id,
                        election_timeout_ms=args.election_timeout_ms,
                        election_backoff_max_ms=args.election_backoff_max_ms, fetch_timeout_ms=args.fetch_timeout_ms)
    metadata_log = KafkaMetadataLog.open(args.dir)
    quorum = QuorumState(args.node_id, set(voters), FileQuorumStateStore(metadata_log.dir / QUORUM_STATE_FILE))
    listener = _PrintingListener()
    client = KafkaRaftClient(config, metadata_log, quorum, listener)
    host, port = voters[args.node_id]
    try:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(client.run)
                bound = await nursery.start(RaftServer(client).serve, host, port)
                log.info("raft_node_started", node_id=args.node_id, host=host, port=bound, dir=str(args.dir))
                if args.noop_interval_ms > 0:
                    nursery.start_soon(_noop_workload, client, args.noop_interval_ms)
                if args.snapshot_every > 0:
                    nursery.start_soon(_snapshots, client, listener, args.snapshot_every)
                async for signum in signals:
                    log.info("raft_node_stopping", node_id=args.node_id, signal=signum)
                    await client.shutdown()  # a leader resigns: EndQuorumEpoch to the others
                    nursery.cancel_scope.cancel()
                    break
    finally:
        metadata_log.close()


async def _noop_workload(client: KafkaRaftClient, interval_ms: int) -> None:
    while True:
        await trio.sleep(interval_ms / 1000)
        try:
            client.append([mr.NoOpRecord()])
        except NotLeaderError:
            pass


async def _snapshots(client: KafkaRaftClient, listener: _PrintingListener, every: int) -> None:
    """The demo's state is nothing but the count of NoOps, so its snapshots hold a header and a
    footer only; what matters is that the log before them goes away and late voters fetch them."""
    while True:
        await trio.sleep(0.5)
        end = listener.last_committed_offset + 1
        latest = client.log.latest_snapshot_id()
        if end - (latest.end_offset if latest else 0) >= every and end > client.log.start_offset:
            client.create_snapshot(end, [])


def main(argv: list[str] | None = None) -> int:
    """Entry point; JSON log lines on stdout."""
    configure_logs(fmt="json", stream=sys.stdout)
    trio.run(run_node, _parse(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())

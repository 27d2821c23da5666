"""One controller epoch fences LeaderAndIsr, StopReplica and UpdateMetadata alike, as Kafka's
ReplicaManager.controllerEpoch does: a controller epoch seen in any of them makes an older
controller's request of any kind STALE_CONTROLLER_EPOCH."""

from __future__ import annotations

from pathlib import Path

from kafkalike.protocol.errors import ErrorCode
from tests.broker.broker_helpers import connect, leader_and_isr, running_broker, update_metadata


async def test_update_metadata_from_older_controller_is_stale_after_a_newer_leader_and_isr(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """After LeaderAndIsr from controller epoch 5, UpdateMetadata from epoch 4 is refused and
    leaves the metadata cache as it was; epoch 5 is accepted."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        me = server.broker_id
        ok = await conn.send(leader_and_isr(server, "fenced", {0: (me, [me], [me])}, controller_epoch=5),
                             api_version=6)
        assert ok.error_code == 0
        updates_before = server.metadata_cache.updates
        stale = await conn.send(update_metadata([server], "fenced", {0: (me, [me], [me])}, controller_epoch=4),
                                api_version=7)
        assert stale.error_code == ErrorCode.stale_controller_epoch
        assert server.metadata_cache.updates == updates_before
        current = await conn.send(update_metadata([server], "fenced", {0: (me, [me], [me])}, controller_epoch=5),
                                  api_version=7)
        assert current.error_code == 0
        assert server.metadata_cache.controller_epoch == 5


async def test_leader_and_isr_from_older_controller_is_stale_after_a_newer_update_metadata(
        tmp_path: Path, zk_chroot_connect: str) -> None:
    """After UpdateMetadata from controller epoch 7, LeaderAndIsr from epoch 6 is refused."""
    async with running_broker(tmp_path, zk_chroot_connect) as server, connect(server) as conn:
        me = server.broker_id
        ok = await conn.send(update_metadata([server], "fenced", {}, controller_epoch=7), api_version=7)
        assert ok.error_code == 0
        stale = await conn.send(leader_and_isr(server, "fenced", {0: (me, [me], [me])}, controller_epoch=6),
                                api_version=6)
        assert stale.error_code == ErrorCode.stale_controller_epoch
        assert server.replica_manager.partition_statistics() == {}

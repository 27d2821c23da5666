"""KafkaZkClient: Kafka's typed ZooKeeper operations over ZooKeeperClient (Kafka's
kafka/zk/KafkaZkClient.scala), using the paths and codecs of zk_data.

What the broker uses on start-up: ``create_top_level_paths``, ``get_or_create_cluster_id``,
``register_broker`` (returns the broker epoch = czxid of the ephemeral registration, and
refuses an id held by another live session). What the controller uses:
``register_controller_and_increment_epoch`` (one multi-op: create the ephemeral /controller
and bump /controller_epoch conditionally, Kafka's KAFKA-6082 fencing), and conditional
partition-state writes guarded by a ``CheckOp`` on /controller_epoch's zkVersion
(``ControllerMoved`` when another controller got there first), one at a time or many pipelined
at once (``update_leader_and_isr_many``, Kafka's updateLeaderAndIsr; kafkalike packs 50
partitions into one guarded multi where Kafka sends one each, see PARTITIONS_PER_MULTI). Partition leaders update their
ISR conditionally on the state's zkVersion (``update_partition_state``) and post an
ISR-change notification.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import attrs
import structlog
from kazoo.security import ACL, CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE

from kafkalike.coordination import zk_data as zd
from kafkalike.coordination.errors import BadVersion, ConnectionLoss, MultiOpFailed, NodeExists, NoNode
from kafkalike.coordination.zookeeper_client import (
    CheckOp,
    CreateOp,
    DeleteOp,
    Op,
    SetDataOp,
    ZnodeStat,
    ZooKeeperClient,
    now_ms,
)

log = structlog.get_logger(__name__)

#: Kafka's ZkData.SensitiveRootPaths: znodes under these (SCRAM credentials in /config/users,
#: broker configs with passwords, delegation tokens) get no world READ when secured.
SENSITIVE_ROOT_PATHS = ("/config/users", "/config/brokers", "/delegation_token/tokens")


def sensitive_path(path: str) -> bool:
    """Kafka's ZkData.sensitivePath: ``path`` starts with one of SENSITIVE_ROOT_PATHS (a plain
    prefix test, as Kafka's ``startsWith``)."""
    return any(path.startswith(root) for root in SENSITIVE_ROOT_PATHS)


#: Kafka 3.9 ZkData.SecureRootPaths (with ZkAclStore.securePaths): the subtrees
#: ZkSecurityMigrator (zookeeper-security-migration.sh) sets ACLs on.
SECURE_ROOT_PATHS = ("/admin", "/brokers", "/cluster", "/config", "/controller", "/controller_epoch",
                     "/isr_change_notification", "/latest_producer_id_block", "/log_dir_event_notification",
                     "/delegation_token", "/kafka-acl-extended", "/migration", "/feature",
                     "/kafka-acl", "/kafka-acl-changes", "/kafka-acl-extended-changes")


async def migrate_acls(zk: ZooKeeperClient, is_secure: bool) -> int:
    """Kafka's ZkSecurityMigrator: set ``default_acls(is_secure, path)`` on every znode of the
    SECURE_ROOT_PATHS subtrees that exist (``secure``: creator ALL + world READ, none for the
    sensitive ones; ``unsecure``: world ALL). The session's login becomes the ``auth`` identity,
    so run it as the brokers' ZooKeeper user. Returns the number of znodes updated.
    Raises NoAuth where the session lacks ADMIN on a znode."""
    count = 0
    stack = [p for p in reversed(SECURE_ROOT_PATHS)]
    while stack:
        path = stack.pop()
        try:
            await zk.set_acls(path, default_acls(is_secure, path))
            children = await zk.get_children(path)
        except NoNode:
            continue
        count += 1
        stack.extend(f"{path}/{c}" for c in reversed(children))
    return count


def default_acls(is_secure: bool, path: str) -> list[ACL]:
    """The ACL Kafka creates znode ``path`` (chroot-relative) with (Kafka 3.9 ZkData.defaultAcls).

    ``is_secure`` (``zookeeper.set.acl=true``): the creator's authenticated identity
    (``sasl:<user>``, ZooKeeper's ``auth`` scheme) gets ALL, and everyone READ unless
    ``sensitive_path(path)``. Not secure: world:anyone ALL (OPEN_ACL_UNSAFE). A secured create
    from an unauthenticated session fails with ZooKeeper's INVALIDACL.
    """
    if not is_secure:
        return list(OPEN_ACL_UNSAFE)
    acls = list(CREATOR_ALL_ACL)
    if not sensitive_path(path):
        acls += list(READ_ACL_UNSAFE)
    return acls


class KafkaZkError(Exception):
    """Base of KafkaZkClient's own errors."""


class BrokerIdInUse(KafkaZkError):
    """``/brokers/ids/<id>`` is held by another live session (another broker with this id)."""


class ControllerMoved(KafkaZkError):
    """The controller epoch moved on: another broker is (or became) the controller, so this
    one must not write (Kafka's ControllerMovedException)."""


class TopicExists(KafkaZkError):
    """``/brokers/topics/<t>`` already exists (Kafka's TopicExistsException)."""


@attrs.frozen
class RegisteredBroker:
    """A broker registration read back: the decoded JSON and its ``broker_epoch`` (czxid)."""

    registration: zd.BrokerRegistration
    broker_epoch: int
    session_id: int


@attrs.frozen
class ControllerEpoch:
    """``/controller_epoch``'s value and its zkVersion (the fencing token for controller writes)."""

    epoch: int
    zk_version: int


#: Partition-state writes per guarded multi of ``update_leader_and_isr_many`` and
#: ``create_partition_states_many``. Kafka sends one multi (check + setData) per partition, 10 in
#: flight; kazoo's client CPU is mostly per request, several times the Java client's (docs/
#: benchmarks.md "kazoo against ZooKeeper's Java client"), so kafkalike packs 50 partitions behind
#: one check: one request, one server transaction. A pack is all or nothing; ``_guarded_each``
#: sends a failed pack's other writes again one per multi, so each partition's outcome is its own.
PARTITIONS_PER_MULTI = 50


@attrs.define
class UpdateLeaderAndIsrResult:
    """Outcome of ``update_leader_and_isr_many`` (Kafka's UpdateLeaderAndIsrResult):
    succeeded {tp: new zkVersion}; bad_version [tp] to re-read and retry; failed {tp: error}
    (e.g. NoNode) for the rest."""

    succeeded: dict[zd.TopicPartition, int] = attrs.Factory(dict)
    bad_version: list[zd.TopicPartition] = attrs.Factory(list)
    failed: dict[zd.TopicPartition, BaseException] = attrs.Factory(dict)


class KafkaZkClient:
    """Typed Kafka ZooKeeper operations. ``zk`` must be started. All methods are async and
    raise the coordination errors (ConnectionLoss, SessionExpired, ...) besides their own."""

    def __init__(self, zk: ZooKeeperClient, partitions_per_multi: int = PARTITIONS_PER_MULTI) -> None:
        self.zk = zk
        #: partition-state writes packed into one guarded multi by the batch calls (``_guarded_each``)
        self.partitions_per_multi = max(1, partitions_per_multi)

    # ---- start-up ---------------------------------------------------------------------------

    async def create_top_level_paths(self) -> None:
        """Create every persistent path a broker expects (zk_data.PERSISTENT_PATHS) if absent."""
        for path in zd.PERSISTENT_PATHS:
            await self.zk.create_if_absent(path)

    async def get_cluster_id(self) -> str | None:
        """The cluster id in ``/cluster/id``, or None if absent."""
        try:
            data, _ = await self.zk.get(zd.CLUSTER_ID_PATH)
        except NoNode:
            return None
        return zd.ClusterIdZNode.from_json(data).id

    async def get_or_create_cluster_id(self, proposed: str | None = None) -> str:
        """The cluster id; if absent, create ``/cluster/id`` with ``proposed`` (default: a new
        random id). A concurrent creator wins and its id is returned (Kafka's
        KafkaZkClient.createOrGetClusterId)."""
        existing = await self.get_cluster_id()
        if existing is not None:
            return existing
        node = zd.ClusterIdZNode(proposed) if proposed else zd.ClusterIdZNode.generate()
        try:
            await self.zk.create(zd.CLUSTER_ID_PATH, node.to_json(), make_parents=True)
            log.info("cluster_id_created", cluster_id=node.id)
            return node.id
        except NodeExists:
            got = await self.get_cluster_id()
            assert got is not None
            return got

    # ---- brokers ------------------------------------------------------------------------------

    async def register_broker(self, registration: zd.BrokerRegistration) -> int:
        """Create the ephemeral ``/brokers/ids/<id>``; returns the broker epoch (its czxid).

        If the node exists and belongs to this session (a retried create after a connection
        loss) its czxid is returned. Raises BrokerIdInUse if another session holds it
        (Kafka's checkedEphemeralCreate / "node already exists and owner does not match").
        """
        path = registration.path
        try:
            _, stat = await self.zk.create(path, registration.to_json(), ephemeral=True)
        except NodeExists:
            try:
                _, stat = await self.zk.get(path)
            except NoNode:  # vanished meanwhile (old session expired): try once more
                _, stat = await self.zk.create(path, registration.to_json(), ephemeral=True)
            else:
                if stat.ephemeral_owner != self.zk.session_id:
                    raise BrokerIdInUse(
                        f"broker.id {registration.broker_id} is already registered at {path} by another "
                        f"live session 0x{stat.ephemeral_owner:x} (this session is {self.zk.session_id_hex})"
                    ) from None
        log.info("broker_registered", broker_id=registration.broker_id, broker_epoch=stat.czxid,
                 endpoints=[e.connection_string for e in registration.endpoints])
        return stat.czxid

    async def update_broker_info(self, registration: zd.BrokerRegistration) -> None:
        """Rewrite this broker's registration data (node must exist). Raises NoNode."""
        await self.zk.set(registration.path, registration.to_json())

    async def get_broker(self, broker_id: int) -> RegisteredBroker | None:
        """Broker ``broker_id``'s registration and epoch, or None if not registered."""
        try:
            data, stat = await self.zk.get(zd.broker_id_path(broker_id))
        except NoNode:
            return None
        return RegisteredBroker(zd.BrokerRegistration.from_json(broker_id, data), stat.czxid, stat.ephemeral_owner)

    async def get_broker_ids(self) -> list[int]:
        """Ids of registered (live) brokers, ascending."""
        try:
            names = await self.zk.get_children(zd.BROKER_IDS_PATH)
        except NoNode:
            return []
        return sorted(int(n) for n in names if n.isdigit())

    async def get_all_brokers(self) -> dict[int, RegisteredBroker]:
        """Every registered broker by id (brokers that vanish while reading are skipped)."""
        out: dict[int, RegisteredBroker] = {}
        for broker_id in await self.get_broker_ids():
            b = await self.get_broker(broker_id)
            if b is not None:
                out[broker_id] = b
        return out

    # ---- controller ---------------------------------------------------------------------------

    async def get_controller_id(self) -> int | None:
        """The active controller's broker id, or None if there is none."""
        try:
            data, _ = await self.zk.get(zd.CONTROLLER_PATH)
        except NoNode:
            return None
        return zd.ControllerZNode.from_json(data).broker_id

    async def get_controller_epoch(self) -> ControllerEpoch | None:
        """``/controller_epoch`` and its zkVersion, or None if it was never created."""
        try:
            data, stat = await self.zk.get(zd.CONTROLLER_EPOCH_PATH)
        except NoNode:
            return None
        return ControllerEpoch(zd.decode_controller_epoch(data), stat.version)

    async def _get_or_create_controller_epoch(self) -> ControllerEpoch:
        await self.zk.sync(zd.CONTROLLER_EPOCH_PATH)  # a stale epoch would only lose the election
        current = await self.get_controller_epoch()
        if current is not None:
            return current
        try:  # Kafka's KafkaController.InitialControllerEpoch = 0 / InitialControllerEpochZkVersion = 0
            await self.zk.create(zd.CONTROLLER_EPOCH_PATH, zd.encode_controller_epoch(0))
        except NodeExists:
            pass
        current = await self.get_controller_epoch()
        assert current is not None
        return current

    async def register_controller_and_increment_epoch(self, broker_id: int) -> ControllerEpoch:
        """Try to become controller: in ONE multi-op create the ephemeral ``/controller`` and
        set ``/controller_epoch`` to epoch + 1 conditionally on its zkVersion (Kafka's
        registerControllerAndIncrementControllerEpoch). Returns the new epoch and zkVersion.

        Raises ControllerMoved if another broker is controller or won the race.
        """
        current = await self._get_or_create_controller_epoch()
        new_epoch = current.epoch + 1
        ops: list[Op] = [
            CreateOp(zd.CONTROLLER_PATH, zd.ControllerZNode(broker_id, now_ms()).to_json(), ephemeral=True),
            SetDataOp(zd.CONTROLLER_EPOCH_PATH, zd.encode_controller_epoch(new_epoch), current.zk_version),
        ]
        while True:
            try:
                results = await self.zk.multi(ops)
                break
            except ConnectionLoss:
                # outcome unknown: once reconnected, either our multi was applied or we retry it
                # (the version check makes the retry safe), as Kafka's ZooKeeperClient retries
                await self.zk.wait_connected()
                won = await self._controller_is_ours(new_epoch)
                if won is not None:
                    return won
            except MultiOpFailed as exc:
                won = await self._controller_is_ours(new_epoch)
                if won is not None:
                    return won
                raise ControllerMoved(
                    f"controller election lost ({type(exc.error).__name__} at op {exc.index})"
                ) from None
        epoch_stat = results[1]
        assert isinstance(epoch_stat, ZnodeStat)
        log.info("controller_elected", broker_id=broker_id, controller_epoch=new_epoch, epoch_zk_version=epoch_stat.version)
        return ControllerEpoch(new_epoch, epoch_stat.version)

    async def _controller_is_ours(self, new_epoch: int) -> ControllerEpoch | None:
        """After an unclear election attempt: our epoch if /controller is owned by this session
        and /controller_epoch holds ``new_epoch`` (Kafka's checkControllerAndEpoch), else None."""
        try:
            _, stat = await self.zk.get(zd.CONTROLLER_PATH)
        except NoNode:
            return None
        epoch = await self.get_controller_epoch()
        if stat.ephemeral_owner == self.zk.session_id and epoch is not None and epoch.epoch == new_epoch:
            return epoch
        return None

    async def delete_controller(self, epoch_zk_version: int) -> None:
        """Resign: delete ``/controller`` if the controller epoch's zkVersion is still
        ``epoch_zk_version``. Raises ControllerMoved otherwise; a missing node is fine."""
        try:
            await self.zk.multi([CheckOp(zd.CONTROLLER_EPOCH_PATH, epoch_zk_version), DeleteOp(zd.CONTROLLER_PATH)])
        except MultiOpFailed as exc:
            if exc.index == 0:
                raise ControllerMoved("controller epoch moved; not deleting /controller") from None
            if not isinstance(exc.error, NoNode):
                raise

    async def _guarded(self, epoch_zk_version: int, ops: list[Op]) -> list[Any]:
        """Run ``ops`` behind a CheckOp on /controller_epoch; index shift hidden from callers.
        Raises ControllerMoved, or MultiOpFailed for the op of ``ops`` that failed."""
        [outcome] = await self._guarded_many(epoch_zk_version, [ops])
        if isinstance(outcome, MultiOpFailed):
            raise outcome
        return outcome

    async def _guarded_many(self, epoch_zk_version: int, batches: Sequence[Sequence[Op]]
                            ) -> list[list[Any] | MultiOpFailed]:
        """``_guarded`` for many independent batches pipelined at once (ZooKeeperClient.
        multi_many): each gets its own CheckOp on /controller_epoch. Returns per batch its
        results or its MultiOpFailed, index shift hidden. Raises ControllerMoved if any batch's
        epoch check failed (that batch wrote nothing; others may have been applied before the
        epoch moved, as in Kafka)."""
        check = CheckOp(zd.CONTROLLER_EPOCH_PATH, epoch_zk_version)
        outcomes = await self.zk.multi_many([[check, *ops] for ops in batches])
        out: list[list[Any] | MultiOpFailed] = []
        for o in outcomes:
            if isinstance(o, MultiOpFailed):
                if o.index == 0:
                    raise ControllerMoved(
                        f"/controller_epoch is no longer at zkVersion {epoch_zk_version}: another controller was elected")
                out.append(MultiOpFailed(o.index - 1, o.op, o.error, o.results[1:]))
            else:
                out.append(o[1:])
        return out

    async def _guarded_each(self, epoch_zk_version: int, ops: Sequence[Op]) -> list[Any]:
        """Apply each of ``ops`` (independent writes to different znodes) behind the controller-
        epoch check, ``partitions_per_multi`` of them packed into one multi, every pack
        pipelined at once (``_guarded_many``). Returns per op, in order, its result (ZnodeStat
        for a SetDataOp, the created path for a CreateOp) or its error (BadVersion, NoNode,
        NodeExists, ...).

        A multi is all or nothing and ZooKeeper names only its first failing op: that op gets its
        error, and the pack's other ops (rolled back) are sent again, one op per multi, which is
        Kafka's shape (one MultiRequest per partition) and isolates every remaining failure. So
        at most two rounds; ``partitions_per_multi`` = 1 sends Kafka's one multi per partition.
        Raises ControllerMoved if the epoch check fails (nothing of that pack applied)."""
        outcomes: list[Any] = [None] * len(ops)
        pending = list(range(len(ops)))
        size = self.partitions_per_multi
        while pending:
            packs = [pending[i:i + size] for i in range(0, len(pending), size)]
            results = await self._guarded_many(epoch_zk_version, [[ops[j] for j in pack] for pack in packs])
            pending = []
            for pack, result in zip(packs, results):
                if isinstance(result, MultiOpFailed):
                    outcomes[pack[result.index]] = result.error
                    pending += [j for k, j in enumerate(pack) if k != result.index]
                else:
                    for j, r in zip(pack, result):
                        outcomes[j] = r
            size = 1
        return outcomes

    # ---- topics -------------------------------------------------------------------------------

    async def get_all_topics(self) -> list[str]:
        """Names of every topic in ``/brokers/topics``, sorted."""
        try:
            return await self.zk.get_children(zd.BROKER_TOPICS_PATH)
        except NoNode:
            return []

    async def get_topic_assignment(self, topic: str) -> tuple[zd.TopicAssignment, int] | None:
        """A topic's assignment and its znode's zkVersion, or None if the topic does not exist."""
        try:
            data, stat = await self.zk.get(zd.topic_path(topic))
        except NoNode:
            return None
        return zd.TopicAssignment.from_json(topic, data), stat.version

    async def get_topic_assignments_many(self, topics: Sequence[str]
                                         ) -> list[tuple[zd.TopicAssignment, int] | None]:
        """``get_topic_assignment`` for many topics in one pipelined batch of reads
        (``ZooKeeperClient.get_many``), in order; None where the topic does not exist."""
        found = await self.zk.get_many([zd.topic_path(t) for t in topics])
        return [None if f is None else (zd.TopicAssignment.from_json(t, f[0]), f[1].version)
                for t, f in zip(topics, found)]

    async def create_topic_assignment(self, assignment: zd.TopicAssignment) -> None:
        """Create ``/brokers/topics/<t>`` (what AdminZkClient.createTopic writes; the
        controller then creates the partition states). Raises TopicExists."""
        try:
            await self.zk.create(assignment.path, assignment.to_json(), make_parents=True)
        except NodeExists:
            raise TopicExists(f"topic {assignment.topic!r} already exists") from None

    async def set_topic_assignment(self, assignment: zd.TopicAssignment, expected_version: int, epoch_zk_version: int) -> int:
        """Controller write of a topic assignment, conditional on the topic znode's version and
        the controller epoch. Returns the new zkVersion. Raises ControllerMoved,
        MultiOpFailed(BadVersion/NoNode)."""
        [stat] = await self._guarded(epoch_zk_version, [SetDataOp(assignment.path, assignment.to_json(), expected_version)])
        return stat.version

    async def create_delete_topic_path(self, topic: str) -> bool:
        """Mark ``topic`` for deletion (``/admin/delete_topics/<t>``); False if already marked."""
        return await self.zk.create_if_absent(zd.delete_topic_path(topic))

    async def create_delete_topic_paths(self, topics: Sequence[str]) -> None:
        """Mark many topics for deletion at once: their ``/admin/delete_topics/<t>`` znodes
        created in one pipelined batch (``ZooKeeperClient.ensure_paths``; already marked is
        fine), as Kafka's AdminZkClient marks each topic but without a round trip each."""
        await self.zk.ensure_paths([zd.delete_topic_path(t) for t in topics])

    async def get_topic_deletions(self) -> list[str]:
        """Topics marked for deletion."""
        try:
            return await self.zk.get_children(zd.DELETE_TOPICS_PATH)
        except NoNode:
            return []

    async def delete_topic_znodes(self, topic: str, epoch_zk_version: int) -> None:
        """Controller's final step of a topic deletion: remove the topic's znodes, its config and
        its deletion mark (a missing node is fine). Raises ControllerMoved."""
        await self._check_epoch(epoch_zk_version)
        for path in (zd.topic_path(topic), zd.config_entity_path(zd.CONFIG_TYPE_TOPIC, topic), zd.delete_topic_path(topic)):
            try:
                await self.zk.delete(path, recursive=True)
            except NoNode:
                pass

    async def delete_topic_znodes_many(self, topics: Mapping[str, Iterable[int]], epoch_zk_version: int) -> None:
        """``delete_topic_znodes`` for many topics at once (the controller completing a batch of
        deletions), each delete behind the controller-epoch CheckOp, all pipelined
        (ZooKeeperClient.multi_many) instead of ~8 sequential round trips per topic:

        1. per topic ONE multi-op deleting its tree bottom-up (``/partitions/<p>/state``,
           ``/partitions/<p>`` for each of ``topics[t]``, ``/partitions``, the topic znode); a
           topic whose tree has another shape (NoNode, NotEmpty) falls back to a recursive
           delete;
        2. per topic its ``/config/topics/<t>`` and then its ``/admin/delete_topics/<t>`` mark
           (Kafka's order: deleteTopicZNode, deleteTopicConfigs, deleteTopicDeletions); a
           missing node is fine.

        Raises ControllerMoved (nothing more is deleted once the epoch check fails)."""
        names = list(topics)
        if not names:
            return
        trees = []
        for t in names:
            ops: list[Op] = []
            for p in sorted(set(topics[t])):
                ops += [DeleteOp(zd.partition_state_path(t, p)), DeleteOp(zd.topic_partition_path(t, p))]
            ops += [DeleteOp(zd.topic_partitions_path(t)), DeleteOp(zd.topic_path(t))]
            trees.append(ops)
        outcomes = await self._guarded_many(epoch_zk_version, trees)
        odd = [t for t, o in zip(names, outcomes) if isinstance(o, MultiOpFailed)]
        if odd:
            await self._check_epoch(epoch_zk_version)
            for t in odd:
                try:
                    await self.zk.delete(zd.topic_path(t), recursive=True)
                except NoNode:
                    pass
        for paths in ([zd.config_entity_path(zd.CONFIG_TYPE_TOPIC, t) for t in names],
                      [zd.delete_topic_path(t) for t in names]):
            for o in await self._guarded_many(epoch_zk_version, [[DeleteOp(p)] for p in paths]):
                if isinstance(o, MultiOpFailed) and not isinstance(o.error, NoNode):
                    raise o.error

    async def _check_epoch(self, epoch_zk_version: int) -> None:
        epoch = await self.get_controller_epoch()
        if epoch is None or epoch.zk_version != epoch_zk_version:
            raise ControllerMoved(f"/controller_epoch is no longer at zkVersion {epoch_zk_version}")

    # ---- partition state ----------------------------------------------------------------------

    async def get_partition_state(self, topic: str, partition: int) -> zd.LeaderIsrAndControllerEpoch | None:
        """The partition's state with ``zk_version`` filled from the stat, or None if absent."""
        try:
            data, stat = await self.zk.get(zd.partition_state_path(topic, partition))
        except NoNode:
            return None
        return zd.LeaderIsrAndControllerEpoch.from_json(data, stat.version)

    async def get_partition_states(self, tps: Sequence[zd.TopicPartition]
                                   ) -> dict[zd.TopicPartition, zd.LeaderIsrAndControllerEpoch]:
        """The states of ``tps`` (absent ones left out), read in one pipelined batch (Kafka's
        KafkaZkClient.getTopicPartitionStatesRaw)."""
        got = await self.zk.get_many([zd.partition_state_path(tp.topic, tp.partition) for tp in tps])
        return {tp: zd.LeaderIsrAndControllerEpoch.from_json(r[0], r[1].version)
                for tp, r in zip(tps, got) if r is not None}

    async def create_partition_state(
        self, tp: zd.TopicPartition, state: zd.LeaderIsrAndControllerEpoch, epoch_zk_version: int
    ) -> int:
        """Controller: create ``.../partitions/<p>/state`` (parents as needed), guarded by the
        controller epoch. Returns the new state's zkVersion (0). Raises ControllerMoved,
        MultiOpFailed(NodeExists)."""
        await self.zk.ensure_path(zd.topic_partition_path(tp.topic, tp.partition))
        await self._guarded(epoch_zk_version, [CreateOp(zd.partition_state_path(tp.topic, tp.partition), state.to_json())])
        return 0

    async def create_partition_states_many(
        self, states: Mapping[zd.TopicPartition, zd.LeaderIsrAndControllerEpoch], epoch_zk_version: int
    ) -> dict[zd.TopicPartition, int | BaseException]:
        """Controller: ``create_partition_state`` for many partitions in pipelined batches
        (Kafka's createTopicPartitionStatesRaw): the parents first (``ensure_paths``), then every
        guarded create at once, ``partitions_per_multi`` to a multi (``_guarded_each``).
        Returns per partition the new zkVersion (0) or its error
        (NodeExists: a state was written before). Raises ControllerMoved if the controller
        epoch moved, ConnectionLoss / SessionExpired for the whole batch."""
        tps = list(states)
        await self.zk.ensure_paths([zd.topic_partition_path(tp.topic, tp.partition) for tp in tps])
        outcomes = await self._guarded_each(epoch_zk_version, [
            CreateOp(zd.partition_state_path(tp.topic, tp.partition), states[tp].to_json()) for tp in tps
        ])
        return {tp: o if isinstance(o, BaseException) else 0 for tp, o in zip(tps, outcomes)}

    async def update_partition_state_as_controller(
        self, tp: zd.TopicPartition, state: zd.LeaderIsrAndControllerEpoch, epoch_zk_version: int
    ) -> int:
        """Controller: set the partition state if its zkVersion is still ``state.zk_version``
        and the controller epoch is still ``epoch_zk_version`` (Kafka's updateLeaderAndIsr).
        Returns the new zkVersion (the new partition epoch). Raises ControllerMoved, BadVersion
        (the state changed under us: re-read and retry), NoNode."""
        try:
            [stat] = await self._guarded(epoch_zk_version, [
                SetDataOp(zd.partition_state_path(tp.topic, tp.partition), state.to_json(), state.zk_version)
            ])
        except MultiOpFailed as exc:
            raise exc.error from None
        return stat.version

    async def update_leader_and_isr_many(
        self, states: Mapping[zd.TopicPartition, zd.LeaderIsrAndControllerEpoch], epoch_zk_version: int
    ) -> UpdateLeaderAndIsrResult:
        """Controller: ``update_partition_state_as_controller`` for many partitions in one
        pipelined batch (Kafka's KafkaZkClient.updateLeaderAndIsr: every conditional SetData,
        each in a MultiRequest behind the /controller_epoch version check, sent through
        retryRequestsUntilConnected, then the responses sorted; kafkalike packs
        ``partitions_per_multi`` SetData behind one check, ``_guarded_each``, and sends every
        pack at once). ``states[tp].zk_version`` is the version the state znode must still be at.

        Returns UpdateLeaderAndIsrResult: succeeded {tp: new zkVersion}, bad_version [tp] (the
        state changed under us: re-read, recompute, retry), failed {tp: error} (NoNode, ...).
        Raises ControllerMoved if the controller epoch moved (no write of a failed check was
        applied), ConnectionLoss / SessionExpired for the whole batch.
        """
        tps = list(states)
        outcomes = await self._guarded_each(epoch_zk_version, [
            SetDataOp(zd.partition_state_path(tp.topic, tp.partition), states[tp].to_json(), states[tp].zk_version)
            for tp in tps
        ])
        result = UpdateLeaderAndIsrResult()
        for tp, o in zip(tps, outcomes):
            if not isinstance(o, BaseException):
                result.succeeded[tp] = o.version
            elif isinstance(o, BadVersion):
                result.bad_version.append(tp)
            else:
                result.failed[tp] = o
        return result

    async def update_partition_state(self, tp: zd.TopicPartition, state: zd.LeaderIsrAndControllerEpoch) -> int:
        """Partition leader (ZK-era ISR shrink/expand): set the state if its zkVersion is still
        ``state.zk_version``; returns the new zkVersion. Raises BadVersion if the controller or
        another writer changed it (the leader then re-reads and may have lost leadership)."""
        stat = await self.zk.set(zd.partition_state_path(tp.topic, tp.partition), state.to_json(), state.zk_version)
        return stat.version

    # ---- notifications ------------------------------------------------------------------------

    async def propagate_isr_changes(self, partitions: Iterable[zd.TopicPartition]) -> str:
        """Post an ISR change notification (sequential node) for the controller; returns its path."""
        node = zd.IsrChangeNotification(frozenset(partitions))
        path, _ = await self.zk.create(zd.isr_change_notification_prefix(), node.to_json(), sequential=True, make_parents=True)
        return path

    async def get_isr_change_notifications(self) -> list[str]:
        """Child names under ``/isr_change_notification`` in sequence order."""
        try:
            return await self.zk.get_children(zd.ISR_CHANGE_NOTIFICATION_PATH)
        except NoNode:
            return []

    async def read_and_delete_isr_change_notifications(self, names: Iterable[str]) -> set[zd.TopicPartition]:
        """Controller: read the given notifications, delete them, return their partitions."""
        out: set[zd.TopicPartition] = set()
        for name in names:
            path = f"{zd.ISR_CHANGE_NOTIFICATION_PATH}/{name}"
            try:
                data, _ = await self.zk.get(path)
                out |= zd.IsrChangeNotification.from_json(data).partitions
                await self.zk.delete(path)
            except NoNode:
                continue
        return out

    async def propagate_log_dir_event(self, broker_id: int) -> str:
        """Post a log-dir failure event for the controller; returns the sequential node's path."""
        path, _ = await self.zk.create(
            zd.log_dir_event_notification_prefix(), zd.LogDirEventNotification(broker_id).to_json(),
            sequential=True, make_parents=True,
        )
        return path

    # ---- configs ------------------------------------------------------------------------------

    async def get_entity_config(self, entity_type: str, name: str) -> dict[str, str]:
        """Dynamic config overrides of ``/config/<type>/<name>`` ({} if none)."""
        try:
            data, _ = await self.zk.get(zd.config_entity_path(entity_type, name))
        except NoNode:
            return {}
        return dict(zd.ConfigEntity.from_json(data).config)

    async def set_entity_config(self, entity_type: str, name: str, config: Mapping[str, str]) -> None:
        """Write ``/config/<type>/<name>`` and post a version-2 change notification
        (AdminZkClient.changeEntityConfig)."""
        path = zd.config_entity_path(entity_type, name)
        data = zd.ConfigEntity(dict(config)).to_json()
        try:
            await self.zk.set(path, data)
        except NoNode:
            await self.zk.create(path, data, make_parents=True)
        await self.zk.create(
            zd.config_change_notification_prefix(),
            zd.ConfigChangeNotification.for_entity(entity_type, name).to_json(),
            sequential=True, make_parents=True,
        )

    # ---- producer ids -------------------------------------------------------------------------

    async def claim_producer_id_block(self, broker_id: int) -> zd.ProducerIdBlock:
        """Claim the next block of PRODUCER_ID_BLOCK_SIZE producer ids for ``broker_id`` with a
        conditional write on ``/latest_producer_id_block`` (retrying on BadVersion), as Kafka's
        ZkProducerIdManager.getNewProducerIdBlock does."""
        while True:
            try:
                data, stat = await self.zk.get(zd.PRODUCER_ID_BLOCK_PATH)
            except NoNode:
                await self.zk.create_if_absent(zd.PRODUCER_ID_BLOCK_PATH)
                continue
            previous = zd.ProducerIdBlock.from_json(data) if data else None
            block = zd.ProducerIdBlock.next_after(previous, broker_id)
            try:
                await self.zk.set(zd.PRODUCER_ID_BLOCK_PATH, block.to_json(), stat.version)
            except BadVersion:
                continue
            return block

"""Topics, partitions, leaders and ISRs as records (Kafka's ReplicationControlManager).

State (rebuilt by replay): topics by id and name, each partition's ``PartitionRegistration``
(replicas, ISR, leader, leader epoch, partition epoch, ...). Operations return records:

* **CreateTopics** -> TopicRecord, ConfigRecords, one PartitionRecord per partition. Replicas are
  placed like Kafka's StripedReplicaPlacer without racks: on the active brokers, partition p's
  replicas starting at (a random start + p), so leaders spread; ISR = the replicas, leader = the
  first. -1 partitions / replication factor take num.partitions / default.replication.factor.
* **DeleteTopics** -> RemoveTopicRecord (by name or by id). **CreatePartitions** -> PartitionRecords.
* **AlterPartition** from a partition's leader -> PartitionChangeRecord, after Kafka 3.9's checks
  (``validateAlterPartitionData``: NOT_CONTROLLER for a newer epoch than ours, FENCED_LEADER_EPOCH,
  INVALID_REQUEST from a non-leader or for an ISR without the leader, INVALID_UPDATE_VERSION for an
  old partition epoch, INELIGIBLE_REPLICA for fenced/shutting-down/unknown members or a wrong broker epoch).
* **Broker fenced / in controlled shutdown** -> the broker leaves every ISR (but the last member of
  an ISR stays: without KIP-966's ELR Kafka never empties an ISR) and leadership moves to the first
  replica in the new ISR that is active; with none the partition is leaderless (-1) unless unclean
  election is enabled (then the first active replica leads, ISR = [it], leader recovery RECOVERING).
  **Unfenced** -> leaderless partitions whose ISR holds the broker get it as leader.
* **AlterPartitionReassignments** (KIP-455) -> a PartitionChangeRecord adding the target replicas
  (``adding_replicas`` / ``removing_replicas`` set); the leader's AlterPartition that brings every
  target replica into the ISR completes it (replicas = target, leader epoch bumped, a leader
  being removed replaced: NEW_LEADER_ELECTED to it). A cancel reverts to the original replicas.

A PartitionChangeRecord is merged as Kafka's PartitionRegistration.merge does: the partition epoch
grows by one per change, the leader epoch only when the leader field is set (at metadata.version
3.9-IV0 an ISR shrink alone does not bump it).
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import attrs
import structlog

from kafkalike.kraft.cluster_control_manager import BrokerControlState, ClusterControlManager
from kafkalike.kraft.configuration_control_manager import TOPIC, ConfigurationControlManager
from kafkalike.kraft.controller_result import ControllerError, ControllerResult
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.errors import ErrorCode
from kafkalike.storage.log_config import validate_topic_configs

__all__ = ["ReplicationControlManager", "PartitionRegistration", "TopicControlInfo", "CreatedTopic",
           "TopicResult", "AlterPartitionResult", "HeartbeatReply", "NO_LEADER", "NO_LEADER_CHANGE"]

log = structlog.get_logger("kafkalike.kraft")

NO_LEADER = -1
NO_LEADER_CHANGE = -2
RECOVERED, RECOVERING = 0, 1
_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]+$")


@attrs.frozen
class PartitionRegistration:
    """A partition's replicated state (Kafka's PartitionRegistration)."""

    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int
    partition_epoch: int
    directories: tuple[uuid.UUID, ...] = ()
    removing_replicas: tuple[int, ...] = ()
    adding_replicas: tuple[int, ...] = ()
    leader_recovery_state: int = RECOVERED

    @classmethod
    def from_record(cls, r: mr.PartitionRecord) -> PartitionRegistration:
        """From a PartitionRecord."""
        return cls(tuple(r.replicas), tuple(r.isr), r.leader, r.leader_epoch, r.partition_epoch,
                   tuple(r.directories), tuple(r.removing_replicas), tuple(r.adding_replicas), r.leader_recovery_state)

    def merge(self, c: mr.PartitionChangeRecord) -> PartitionRegistration:
        """This partition after ``c`` (Kafka's PartitionRegistration.merge)."""
        leader, leader_epoch = (self.leader, self.leader_epoch) if c.leader == NO_LEADER_CHANGE else \
            (c.leader, self.leader_epoch + 1)
        return PartitionRegistration(
            replicas=tuple(c.replicas) if c.replicas is not None else self.replicas,
            isr=tuple(c.isr) if c.isr is not None else self.isr,
            leader=leader, leader_epoch=leader_epoch, partition_epoch=self.partition_epoch + 1,
            directories=tuple(c.directories) if c.directories is not None else self.directories,
            removing_replicas=tuple(c.removing_replicas) if c.removing_replicas is not None else self.removing_replicas,
            adding_replicas=tuple(c.adding_replicas) if c.adding_replicas is not None else self.adding_replicas,
            leader_recovery_state=self.leader_recovery_state if c.leader_recovery_state == -1
            else c.leader_recovery_state)


@attrs.define
class TopicControlInfo:
    """A topic: ``name``, ``topic_id``, ``parts`` {partition id: PartitionRegistration}."""

    name: str
    topic_id: uuid.UUID
    parts: dict[int, PartitionRegistration] = attrs.field(factory=dict)


@attrs.frozen
class CreatedTopic:
    """CreateTopics' answer for one topic (error NONE: created, or would be with validate_only)."""

    name: str
    error: ErrorCode = ErrorCode.none
    message: str | None = None
    topic_id: uuid.UUID = mr.ZERO_UUID
    num_partitions: int = -1
    replication_factor: int = -1


@attrs.frozen
class TopicResult:
    """DeleteTopics' / CreatePartitions' answer for one topic."""

    name: str | None
    topic_id: uuid.UUID = mr.ZERO_UUID
    error: ErrorCode = ErrorCode.none
    message: str | None = None


@attrs.frozen
class AlterPartitionResult:
    """AlterPartition's answer: ``error`` for the whole request, else one entry per partition
    ``(topic_id, partition index, error, PartitionRegistration or None)``."""

    error: ErrorCode = ErrorCode.none
    partitions: tuple[tuple[uuid.UUID, int, ErrorCode, PartitionRegistration | None], ...] = ()


@attrs.frozen
class HeartbeatReply:
    """BrokerHeartbeat's answer (Kafka's BrokerHeartbeatReply)."""

    is_caught_up: bool
    is_fenced: bool
    in_controlled_shutdown: bool
    should_shut_down: bool


def validate_topic_name(name: str) -> None:
    """Kafka's Topic.validate; ControllerError INVALID_TOPIC_EXCEPTION."""
    if not name or name in (".", "..") or len(name) > 249 or not _LEGAL_TOPIC.match(name):
        raise ControllerError(ErrorCode.invalid_topic_exception, f"Topic name \"{name}\" is illegal")


class ReplicationControlManager:
    """See module doc. ``default_num_partitions`` / ``default_replication_factor``: num.partitions,
    default.replication.factor; ``unclean_default``: unclean.leader.election.enable;
    ``delete_topic_enable``: delete.topic.enable; ``rng`` places replicas."""

    def __init__(self, cluster: ClusterControlManager, configs: ConfigurationControlManager, *,
                 default_num_partitions: int = 1, default_replication_factor: int = 1,
                 unclean_default: bool = False, delete_topic_enable: bool = True,
                 rng: random.Random | None = None) -> None:
        self.cluster = cluster
        self.configs = configs
        self.default_num_partitions = default_num_partitions
        self.default_replication_factor = default_replication_factor
        self.unclean_default = unclean_default
        self.delete_topic_enable = delete_topic_enable
        self.rng = rng or random.Random()
        self.topics: dict[uuid.UUID, TopicControlInfo] = {}
        self.topics_by_name: dict[str, uuid.UUID] = {}

    # ------------------------------------------------------------------ replay

    def replay(self, record: mr.ApiMessage) -> None:
        """Apply a committed Topic/Partition/PartitionChange/RemoveTopic record."""
        if isinstance(record, mr.TopicRecord):
            self.topics[record.topic_id] = TopicControlInfo(record.name, record.topic_id)
            self.topics_by_name[record.name] = record.topic_id
            log.info("topic_created", topic=record.name, topic_id=str(record.topic_id))
        elif isinstance(record, mr.PartitionRecord):
            topic = self.topics.get(record.topic_id)
            if topic is None:
                log.warning("partition_of_unknown_topic", topic_id=str(record.topic_id), partition=record.partition_id)
                return
            part = topic.parts[record.partition_id] = PartitionRegistration.from_record(record)
            log.info("partition_created", topic=topic.name, partition=record.partition_id, replicas=list(part.replicas),
                     leader=part.leader, isr=list(part.isr), leader_epoch=part.leader_epoch)
        elif isinstance(record, mr.PartitionChangeRecord):
            topic = self.topics.get(record.topic_id)
            old = topic.parts.get(record.partition_id) if topic is not None else None
            if topic is None or old is None:
                log.warning("partition_change_of_unknown_partition", topic_id=str(record.topic_id),
                            partition=record.partition_id)
                return
            new = topic.parts[record.partition_id] = old.merge(record)
            log.info("partition_changed", topic=topic.name, partition=record.partition_id, leader=new.leader,
                     isr=list(new.isr), leader_epoch=new.leader_epoch, partition_epoch=new.partition_epoch)
        elif isinstance(record, mr.RemoveTopicRecord):
            topic = self.topics.pop(record.topic_id, None)
            if topic is not None:
                self.topics_by_name.pop(topic.name, None)
                self.configs.delete_topic_configs(topic.name)
                log.info("topic_deleted", topic=topic.name, topic_id=str(record.topic_id))

    def reset(self) -> None:
        """Forget everything (before a snapshot is loaded)."""
        self.topics.clear()
        self.topics_by_name.clear()

    def partitions(self) -> Iterator[tuple[TopicControlInfo, int, PartitionRegistration]]:
        """Every partition, topics by name, partitions by id."""
        for name in sorted(self.topics_by_name):
            topic = self.topics[self.topics_by_name[name]]
            for pid in sorted(topic.parts):
                yield topic, pid, topic.parts[pid]

    # ------------------------------------------------------------------ partition changes

    def _unclean(self, topic: str) -> bool:
        value = self.configs.topic_config(topic).get("unclean.leader.election.enable")
        return self.unclean_default if value is None else value.lower() == "true"

    def partition_change(self, topic: TopicControlInfo, pid: int, part: PartitionRegistration, *,
                         target_isr: Sequence[int] | None = None, acceptable: Callable[[int], bool] | None = None,
                         election: str = "online", target_recovery: int | None = None,
                         target_replicas: Sequence[int] | None = None, target_removing: Sequence[int] | None = None,
                         target_adding: Sequence[int] | None = None) -> mr.PartitionChangeRecord | None:
        """Kafka 3.9's PartitionChangeBuilder.build without ELR: the record that moves ``part`` to
        ``target_isr`` / ``target_replicas`` / ``target_removing`` / ``target_adding`` (None: the
        partition's own) with a leader chosen by ``election`` ("online", "preferred", "unclean";
        online becomes unclean when the topic allows it), None when nothing changes.
        ``acceptable(broker)``: may lead (default: active). In Kafka's order: a reassignment whose
        target replicas are all in the ISR completes (``completeReassignmentIfNeeded``: replicas
        and ISR lose the removing replicas, adding/removing cleared), the leader is elected among
        the target replicas, and a replica set losing a member bumps the leader epoch
        (``triggerLeaderEpochBumpForReplicaReassignmentIfNeeded``)."""
        ok = acceptable or self.cluster.is_active
        isr = list(part.isr if target_isr is None else target_isr)
        replicas = list(part.replicas if target_replicas is None else target_replicas)
        removing = list(part.removing_replicas if target_removing is None else target_removing)
        adding = list(part.adding_replicas if target_adding is None else target_adding)
        if removing or adding:  # PartitionReassignmentReplicas.maybeCompleteReassignment
            done_isr = [r for r in isr if r not in removing]
            done_replicas = [r for r in replicas if r not in removing]
            if done_isr and done_replicas and set(done_replicas) <= set(done_isr):
                isr, replicas, removing, adding = done_isr, done_replicas, [], []
        if election == "online" and self._unclean(topic.name):
            election = "unclean"

        def valid(r: int) -> bool:
            return r in isr and ok(r)
        unclean = False
        if election == "preferred" and replicas and valid(replicas[0]):
            leader = replicas[0]
        elif valid(part.leader):
            leader = part.leader
        else:
            leader = next((r for r in replicas if valid(r)), NO_LEADER)
            if leader == NO_LEADER and election == "unclean":
                leader = next((r for r in replicas if ok(r)), NO_LEADER)
                unclean = leader != NO_LEADER
        fields: dict[str, Any] = {}
        if leader != part.leader:
            fields["leader"] = leader
        elif not set(part.replicas) <= set(replicas):
            fields["leader"] = part.leader  # a replica leaves: bump the leader epoch
        if unclean:
            fields["isr"] = (leader,)
            fields["leader_recovery_state"] = RECOVERING
        elif isr and tuple(isr) != part.isr:
            fields["isr"] = tuple(isr)
        if target_recovery is not None and target_recovery != part.leader_recovery_state and not unclean:
            fields["leader_recovery_state"] = target_recovery
        if tuple(replicas) != part.replicas:  # setAssignmentChanges
            dirs = dict(zip(part.replicas, part.directories))
            fields["replicas"] = tuple(replicas)
            fields["directories"] = tuple(dirs[r] if r in dirs else self.cluster.default_dir(r) for r in replicas)
        if tuple(removing) != part.removing_replicas:
            fields["removing_replicas"] = tuple(removing)
        if tuple(adding) != part.adding_replicas:
            fields["adding_replicas"] = tuple(adding)
        if not fields:
            return None
        return mr.PartitionChangeRecord(partition_id=pid, topic_id=topic.topic_id, **fields)

    def _remove_broker(self, broker_id: int) -> list[mr.ApiMessage]:
        """Changes moving ``broker_id`` out of every ISR and leadership (generateLeaderAndIsrUpdates)."""
        records: list[mr.ApiMessage] = []
        for topic, pid, part in self.partitions():
            if broker_id not in part.isr and part.leader != broker_id:
                continue
            change = self.partition_change(topic, pid, part, target_isr=[r for r in part.isr if r != broker_id],
                                           acceptable=lambda r: r != broker_id and self.cluster.is_active(r))
            if change is not None:
                records.append(change)
        return records

    def handle_broker_fenced(self, broker_id: int) -> list[mr.ApiMessage]:
        """Records fencing ``broker_id``: partition changes, then the BrokerRegistrationChangeRecord."""
        reg = self.cluster.registrations[broker_id]
        records = self._remove_broker(broker_id)
        records.append(mr.BrokerRegistrationChangeRecord(broker_id=broker_id, broker_epoch=reg.epoch, fenced=1))
        return records

    def handle_broker_in_controlled_shutdown(self, broker_id: int) -> list[mr.ApiMessage]:
        """Records for a broker entering controlled shutdown (inControlledShutdown=1 first, then
        leaderships and ISR memberships moved off it)."""
        reg = self.cluster.registrations[broker_id]
        records: list[mr.ApiMessage] = [mr.BrokerRegistrationChangeRecord(
            broker_id=broker_id, broker_epoch=reg.epoch, in_controlled_shutdown=1)]
        return records + self._remove_broker(broker_id)

    def handle_broker_unfenced(self, broker_id: int) -> list[mr.ApiMessage]:
        """Records unfencing ``broker_id``: the change record, then leaderless partitions whose ISR
        holds it elect it."""
        reg = self.cluster.registrations[broker_id]
        records: list[mr.ApiMessage] = [mr.BrokerRegistrationChangeRecord(
            broker_id=broker_id, broker_epoch=reg.epoch, fenced=-1)]
        for topic, pid, part in self.partitions():
            if part.leader == NO_LEADER and broker_id in part.replicas:
                change = self.partition_change(topic, pid, part,
                                               acceptable=lambda r: r == broker_id or self.cluster.is_active(r))
                if change is not None:
                    records.append(change)
        return records

    def has_leaderships(self, broker_id: int) -> bool:
        """``broker_id`` leads some partition."""
        return any(part.leader == broker_id for _t, _p, part in self.partitions())

    def process_broker_heartbeat(self, request: Any) -> ControllerResult:
        """BrokerHeartbeat (Kafka's ReplicationControlManager.processBrokerHeartbeat): the state
        transition's records; response HeartbeatReply. ControllerError STALE_BROKER_EPOCH."""
        broker_id = request.broker_id
        reg = self.cluster.check_broker_epoch(broker_id, request.broker_epoch)
        states = self.cluster.calculate_next_broker_state(broker_id, request, lambda: self.has_leaderships(broker_id))
        records: list[mr.ApiMessage] = []
        if states.current is not states.next:
            if states.next in (BrokerControlState.FENCED, BrokerControlState.SHUTDOWN_NOW):
                if not reg.fenced:
                    records = self.handle_broker_fenced(broker_id)
            elif states.next is BrokerControlState.UNFENCED:
                records = self.handle_broker_unfenced(broker_id)
            elif states.next is BrokerControlState.CONTROLLED_SHUTDOWN:
                records = self.handle_broker_in_controlled_shutdown(broker_id)
        self.cluster.touch(broker_id, request.current_metadata_offset)
        reply = HeartbeatReply(is_caught_up=request.current_metadata_offset >= reg.registered_offset,
                               is_fenced=states.next.fenced, in_controlled_shutdown=states.next.in_controlled_shutdown,
                               should_shut_down=states.next.should_shut_down)
        return ControllerResult(tuple(records), reply)

    # ------------------------------------------------------------------ AlterPartition

    def alter_partition(self, request: Any, version: int) -> ControllerResult:
        """AlterPartition v0-3 (see module doc); response AlterPartitionResult."""
        try:
            self.cluster.check_broker_epoch(request.broker_id, request.broker_epoch)
        except ControllerError as exc:
            return ControllerResult((), AlterPartitionResult(exc.error))
        records: list[mr.ApiMessage] = []
        answers: list[tuple[uuid.UUID, int, ErrorCode, PartitionRegistration | None]] = []
        for t in request.topics:
            topic_id = t.topic_id if version > 1 else self.topics_by_name.get(getattr(t, "topic_name", ""))
            topic = self.topics.get(topic_id) if topic_id else None
            if topic is None:
                error = ErrorCode.unknown_topic_id if version > 1 else ErrorCode.unknown_topic_or_partition
                answers += [(t.topic_id if version > 1 else mr.ZERO_UUID, p.partition_index, error, None)
                            for p in t.partitions]
                continue
            for p in t.partitions:
                part = topic.parts.get(p.partition_index)
                new_isr = [(b.broker_id, b.broker_epoch) for b in p.new_isr_with_epochs] if version >= 3 else \
                    [(b, -1) for b in p.new_isr]
                error = self._validate_alter_partition(request.broker_id, part, p, new_isr, version)
                if error is not ErrorCode.none or part is None:
                    answers.append((topic.topic_id, p.partition_index, error, None))
                    continue
                change = self.partition_change(topic, p.partition_index, part, target_isr=[b for b, _e in new_isr],
                                               target_recovery=p.leader_recovery_state)
                if change is not None:
                    records.append(change)
                    part = part.merge(change)
                    if change.leader not in (NO_LEADER_CHANGE, request.broker_id):
                        # the ISR change completed a reassignment that moved the leader away
                        error = ErrorCode.new_leader_elected if version > 1 else ErrorCode.fenced_leader_epoch
                        log.info("alter_partition_completed_reassignment", topic=topic.name,
                                 partition=p.partition_index, new_leader=change.leader, error=error.name.upper())
                        answers.append((topic.topic_id, p.partition_index, error, None))
                        continue
                answers.append((topic.topic_id, p.partition_index, ErrorCode.none, part))
        return ControllerResult(tuple(records), AlterPartitionResult(ErrorCode.none, tuple(answers)))

    def _validate_alter_partition(self, broker_id: int, part: PartitionRegistration | None, p: Any,
                                  new_isr: list[tuple[int, int]], version: int) -> ErrorCode:
        """Kafka 3.9's validateAlterPartitionData, in its order."""
        if part is None:
            return ErrorCode.unknown_topic_or_partition
        if p.leader_epoch > part.leader_epoch or p.partition_epoch > part.partition_epoch:
            return ErrorCode.not_controller
        if p.leader_epoch < part.leader_epoch:
            return ErrorCode.fenced_leader_epoch
        if broker_id != part.leader:
            return ErrorCode.invalid_request
        if p.partition_epoch < part.partition_epoch:
            return ErrorCode.invalid_update_version
        ids = [b for b, _e in new_isr]
        if len(set(ids)) != len(ids) or any(b not in part.replicas for b in ids) or part.leader not in ids:
            return ErrorCode.invalid_request
        if p.leader_recovery_state == RECOVERING and len(ids) > 1:
            return ErrorCode.invalid_request
        if part.leader_recovery_state == RECOVERED and p.leader_recovery_state == RECOVERING:
            return ErrorCode.invalid_request
        for b, epoch in new_isr:
            reg = self.cluster.registrations.get(b)
            if reg is None or reg.in_controlled_shutdown or reg.fenced or (epoch != -1 and reg.epoch != epoch):
                return ErrorCode.ineligible_replica if version > 1 else ErrorCode.operation_not_attempted
        return ErrorCode.none

    # ------------------------------------------------------------------ topics

    def _place(self, num_partitions: int, replication_factor: int, start_partition: int = 0) -> list[list[int]]:
        """Rack-unaware striped placement on the active brokers (see module doc). ControllerError
        INVALID_REPLICATION_FACTOR with Kafka's messages."""
        brokers = self.cluster.usable_brokers()
        if replication_factor <= 0:
            raise ControllerError(ErrorCode.invalid_replication_factor,
                                  "Replication factor must be larger than 0, or -1 to use the default value.")
        if not brokers:
            raise ControllerError(ErrorCode.invalid_replication_factor, "All brokers are currently fenced.")
        if replication_factor > len(brokers):
            raise ControllerError(ErrorCode.invalid_replication_factor,
                                  f"Unable to replicate the partition {replication_factor} time(s): The target "
                                  f"replication factor of {replication_factor} cannot be reached because only "
                                  f"{len(brokers)} broker(s) are registered.")
        start = self.rng.randrange(len(brokers))
        n = len(brokers)
        return [[brokers[(start + start_partition + p + j) % n] for j in range(replication_factor)]
                for p in range(num_partitions)]

    def _partition_records(self, topic_id: uuid.UUID, assignment: list[list[int]],
                           first: int = 0) -> list[mr.ApiMessage]:
        records: list[mr.ApiMessage] = []
        for i, replicas in enumerate(assignment):
            isr = [r for r in replicas if self.cluster.is_active(r)]
            if not isr:
                raise ControllerError(ErrorCode.invalid_replication_factor,
                                      f"Unable to replicate the partition {len(replicas)} time(s): All brokers "
                                      "are currently fenced.")
            records.append(mr.PartitionRecord(
                partition_id=first + i, topic_id=topic_id, replicas=tuple(replicas), isr=tuple(isr),
                leader=isr[0], leader_epoch=0, partition_epoch=0,
                directories=tuple(self.cluster.default_dir(r) for r in replicas)))
        return records

    def _manual_assignment(self, assignments: Any) -> list[list[int]]:
        by_index = {a.partition_index: list(a.broker_ids) for a in assignments}
        if sorted(by_index) != list(range(len(by_index))):
            raise ControllerError(ErrorCode.invalid_replica_assignment,
                                  "Partitions must be numbered consecutively starting at 0")
        out = []
        for index in range(len(by_index)):
            replicas = by_index[index]
            if not replicas:
                raise ControllerError(ErrorCode.invalid_replication_factor,
                                      "The manual partition assignment includes an empty replica list.")
            if len(set(replicas)) != len(replicas):
                raise ControllerError(ErrorCode.invalid_replica_assignment,
                                      f"The manual partition assignment includes the partition {index} with "
                                      f"duplicate replicas {replicas}")
            for b in replicas:
                if b not in self.cluster.registrations:
                    raise ControllerError(ErrorCode.invalid_replica_assignment,
                                          f"The manual partition assignment includes broker {b}, but no such "
                                          "broker is registered.")
            out.append(replicas)
        return out

    def create_topics(self, topics: Any, validate_only: bool) -> ControllerResult:
        """CreateTopics (Kafka's ReplicationControlManager.createTopics); response a list of
        CreatedTopic in request order."""
        records: list[mr.ApiMessage] = []
        results: list[CreatedTopic] = []
        names = [t.name for t in topics]
        for t in topics:
            try:
                if names.count(t.name) > 1:
                    raise ControllerError(ErrorCode.invalid_request, "Duplicate topic name.")
                validate_topic_name(t.name)
                if t.name in self.topics_by_name:
                    raise ControllerError(ErrorCode.topic_already_exists, f"Topic '{t.name}' already exists.")
                if t.assignments:
                    if t.num_partitions != -1 or t.replication_factor != -1:
                        raise ControllerError(ErrorCode.invalid_request,
                                              "A manual partition assignment was specified, but numPartitions "
                                              "or replicationFactor was not set to -1.")
                    assignment = self._manual_assignment(t.assignments)
                else:
                    n = self.default_num_partitions if t.num_partitions == -1 else t.num_partitions
                    rf = self.default_replication_factor if t.replication_factor == -1 else t.replication_factor
                    if n <= 0:
                        raise ControllerError(ErrorCode.invalid_partitions,
                                              "Number of partitions was set to an invalid non-positive value.")
                    assignment = self._place(n, rf)
                configs = {c.name: c.value for c in t.configs}
                problem = validate_topic_configs(configs, len(assignment[0]))
                if problem is not None:
                    raise ControllerError(ErrorCode.invalid_config, problem)
                topic_id = uuid.uuid4()
                topic_records: list[mr.ApiMessage] = [mr.TopicRecord(name=t.name, topic_id=topic_id)]
                topic_records += [mr.ConfigRecord(resource_type=TOPIC, resource_name=t.name, name=k, value=v)
                                  for k, v in configs.items() if v is not None]
                topic_records += self._partition_records(topic_id, assignment)
            except ControllerError as exc:
                results.append(CreatedTopic(t.name, exc.error, exc.message))
                continue
            if not validate_only:
                records += topic_records
            results.append(CreatedTopic(t.name, topic_id=topic_id if not validate_only else mr.ZERO_UUID,
                                        num_partitions=len(assignment), replication_factor=len(assignment[0])))
        return ControllerResult(tuple(records), results)

    def delete_topics(self, topics: Any) -> ControllerResult:
        """DeleteTopics by name (``name`` set) or by id; response a list of TopicResult."""
        records: list[mr.ApiMessage] = []
        results: list[TopicResult] = []
        seen: set[uuid.UUID] = set()
        for t in topics:
            name = getattr(t, "name", None)
            topic_id = getattr(t, "topic_id", None) or mr.ZERO_UUID
            if name:
                found = self.topics_by_name.get(name)
                error = ErrorCode.unknown_topic_or_partition
            else:
                found = topic_id if topic_id in self.topics else None
                error = ErrorCode.unknown_topic_id
            if found is None:
                results.append(TopicResult(name, topic_id, error))
                continue
            if not self.delete_topic_enable:
                results.append(TopicResult(name, found, ErrorCode.topic_deletion_disabled,
                                           "Topic deletion is disabled."))
                continue
            if found not in seen:
                seen.add(found)
                records.append(mr.RemoveTopicRecord(topic_id=found))
            results.append(TopicResult(self.topics[found].name, found))
        return ControllerResult(tuple(records), results)

    def create_partitions(self, topics: Any, validate_only: bool) -> ControllerResult:
        """CreatePartitions; response a list of TopicResult (INVALID_PARTITIONS for no increase,
        UNKNOWN_TOPIC_OR_PARTITION, INVALID_REPLICA_ASSIGNMENT)."""
        records: list[mr.ApiMessage] = []
        results: list[TopicResult] = []
        for t in topics:
            try:
                topic_id = self.topics_by_name.get(t.name)
                if topic_id is None:
                    raise ControllerError(ErrorCode.unknown_topic_or_partition, f"Topic '{t.name}' does not exist.")
                topic = self.topics[topic_id]
                current = len(topic.parts)
                if t.count < current:
                    raise ControllerError(ErrorCode.invalid_partitions,
                                          f"The topic {t.name} currently has {current} partition(s); {t.count} "
                                          "would not be an increase.")
                if t.count == current:
                    raise ControllerError(ErrorCode.invalid_partitions, f"Topic already has {current} partition(s).")
                rf = len(topic.parts[0].replicas) if topic.parts else self.default_replication_factor
                if t.assignments:
                    if len(t.assignments) != t.count - current:
                        raise ControllerError(ErrorCode.invalid_replica_assignment,
                                              f"Attempted to add {t.count - current} additional partition(s), but "
                                              f"only {len(t.assignments)} assignment(s) were specified.")
                    assignment = []
                    for a in t.assignments:
                        for b in a.broker_ids:
                            if b not in self.cluster.registrations:
                                raise ControllerError(ErrorCode.invalid_replica_assignment,
                                                      f"The manual partition assignment includes broker {b}, but "
                                                      "no such broker is registered.")
                        assignment.append(list(a.broker_ids))
                else:
                    assignment = self._place(t.count - current, rf, current)
                new = self._partition_records(topic_id, assignment, current)
            except ControllerError as exc:
                results.append(TopicResult(t.name, error=exc.error, message=exc.message))
                continue
            if not validate_only:
                records += new
            results.append(TopicResult(t.name, topic_id))
        return ControllerResult(tuple(records), results)

    def elect_leaders(self, partitions: Sequence[tuple[str, int]], election: str) -> ControllerResult:
        """ElectLeaders (KIP-460): "preferred" or "unclean" for each (topic, partition); response
        [(topic, partition, error, message)]: UNKNOWN_TOPIC_OR_PARTITION, ELECTION_NOT_NEEDED,
        PREFERRED_LEADER_NOT_AVAILABLE / ELIGIBLE_LEADERS_NOT_AVAILABLE."""
        records: list[mr.ApiMessage] = []
        answers: list[tuple[str, int, ErrorCode, str | None]] = []
        for name, pid in partitions:
            topic = self.topics.get(self.topics_by_name.get(name, mr.ZERO_UUID))
            part = topic.parts.get(pid) if topic is not None else None
            if topic is None or part is None:
                answers.append((name, pid, ErrorCode.unknown_topic_or_partition, None))
                continue
            if election == "preferred" and part.replicas and part.leader == part.replicas[0]:
                answers.append((name, pid, ErrorCode.election_not_needed, None))
                continue
            if election == "unclean" and part.leader != NO_LEADER:
                answers.append((name, pid, ErrorCode.election_not_needed, None))
                continue
            change = self.partition_change(topic, pid, part, election=election)
            if change is None or change.leader == NO_LEADER_CHANGE or \
                    (election == "preferred" and change.leader != part.replicas[0]):
                error = ErrorCode.preferred_leader_not_available if election == "preferred" else \
                    ErrorCode.eligible_leaders_not_available
                answers.append((name, pid, error, f"Failed to elect leader for partition {name}-{pid} under "
                                                  f"strategy {election.upper()}"))
                continue
            records.append(change)
            answers.append((name, pid, ErrorCode.none, None))
        return ControllerResult(tuple(records), answers)

    # ------------------------------------------------------------------ reassignment (KIP-455)

    def alter_partition_reassignments(self, targets: Sequence[tuple[str, int, Sequence[int] | None]]) -> ControllerResult:
        """AlterPartitionReassignments (Kafka 3.9's ReplicationControlManager.
        alterPartitionReassignments): for each (topic, partition, target replicas or None =
        cancel) at most one PartitionChangeRecord; response [(topic, partition, error, message)]
        in request order. Errors: UNKNOWN_TOPIC_OR_PARTITION, INVALID_REPLICA_ASSIGNMENT (an
        empty list, an unregistered or repeated broker, a cancel needing an unclean election
        the topic does not allow), NO_REASSIGNMENT_IN_PROGRESS (cancel of nothing).

        A change adds the new replicas to ``replicas`` (target first, then the removing ones)
        with ``adding_replicas`` / ``removing_replicas`` set; once the ISR holds every target
        replica (the leader's AlterPartition, or at once for a mere reordering) the next
        PartitionChangeRecord drops the removing replicas (``partition_change``)."""
        records: list[mr.ApiMessage] = []
        answers: list[tuple[str, int, ErrorCode, str | None]] = []
        for name, pid, target in targets:
            try:
                topic, part = self._reassigning_partition(name, pid)
                if target is None:
                    change = self._cancel_reassignment(topic, pid, part)
                else:
                    change = self._change_reassignment(topic, pid, part, list(target))
            except ControllerError as exc:
                log.info("reassignment_refused", topic=name, partition=pid, error=exc.error.name.upper(),
                         message=exc.message)
                answers.append((name, pid, exc.error, exc.message))
                continue
            if change is not None:
                records.append(change)
                log.info("reassignment_altered", topic=name, partition=pid, target=target,
                         replicas=change.replicas, adding=change.adding_replicas, removing=change.removing_replicas)
            answers.append((name, pid, ErrorCode.none, None))
        return ControllerResult(tuple(records), answers)

    def _reassigning_partition(self, name: str, pid: int) -> tuple[TopicControlInfo, PartitionRegistration]:
        topic_id = self.topics_by_name.get(name)
        if topic_id is None:
            raise ControllerError(ErrorCode.unknown_topic_or_partition, f"Unable to find a topic named {name}.")
        topic = self.topics[topic_id]
        part = topic.parts.get(pid)
        if part is None:
            raise ControllerError(ErrorCode.unknown_topic_or_partition, f"Unable to find partition {name}:{pid}.")
        return topic, part

    def _change_reassignment(self, topic: TopicControlInfo, pid: int, part: PartitionRegistration,
                             target: list[int]) -> mr.PartitionChangeRecord | None:
        """Kafka's changePartitionReassignment (validateManualPartitionAssignment first)."""
        if not target:
            raise ControllerError(ErrorCode.invalid_replica_assignment,
                                  "The manual partition assignment includes an empty replica list.")
        previous = None
        for b in sorted(target):
            if b not in self.cluster.registrations:
                raise ControllerError(ErrorCode.invalid_replica_assignment,
                                      f"The manual partition assignment includes broker {b}, but no such broker "
                                      "is registered.")
            if b == previous:
                raise ControllerError(ErrorCode.invalid_replica_assignment,
                                      f"The manual partition assignment includes the broker {b} more than once.")
            previous = b
        current = list(part.replicas)
        removing = sorted(set(current) - set(target))  # PartitionReassignmentReplicas: TreeSets
        adding = sorted(set(target) - set(current))
        replicas = target + removing
        return self.partition_change(topic, pid, part,
                                     target_replicas=replicas if replicas != current else None,
                                     target_removing=removing or None, target_adding=adding or None)

    def _cancel_reassignment(self, topic: TopicControlInfo, pid: int,
                             part: PartitionRegistration) -> mr.PartitionChangeRecord | None:
        """Kafka's cancelPartitionReassignment with PartitionReassignmentRevert: the replicas
        without the adding ones, the ISR without them (or the first replica, an unclean choice)."""
        if not (part.adding_replicas or part.removing_replicas):
            raise ControllerError(ErrorCode.no_reassignment_in_progress, "No partition reassignment is in progress.")
        replicas = [r for r in part.replicas if r not in part.adding_replicas]
        isr = [r for r in part.isr if r not in part.adding_replicas]
        if not isr:
            if not replicas:
                raise ControllerError(ErrorCode.invalid_replica_assignment,
                                      "Invalid replica assignment: addingReplicas contains all replicas.")
            isr = [replicas[0]]
            if not self._unclean(topic.name):
                raise ControllerError(ErrorCode.invalid_replica_assignment,
                                      f"Unable to revert partition assignment for {topic.name}:{pid} because it "
                                      "would require an unclean leader election.")
        return self.partition_change(topic, pid, part, target_isr=isr, target_replicas=replicas,
                                     target_removing=(), target_adding=())

    def list_partition_reassignments(self, wanted: Iterable[tuple[str, int]] | None
                                     ) -> dict[tuple[str, int], PartitionRegistration]:
        """ListPartitionReassignments: {(topic, partition): registration} of the partitions
        being reassigned (adding or removing replicas), among ``wanted`` (None: all); unknown
        topics and partitions are left out, as Kafka's listPartitionReassignments does."""
        out: dict[tuple[str, int], PartitionRegistration] = {}
        if wanted is None:
            for topic, pid, part in self.partitions():
                if part.adding_replicas or part.removing_replicas:
                    out[(topic.name, pid)] = part
            return out
        for name, pid in wanted:
            info = self.topics.get(self.topics_by_name.get(name, mr.ZERO_UUID))
            found = info.parts.get(pid) if info is not None else None
            if found is not None and (found.adding_replicas or found.removing_replicas):
                out[(name, pid)] = found
        return out

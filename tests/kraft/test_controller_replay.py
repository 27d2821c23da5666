"""The quorum controller's state is a function of the records it replayed (hypothesis).

Random operations (brokers registering, heartbeating to unfence, fence, enter controlled shutdown;
topics created and deleted; ISR changes; producer id blocks; configs) run against a ControllerState
as the active controller runs them: each operation reads the state and returns records, which are
then replayed (committed) at consecutive offsets. Then:

* a fresh state that replays the same records, after a round trip through metadata log batches,
  holds the same state (compared as ``snapshot_records``), and so does one that loads the snapshot;
* at every step, every partition keeps Kafka's invariants: a non-empty ISR within its replicas, a
  leader that is in the ISR, or no leader (-1) when no ISR member may lead.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from kafkalike.client.messages import build_request
from kafkalike.kraft.controller_result import ControllerError
from kafkalike.kraft.quorum_controller import ControllerState, QuorumControllerConfig
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.api_keys import ApiKey
from kafkalike.protocol.records import decode_batches

CLUSTER = "MkU3OEVBNTcwNTJENDM2Qg"
CONFIG = QuorumControllerConfig(cluster_id=CLUSTER, session_timeout_ms=9000, default_replication_factor=2)

op = st.one_of(
    st.tuples(st.just("register"), st.integers(1, 4)),
    st.tuples(st.just("join"), st.integers(1, 4)),
    st.tuples(st.just("heartbeat"), st.integers(1, 4), st.sampled_from(["catch_up", "behind", "fence", "shutdown"])),
    st.tuples(st.just("create"), st.integers(0, 3), st.integers(1, 3), st.integers(1, 3)),
    st.tuples(st.just("delete"), st.integers(0, 3)),
    st.tuples(st.just("shrink"), st.integers(0, 3), st.integers(0, 2)),
    st.tuples(st.just("expand"), st.integers(0, 3), st.integers(0, 2)),
    st.tuples(st.just("producer_ids"), st.integers(1, 4)),
    st.tuples(st.just("config"), st.integers(0, 3), st.sampled_from(["1000", "2000"])),
)


def _check_invariants(state: ControllerState) -> None:
    for topic, pid, part in state.replication.partitions():
        assert part.isr and set(part.isr) <= set(part.replicas), (topic.name, pid, part)
        if part.leader != -1:
            # (a leader may be fenced for a moment: a broker that registers again is fenced until it
            # catches up, and Kafka 3.9 without ELR moves nothing then - handleBrokerUncleanShutdown)
            assert part.leader in part.isr and part.leader in state.cluster.registrations, (topic.name, pid, part)
        else:
            assert not any(state.cluster.is_active(r) for r in part.isr), (topic.name, pid, part)


class _Driver:
    """Runs operations as the active controller would and commits their records."""

    def __init__(self) -> None:
        self.state = ControllerState(CONFIG, clock=lambda: 0.0)
        self.state.cluster.activate()
        self.records: list[mr.ApiMessage] = []
        self.incarnations: dict[int, uuid.UUID] = {}
        self.commit([mr.FeatureLevelRecord(name="metadata.version", feature_level=21)])

    def commit(self, records: Sequence[mr.ApiMessage | mr.ApiMessageAndVersion]) -> None:
        for r in records:
            message = r.message if isinstance(r, mr.ApiMessageAndVersion) else r
            self.state.replay(message, len(self.records))
            self.records.append(message)

    def run(self, step: tuple) -> None:  # type: ignore[type-arg]
        kind, *args = step
        if kind == "join":  # register, then heartbeat at the registration's offset: unfenced
            self.run(("register", args[0]))
            self.run(("heartbeat", args[0], "catch_up"))
            return
        s = self.state
        try:
            if kind == "register":
                (b,) = args
                inc = self.incarnations.setdefault(b, uuid.uuid4())
                req = build_request(62, 4, broker_id=b, cluster_id=CLUSTER, incarnation_id=inc, listeners=[],
                                    features=[{"name": "metadata.version", "min_supported_version": 1,
                                               "max_supported_version": 21}], log_dirs=[uuid.uuid4()])
                result = s.cluster.register_broker(req, 4, len(self.records), s.features.metadata_version)
            elif kind == "heartbeat":
                b, how = args
                reg = s.cluster.registrations.get(b)
                epoch = reg.epoch if reg else -1
                offset = {"catch_up": len(self.records), "behind": -1}.get(how, len(self.records))
                req = build_request(63, 1, broker_id=b, broker_epoch=epoch, current_metadata_offset=offset,
                                    want_fence=how == "fence", want_shut_down=how == "shutdown")
                result = s.replication.process_broker_heartbeat(req)
            elif kind == "create":
                t, n, rf = args
                result = s.replication.create_topics(build_request(ApiKey.CREATE_TOPICS, 7, topics=[{
                    "name": f"t{t}", "num_partitions": n, "replication_factor": rf, "assignments": [],
                    "configs": []}]).topics, False)
            elif kind == "delete":
                (t,) = args
                result = s.replication.delete_topics(build_request(ApiKey.DELETE_TOPICS, 6, topics=[
                    {"name": f"t{t}", "topic_id": None}]).topics)
            elif kind in ("shrink", "expand"):
                t, pid = args
                topic = s.replication.topics.get(s.replication.topics_by_name.get(f"t{t}", mr.ZERO_UUID))
                part = topic.parts.get(pid) if topic else None
                if topic is None or part is None or part.leader == -1:
                    return
                isr = [part.leader] if kind == "shrink" else \
                    [r for r in part.replicas if r == part.leader or s.cluster.is_active(r)]
                req = build_request(56, 3, broker_id=part.leader, broker_epoch=s.cluster.registrations[part.leader].epoch,
                                    topics=[{"topic_id": topic.topic_id, "partitions": [{
                                        "partition_index": pid, "leader_epoch": part.leader_epoch,
                                        "partition_epoch": part.partition_epoch, "leader_recovery_state": 0,
                                        "new_isr_with_epochs": [{"broker_id": r, "broker_epoch": -1} for r in isr]}]}])
                result = s.replication.alter_partition(req, 3)
            elif kind == "producer_ids":
                (b,) = args
                reg = s.cluster.registrations.get(b)
                result = s.producer_ids.generate_next_producer_id(b, reg.epoch if reg else -1)
            else:
                t, value = args
                result = s.configs.incremental_alter_configs(build_request(ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, resources=[{
                    "resource_type": 2, "resource_name": f"t{t}", "configs": [
                        {"name": "segment.ms", "config_operation": 0, "value": value}]}]).resources, False,
                    lambda name: name in s.replication.topics_by_name)
        except ControllerError:
            return
        self.commit(result.records)


def _through_the_log(records: list[mr.ApiMessage]) -> list[mr.ApiMessage]:
    """The records as a follower reads them: one metadata log batch each, decoded again."""
    out = []
    for offset, r in enumerate(records):
        data = mr.build_metadata_batch([r], offset, epoch=1, append_time_ms=0)
        [batch] = decode_batches(data)
        out += [mr.deserialize_record(rec.value or b"").message for rec in batch.records]
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(op, min_size=5, max_size=40))
def test_replaying_the_same_records_gives_the_same_state_and_partitions_keep_their_invariants(steps: list) -> None:  # type: ignore[type-arg]
    driver = _Driver()
    for step in [("join", 1), ("join", 2), ("join", 3), *steps]:  # three unfenced brokers to start with
        driver.run(step)
        _check_invariants(driver.state)
    expected = driver.state.snapshot_records()

    replayed = ControllerState(CONFIG, clock=lambda: 0.0)
    for offset, r in enumerate(_through_the_log(driver.records)):
        replayed.replay(r, offset)
    assert replayed.snapshot_records() == expected

    from_snapshot = ControllerState(CONFIG, clock=lambda: 0.0)
    for r in expected:
        from_snapshot.replay(r, len(driver.records) - 1)
    assert from_snapshot.snapshot_records() == expected

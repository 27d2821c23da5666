"""auto_create_through: the one auto-creation policy of ZkAdminManager (ZooKeeper mode) and
ForwardingManager (KRaft), driven with a create_topic that answers as each admin path can:
created, TOPIC_ALREADY_EXISTS, a refusal with its code, an unexpected exception."""

from __future__ import annotations

import pytest

from kafkalike.broker.zk_admin_manager import AdminError, auto_create_through
from kafkalike.protocol.errors import ErrorCode


class Recorder:
    """create_topic(topic, num_partitions, replication_factor) that records its calls and then
    raises ``raises`` (if any)."""

    def __init__(self, raises: BaseException | None = None) -> None:
        self.calls: list[tuple[str, int, int]] = []
        self.raises = raises

    async def __call__(self, topic: str, num_partitions: int, replication_factor: int) -> None:
        self.calls.append((topic, num_partitions, replication_factor))
        if self.raises is not None:
            raise self.raises


async def test_a_created_topic_answers_leader_not_available_with_the_default_sizes() -> None:
    create = Recorder()
    assert await auto_create_through(create, "orders") == ErrorCode.leader_not_available
    assert create.calls == [("orders", -1, -1)]


async def test_a_topic_another_request_created_first_answers_leader_not_available() -> None:
    create = Recorder(AdminError(ErrorCode.topic_already_exists, "Topic 'orders' already exists."))
    assert await auto_create_through(create, "orders") == ErrorCode.leader_not_available


@pytest.mark.parametrize("error", [ErrorCode.invalid_replication_factor, ErrorCode.invalid_topic_exception,
                                   ErrorCode.request_timed_out])
async def test_a_refusal_answers_its_own_code(error: ErrorCode) -> None:
    assert await auto_create_through(Recorder(AdminError(error, "refused")), "orders") == error


async def test_any_other_exception_answers_unknown_server_error_instead_of_escaping() -> None:
    create = Recorder(ConnectionResetError("controller went away"))
    assert await auto_create_through(create, "orders") == ErrorCode.unknown_server_error


@pytest.mark.parametrize("topic", ["__consumer_offsets", "__transaction_state"])
async def test_internal_topics_are_left_to_their_coordinators(topic: str) -> None:
    create = Recorder()
    assert await auto_create_through(create, topic) == ErrorCode.unknown_topic_or_partition
    assert create.calls == []

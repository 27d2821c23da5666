"""MemberMetadata: one member of a classic consumer group as the coordinator sees it
(Kafka's kafka.coordinator.group.MemberMetadata).

A member has an id given by the coordinator (``<client.id>-<uuid>``), an optional static
``group_instance_id`` (KIP-345), its client id and host, its session and rebalance
timeouts (ms), the protocols it supports in preference order with their opaque metadata
(for consumers: the subscription), and the assignment the leader gave it (opaque bytes).

While a JoinGroup or SyncGroup of the member waits for the rebalance to progress, the
coordinator parks a callback on it (``awaiting_join`` / ``awaiting_sync``); the callback is
called exactly once with the result. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs


@attrs.define
class MemberMetadata:
    """State of one member. Times in ms (the coordinator's monotonic clock)."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    supported_protocols: list[tuple[str, bytes]]
    assignment: bytes = b""
    awaiting_join: Callable[[Any], None] | None = None
    awaiting_sync: Callable[[Any], None] | None = None
    is_new: bool = False
    latest_heartbeat_ms: int = 0
    joined_at_ms: int = 0

    @property
    def is_static(self) -> bool:
        return self.group_instance_id is not None

    @property
    def is_awaiting_join(self) -> bool:
        return self.awaiting_join is not None

    @property
    def is_awaiting_sync(self) -> bool:
        return self.awaiting_sync is not None

    def protocols(self) -> set[str]:
        """Names of the protocols this member supports."""
        return {name for name, _ in self.supported_protocols}

    def metadata(self, protocol: str) -> bytes:
        """The member's metadata for ``protocol``; raises KeyError if it does not support it."""
        for name, data in self.supported_protocols:
            if name == protocol:
                return data
        raise KeyError(f"member {self.member_id} does not support protocol {protocol}")

    def matches(self, protocols: Sequence[tuple[str, bytes]]) -> bool:
        """True if ``protocols`` equal the member's (same names, order and metadata): a rejoin
        that changes nothing need not trigger a rebalance (Kafka's MemberMetadata.matches)."""
        return list(protocols) == list(self.supported_protocols)

    def vote(self, candidates: set[str]) -> str:
        """The member's most preferred protocol among ``candidates`` (Kafka's vote)."""
        for name, _ in self.supported_protocols:
            if name in candidates:
                return name
        raise ValueError(f"member {self.member_id} supports none of {sorted(candidates)}")

    def should_keep_alive(self, now_ms: int, new_member_join_timeout_ms: int) -> bool:
        """False when the member's session has expired at ``now_ms``: a member awaiting join
        is kept (the rebalance timeout governs it) unless it is new and has waited longer
        than ``new_member_join_timeout_ms``; one awaiting sync is kept; others need a
        heartbeat within the session timeout (Kafka's MemberMetadata.shouldKeepAlive)."""
        if self.is_awaiting_join:
            return not self.is_new or self.joined_at_ms + new_member_join_timeout_ms > now_ms
        if self.is_awaiting_sync:
            return True
        return self.latest_heartbeat_ms + self.session_timeout_ms > now_ms

    def complete_join(self, result: Any) -> bool:
        """Answer a parked JoinGroup with ``result``; False when none was parked."""
        callback, self.awaiting_join = self.awaiting_join, None
        if callback is None:
            return False
        callback(result)
        return True

    def complete_sync(self, result: Any) -> bool:
        """Answer a parked SyncGroup with ``result``; False when none was parked."""
        callback, self.awaiting_sync = self.awaiting_sync, None
        if callback is None:
            return False
        callback(result)
        return True

"""ZooKeeper errors under coordination's own names, so nothing above this package imports kazoo.

The names follow ZooKeeper's KeeperException codes (and Kafka's handling of them in
KafkaZkClient). They are the kazoo classes themselves, re-exported, so ``except NoNode``
catches what kazoo raises. ``MultiOpFailed`` is ours: a multi-op (transaction) that was
rolled back, with the failing operation and its error.
"""

from __future__ import annotations

from typing import Any

import attrs
from kazoo import exceptions as _kx
from kazoo.handlers.threading import KazooTimeoutError as _KazooTimeoutError

#: base class of every error a ZooKeeper call raises (kazoo's KazooException)
ZooKeeperError = _kx.KazooException
#: base class of errors the server returned with a KeeperException code
KeeperError = _kx.ZookeeperError

NodeExists = _kx.NodeExistsError  # NODEEXISTS (-110)
NoNode = _kx.NoNodeError  # NONODE (-101)
BadVersion = _kx.BadVersionError  # BADVERSION (-103): a conditional write saw another version
NotEmpty = _kx.NotEmptyError  # NOTEMPTY (-111): delete of a node with children
NoChildrenForEphemerals = _kx.NoChildrenForEphemeralsError  # (-108)
BadArguments = _kx.BadArgumentsError  # BADARGUMENTS (-8)
SessionExpired = _kx.SessionExpiredError  # SESSIONEXPIRED (-112); also "client closed"
ConnectionClosed = _kx.ConnectionClosedError  # the client was closed (a SessionExpired)
ConnectionLoss = _kx.ConnectionLoss  # CONNECTIONLOSS (-4): outcome of the call unknown
OperationTimeout = _kx.OperationTimeoutError  # OPERATIONTIMEOUT (-7)
SessionMoved = _kx.SessionMovedError  # SESSIONMOVED (-118)
AuthFailed = _kx.AuthFailedError  # AUTHFAILED (-115)
RolledBack = _kx.RolledBackError  # multi-op: this op was fine but the transaction rolled back
RuntimeInconsistency = _kx.RuntimeInconsistency  # multi-op: op after the failing one
ConnectTimeout = _KazooTimeoutError  # could not connect / wait timed out


class CoordinationError(Exception):
    """A misuse of the coordination API (e.g. a malformed connect string or path)."""


@attrs.define(eq=False)
class MultiOpFailed(Exception):
    """A ZooKeeper multi-op was rolled back: nothing in it was applied.

    index: position of the operation that failed; op: that operation;
    error: its error (e.g. BadVersion for a failed CheckOp/SetDataOp, NodeExists for a
    CreateOp, NoNode); results: one entry per op (RolledBack / the error /
    RuntimeInconsistency). Follows ZooKeeper's MultiResponse / KeeperException.multi.
    """

    index: int
    op: Any
    error: BaseException
    results: list[Any]

    def __str__(self) -> str:
        return f"multi-op failed at op {self.index} ({self.op!r}): {type(self.error).__name__}"


def code_name(exc: BaseException) -> str:
    """The ZooKeeper error name for ``exc`` (e.g. "NoNode", "BadVersion"), or its class name."""
    for name in (
        "NodeExists", "NoNode", "BadVersion", "NotEmpty", "NoChildrenForEphemerals",
        "BadArguments", "ConnectionClosed", "SessionExpired", "ConnectionLoss",
        "OperationTimeout", "SessionMoved", "AuthFailed", "RolledBack", "RuntimeInconsistency",
    ):
        if isinstance(exc, globals()[name]):
            return name
    return type(exc).__name__

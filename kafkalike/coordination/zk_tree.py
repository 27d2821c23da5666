"""The znode tree as a teaching view: every node under a path with its data and whether it is
ephemeral (what zookeeper-shell's ``ls -R`` + ``get`` + ``stat`` show, in one listing).

``await walk(zk, "/brokers")`` returns ``TreeNode`` values depth-first in sorted order;
``render(nodes)`` gives the lines ``kafkalike zk tree`` prints::

    /brokers
    /brokers/ids
    /brokers/ids/1  [ephemeral owner=0x100000a2b0c0000 czxid=0x10000001b]  {"version":5,...}
"""

from __future__ import annotations

import attrs

from kafkalike.coordination.errors import NoNode
from kafkalike.coordination.zookeeper_client import ZnodeStat, ZooKeeperClient

#: ZooKeeper's own subtree, skipped when listing from "/" unless asked for
ZOOKEEPER_INTERNAL = "/zookeeper"


@attrs.frozen
class TreeNode:
    """One znode: ``path``, raw ``data`` bytes and ``stat``."""

    path: str
    data: bytes
    stat: ZnodeStat

    @property
    def ephemeral(self) -> bool:
        """True if a session owns this node."""
        return self.stat.ephemeral

    def data_text(self, max_bytes: int | None = None) -> str:
        """The data as UTF-8 text, newlines shown as ``\\n`` (hex ``0x...`` if it is not
        text); "" when empty.
        ``max_bytes`` truncates with a trailing "...(N bytes)"."""
        data = self.data
        if not data:
            return ""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and text.replace("\n", "").replace("\t", "").isprintable():
            text = text.replace("\n", "\\n").replace("\t", "\\t")
        else:
            text = "0x" + data.hex()
        if max_bytes is not None and len(text) > max_bytes:
            text = f"{text[:max_bytes]}...({len(data)} bytes)"
        return text


def _child(path: str, name: str) -> str:
    return f"/{name}" if path == "/" else f"{path}/{name}"


async def walk(zk: ZooKeeperClient, path: str = "/", include_internal: bool = False) -> list[TreeNode]:
    """Every znode at and under ``path``, depth-first, children in name order.

    Nodes deleted while walking are skipped. Raises NoNode if ``path`` itself does not exist.
    ``include_internal``: also list ZooKeeper's own /zookeeper subtree.
    """
    await zk.sync(path)  # see every write committed so far, whichever server we talk to
    return await _walk(zk, path, include_internal)


async def _walk(zk: ZooKeeperClient, path: str, include_internal: bool) -> list[TreeNode]:
    out: list[TreeNode] = []
    data, stat = await zk.get(path)
    out.append(TreeNode(path, data, stat))
    try:
        children = await zk.get_children(path)
    except NoNode:
        return out
    for name in children:
        child = _child(path, name)
        if child == ZOOKEEPER_INTERNAL and not include_internal:
            continue
        try:
            out.extend(await _walk(zk, child, include_internal))
        except NoNode:
            continue
    return out


def render(nodes: list[TreeNode], with_data: bool = True, max_bytes: int | None = None) -> list[str]:
    """Lines for a human: ``path  [ephemeral owner=0x.. czxid=0x..]  data``."""
    lines = []
    for n in nodes:
        parts = [n.path]
        if n.ephemeral:
            parts.append(f"[ephemeral owner=0x{n.stat.ephemeral_owner:x} czxid=0x{n.stat.czxid:x}]")
        if with_data:
            text = n.data_text(max_bytes)
            if text:
                parts.append(text)
        lines.append("  ".join(parts))
    return lines

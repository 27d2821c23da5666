"""ZooKeeperClient's writes and multi-ops against a real ensemble, compared with a model of
ZooKeeper's rules (hypothesis): same results, same typed errors, same final tree."""

from __future__ import annotations

import itertools
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafkalike.coordination import (
    BadVersion,
    CheckOp,
    CreateOp,
    DeleteOp,
    MultiOpFailed,
    NodeExists,
    NoNode,
    NotEmpty,
    SetDataOp,
    ZnodeStat,
    ZooKeeperClient,
)

PATHS = ["/a", "/b", "/a/x", "/a/y", "/b/z"]
paths = st.sampled_from(PATHS)
datas = st.binary(max_size=8)
versions = st.sampled_from([-1, 0, 1, 2])

ops = st.one_of(
    st.builds(CreateOp, paths, datas),
    st.builds(SetDataOp, paths, datas, versions),
    st.builds(DeleteOp, paths, versions),
    st.builds(CheckOp, paths, st.sampled_from([0, 1, 2])),
)
steps = st.lists(st.one_of(ops, st.lists(ops, min_size=1, max_size=4)), min_size=1, max_size=12)


@attrs.define
class Model:
    """ZooKeeper's rules for persistent nodes: path -> (data, version)."""

    nodes: dict[str, tuple[bytes, int]] = attrs.Factory(lambda: {"/": (b"", 0)})

    @staticmethod
    def parent(path: str) -> str:
        return path.rsplit("/", 1)[0] or "/"

    def apply(self, op: Any) -> Any:
        """Apply one op; return its result or raise the ZooKeeper error (PrepRequestProcessor order)."""
        n = self.nodes
        if isinstance(op, CreateOp):
            if self.parent(op.path) not in n:
                raise NoNode()
            if op.path in n:
                raise NodeExists()
            n[op.path] = (op.data, 0)
            return op.path
        if op.path not in n:
            raise NoNode()
        data, version = n[op.path]
        if isinstance(op, CheckOp):
            if op.version != version:
                raise BadVersion()
            return True
        if op.version not in (-1, version):
            raise BadVersion()
        if isinstance(op, SetDataOp):
            n[op.path] = (op.data, version + 1)
            return version + 1
        if any(self.parent(p) == op.path for p in n if p != "/"):
            raise NotEmpty()
        del n[op.path]
        return True


async def _apply_real(zk: ZooKeeperClient, root: str, op: Any) -> Any:
    p = root + op.path
    if isinstance(op, CreateOp):
        created, _ = await zk.create(p, op.data)
        return created[len(root):]
    if isinstance(op, SetDataOp):
        return (await zk.set(p, op.data, op.version)).version
    if isinstance(op, DeleteOp):
        await zk.delete(p, op.version)
        return True
    stat = await zk.exists(p)  # a lone check: ZooKeeper's check is multi-only
    if stat is None:
        raise NoNode()
    if stat.version != op.version:
        raise BadVersion()
    return True


_counter = itertools.count()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps)
async def test_writes_and_multi_ops_behave_like_zookeepers_rules(zk_chroot_connect: str, plan: list[Any]) -> None:
    """Every single op and multi-op gives the model's result or error class; a failed multi names
    the model's failing op index and applies nothing; the final tree equals the model's."""
    async with ZooKeeperClient(zk_chroot_connect, session_timeout_ms=4000, name="model") as zk:
        await _run_plan(zk, plan)


async def _run_plan(zk_client: ZooKeeperClient, plan: list[Any]) -> None:
    root = f"/run{next(_counter)}"
    await zk_client.create(root)
    model = Model()
    for step in plan:
        if isinstance(step, list):
            trial = Model(dict(model.nodes))
            expected: list[Any] = []
            failure: tuple[int, type] | None = None
            for i, op in enumerate(step):
                try:
                    expected.append(trial.apply(op))
                except Exception as exc:
                    failure = (i, type(exc))
                    break
            shifted = [attrs.evolve(op, path=root + op.path) for op in step]
            try:
                results = await zk_client.multi(shifted)
            except MultiOpFailed as exc:
                assert failure is not None, f"multi {step} failed at {exc.index} ({exc.error!r}) but model applied it"
                assert (exc.index, type(exc.error)) == failure
                continue
            assert failure is None, f"multi {step} succeeded but model fails at {failure}"
            model = trial
            got = [r[len(root):] if isinstance(r, str) else (r.version if isinstance(r, ZnodeStat) else r) for r in results]
            assert got == expected
        else:
            try:
                want: Any = model.apply(step)
            except Exception as exc:
                want = type(exc)
            try:
                got_single: Any = await _apply_real(zk_client, root, step)
            except (NoNode, NodeExists, BadVersion, NotEmpty) as exc:
                got_single = type(exc)
            assert got_single == want, f"{step}: ZooKeeper gave {got_single!r}, model {want!r}"
    # final tree, data and versions
    for path in PATHS:
        stat = await zk_client.exists(root + path)
        if path in model.nodes:
            assert stat is not None, path
            data, _ = await zk_client.get(root + path)
            assert (data, stat.version) == model.nodes[path]
        else:
            assert stat is None, path

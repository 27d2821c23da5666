"""Helpers shared by the chaos tests that run a real local cluster: a started 3-broker
LocalBackend under its own ZooKeeper chroot, stopped whatever happens."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from kafkalike.chaos.local import LocalBackend


@contextmanager
def started_local_backend(tmp_path_factory: pytest.TempPathFactory, zk_connect: str, *, dir_name: str,
                          chroot_prefix: str, overrides: dict[str, str], **create: Any) -> Iterator[LocalBackend]:
    """A started 3-broker LocalBackend in a fresh ``dir_name`` temp directory, chroot
    ``<chroot_prefix><10 hex digits>``, broker properties ``overrides``, further
    ``LocalBackend.create`` arguments ``create`` (disk_mb, clock_faults); closed (iptables
    rules removed, processes stopped, tmpfs log dirs unmounted) when the block ends, also on
    failure."""
    backend = LocalBackend.create(tmp_path_factory.mktemp(dir_name), zookeeper_connect=zk_connect,
                                  chroot=f"{chroot_prefix}{uuid.uuid4().hex[:10]}", overrides=overrides, **create)
    backend.start(timeout=90)  # closes the backend itself if it fails
    try:
        yield backend
    finally:
        backend.close()

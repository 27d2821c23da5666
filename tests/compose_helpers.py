"""Helpers for the tests that bring up a docker-compose project (tests/chaos/test_chaos_compose.py,
tests/cluster/test_compose_prometheus.py, tests/cluster/test_compose_secure.py): why such a test
must be skipped here, a project's containers by service, a container's address, and what of a
project (containers, networks, volumes) is still there after ``down``.

./scripts/test installs Docker, starts dockerd and runs ./scripts/build-image before pytest; when
that was impossible it says why in KAFKALIKE_COMPOSE_SKIP."""

from __future__ import annotations

import os
import shutil
from typing import Any

from kafkalike.chaos.compose import docker_client
from kafkalike.chaos.local import ChaosBackendError


def compose_skip_reason(images: tuple[str, ...] = ("kafkalike:latest",), *, cli: bool = False) -> str | None:
    """Why a compose test cannot run here (KAFKALIKE_COMPOSE_SKIP's reason, no ``docker-compose``
    command when ``cli``, no Docker engine, one of ``images`` not built), or None when it can."""
    if os.environ.get("KAFKALIKE_COMPOSE_SKIP"):
        return os.environ["KAFKALIKE_COMPOSE_SKIP"]
    if cli and shutil.which("docker-compose") is None:
        return "docker-compose is not installed"
    try:
        client = docker_client()
    except ChaosBackendError as exc:
        return f"no Docker engine (./scripts/test starts one): {exc}"
    for image in images:
        try:
            client.images.get(image)
        except Exception:
            return f"no {image} image (./scripts/build-image builds it; ./scripts/test runs that)"
    return None


def _label(project: str, service: str | None = None) -> dict[str, list[str]]:
    labels = [f"com.docker.compose.project={project}"]
    if service is not None:
        labels.append(f"com.docker.compose.service={service}")
    return {"label": labels}


def service_containers(project: str, service: str) -> list[Any]:
    """The containers (running or not) of ``service`` in compose project ``project``, reloaded."""
    found = docker_client().containers.list(all=True, filters=_label(project, service))
    for c in found:
        c.reload()
    return list(found)


def container_address(container: Any) -> str | None:
    """The container's first address on its networks (the host reaches it directly), or None."""
    nets = container.attrs["NetworkSettings"]["Networks"] or {}
    return next((n["IPAddress"] for n in nets.values() if n.get("IPAddress")), None)


def project_objects(project: str) -> list[str]:
    """What of compose project ``project`` still exists: ``container <name>``, ``network <name>``,
    ``volume <name>`` (by the project label); [] after a clean ``down -v``."""
    client = docker_client()
    label = _label(project)
    return ([f"container {c.name}" for c in client.containers.list(all=True, filters=label)]
            + [f"network {n.name}" for n in client.networks.list(filters=label)]
            + [f"volume {v.name}" for v in client.volumes.list(filters=label)])

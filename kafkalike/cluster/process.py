"""Background OS processes supervised by pid file: spawn detached, check, stop, wait.

Used for every process ``kafkalike/cluster/`` runs (ZooKeeper nodes, brokers). A process is
started in its own session (so a Ctrl-C in the launching terminal does not reach it), with
stdin from /dev/null and stdout+stderr appended to a log file; its pid goes to a pid file.
Stopping is by pid only: SIGTERM, then SIGKILL after a timeout, as Kafka's
``kafka-server-stop.sh`` and ZooKeeper's ``zkServer.sh stop`` do (by pid, never by name).

Children spawned by *this* Python process are remembered (``subprocess.Popen``) so that a
dead child is reaped and reported dead instead of lingering as a zombie that still answers
``kill(pid, 0)``. Processes started by another launcher (e.g. ``kafkalike zk up`` in a
previous command) are checked through ``/proc``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import attrs
import structlog

log = structlog.get_logger(__name__)

# pid -> Popen for children of this process, so they can be reaped when they die.
_children: dict[int, subprocess.Popen[bytes]] = {}
# pid -> returncode of children reaped by is_alive (negative: killed by that signal)
_exit_codes: dict[int, int] = {}


class ProcessError(Exception):
    """A supervised process could not be started, died, or did not stop."""


@attrs.frozen
class SpawnedProcess:
    """What ``spawn_detached`` started: ``pid``, the ``argv`` it ran, its ``log_path`` and
    ``pid_path``."""

    pid: int
    argv: tuple[str, ...]
    log_path: Path
    pid_path: Path


def spawn_detached(
    argv: Sequence[str],
    log_path: str | os.PathLike[str],
    pid_path: str | os.PathLike[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    group: int | None = None,
    die_with_parent: bool = False,
) -> SpawnedProcess:
    """Start ``argv`` in the background, detached into its own session.

    stdout and stderr are appended to ``log_path`` (created with its parent dirs); the pid is
    written to ``pid_path`` (one decimal line, as zkServer.sh and kafka's scripts do).
    ``env`` replaces the environment when given (default: inherit). ``group``: run with this
    numeric gid (root only; no /etc/group entry needed) — lets iptables' ``-m owner
    --gid-owner`` single out one process's packets, e.g. to SNAT its loopback connections to
    its own 127.0.0.x source address. ``die_with_parent``: the process gets SIGKILL when this
    Python process dies, however it dies (``setpriv --pdeathsig KILL``; for test fixtures,
    never for ``kafkalike ... up``, whose processes must outlive the command). Linux ties the
    signal to the forking *thread*, so it is only set when called from the main thread.
    Raises ProcessError if the executable cannot be started (e.g. not installed).
    """
    log_path = Path(log_path)
    pid_path = Path(pid_path)
    if die_with_parent:
        setpriv = shutil.which("setpriv")
        if setpriv and threading.current_thread() is threading.main_thread():
            argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
        else:
            log.debug("pdeathsig_skipped", reason="no setpriv" if not setpriv else "not the main thread")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=None if cwd is None else str(cwd),
                env=None if env is None else dict(env),
                start_new_session=True,
                close_fds=True,
                group=group,
            )
        except OSError as exc:
            raise ProcessError(f"cannot start {argv[0]!r}: {exc}") from exc
    _children[proc.pid] = proc
    tmp = pid_path.with_name(pid_path.name + ".tmp")
    tmp.write_text(f"{proc.pid}\n")
    os.replace(tmp, pid_path)
    log.debug("process_spawned", pid=proc.pid, argv=list(argv), log=str(log_path))
    return SpawnedProcess(pid=proc.pid, argv=tuple(argv), log_path=log_path, pid_path=pid_path)


def read_pid(pid_path: str | os.PathLike[str]) -> int | None:
    """The pid stored in ``pid_path``, or None if the file is absent, empty or garbled."""
    try:
        text = Path(pid_path).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        pid = int(text.split()[0])
    except (ValueError, IndexError):
        return None
    return pid if pid > 0 else None


def _proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/<pid>/stat (R, S, D, T, Z, ...), None if absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name is in parentheses and may contain spaces; the state follows it
    return stat.rsplit(")", 1)[-1].split()[0]


def cmdline(pid: int) -> list[str]:
    """The argv of a live process (from /proc/<pid>/cmdline); [] if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [p.decode(errors="replace") for p in raw.split(b"\0") if p]


def is_alive(pid: int | None, expect_in_cmdline: str | None = None) -> bool:
    """True if ``pid`` is a running (or stopped, SIGSTOP) process, not a zombie.

    ``expect_in_cmdline``: when given, the process's argv must contain this substring (guards
    against a recycled pid after a reboot or a long time, e.g. the node's cfg path).
    Reaps the process if it is a dead child of this Python process.
    """
    if pid is None or pid <= 0:
        return False
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            _children.pop(pid, None)
            _exit_codes[pid] = child.returncode
            return False
    else:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, owned by someone else
        if _proc_state(pid) in (None, "Z", "X"):
            return False
    if expect_in_cmdline is not None:
        argv = cmdline(pid)
        # an empty cmdline is transient (right after fork/exec, e.g. java's launcher re-exec)
        return not argv or any(expect_in_cmdline in arg for arg in argv)
    return True


def pids_with_arg(arg: str) -> list[int]:
    """Pids of live processes (not zombies) one of whose argv elements equals ``arg`` exactly,
    from /proc, in ascending order. For finding a process by a unique marker of its own (e.g.
    ``-Dkafkalike.zk.node=<node dir>``) when its pid file is lost or stale; callers still
    stop what they find by pid."""
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == os.getpid() or arg not in cmdline(pid):
            continue
        if _proc_state(pid) not in (None, "Z", "X"):
            out.append(pid)
    return sorted(out)


def exit_description(pid: int | None) -> str:
    """How ``pid`` ended, when it was a child of this Python process that ``is_alive`` found
    dead: "exit code 1", "killed by SIGKILL"; "" when unknown (another launcher's process)."""
    code = _exit_codes.get(pid) if pid is not None else None
    if code is None:
        return ""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def wait_for(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = "condition"
) -> None:
    """Poll ``predicate`` every ``interval`` seconds until it returns True.

    Raises TimeoutError naming ``what`` if ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def signal_pid(pid: int, sig: int) -> bool:
    """Send ``sig`` to ``pid``; False if the process is already gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def stop_pid(pid: int | None, timeout: float = 10.0, kill_timeout: float = 5.0) -> bool:
    """Stop ``pid``: SIGTERM, wait up to ``timeout`` s, then SIGKILL and wait ``kill_timeout`` s.

    A SIGSTOPped process is sent SIGCONT after SIGTERM so it can act on it.
    Returns True if the process was running and is now gone, False if it was not running.
    Raises ProcessError if it survives SIGKILL (e.g. uninterruptible sleep).
    """
    if not is_alive(pid):
        return False
    assert pid is not None
    signal_pid(pid, signal.SIGTERM)
    signal_pid(pid, signal.SIGCONT)
    try:
        wait_for(lambda: not is_alive(pid), timeout, what=f"pid {pid} to exit after SIGTERM")
    except TimeoutError:
        log.warning("process_kill", pid=pid, reason="no exit after SIGTERM", timeout_s=timeout)
        signal_pid(pid, signal.SIGKILL)
        try:
            wait_for(lambda: not is_alive(pid), kill_timeout, what=f"pid {pid} to exit after SIGKILL")
        except TimeoutError as exc:
            raise ProcessError(str(exc)) from exc
    return True


def kill_pid(pid: int | None, sig: int = signal.SIGKILL, wait: float = 5.0) -> bool:
    """Send ``sig`` (default SIGKILL, a crash) to ``pid`` and, for SIGKILL/SIGTERM, wait up to
    ``wait`` s for it to be gone. Returns False if it was not running."""
    if not is_alive(pid):
        return False
    assert pid is not None
    signal_pid(pid, sig)
    if sig in (signal.SIGKILL, signal.SIGTERM):
        wait_for(lambda: not is_alive(pid), wait, what=f"pid {pid} to exit after signal {sig}")
    return True


def tail(path: str | os.PathLike[str], lines: int = 20) -> str:
    """The last ``lines`` lines of a text file ("" if it does not exist); for error messages."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])

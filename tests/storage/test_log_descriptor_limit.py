"""A broker's logs under its open-files limit (issue 24, 30,000 partitions per broker).

Each open log holds one descriptor while idle: its active segment's .log (indexes hold none,
docs/storage.md "Descriptors per partition"; Kafka holds the same one per segment and its docs
tell operators to raise nofile). So a broker of N partitions needs N descriptors plus its
connections. Here one LogManager, in a child process whose RLIMIT_NOFILE is lowered (so the test
process keeps its own), creates logs until the limit: the one that does not fit fails with
KafkaStorageError naming EMFILE (the broker answers KAFKA_STORAGE_ERROR for that partition in
its LeaderAndIsr response), leaks nothing, and takes neither the dir nor the partition offline:
once descriptors are available again the same log is created, and the earlier ones still
take appends.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs Linux /proc")

LIMIT = 160

_CHILD = r"""
import json, os, resource, sys
from pathlib import Path

import structlog
structlog.configure(logger_factory=structlog.PrintLoggerFactory(open(os.devnull, "w")))

from kafkalike.storage.checkpoints import TopicPartition
from kafkalike.storage.errors import KafkaStorageError
from kafkalike.storage.log_manager import LogManager
from tests.storage.storage_helpers import batch

root, limit = Path(sys.argv[1]), int(sys.argv[2])
mgr = LogManager([root / "logs"])
mgr.startup()

def fds():
    return len(os.listdir("/proc/self/fd"))

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
base = fds()
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
created, error = 0, None
while created < 10 * limit:
    try:
        mgr.get_or_create_log(TopicPartition("t", created))
    except KafkaStorageError as e:
        error = str(e)
        break
    created += 1
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
after_failure = fds()
retried = mgr.get_or_create_log(TopicPartition("t", created)) is not None
first = mgr.get_log(TopicPartition("t", 0))
first.append(batch(3))
print(json.dumps({"base": base, "created": created, "error": error, "after_failure": after_failure,
                  "offline_dirs": len(mgr.offline_dirs), "offline": len(mgr.offline), "retried": retried,
                  "first_log_end": first.log_end_offset, "logs": len(mgr.logs)}))
mgr.shutdown()
"""


def test_logs_past_the_open_files_limit_fail_alone_and_cost_one_descriptor_each(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path), str(LIMIT)], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # every log that fit costs exactly one descriptor, and the one that did not left none behind
    assert out["after_failure"] == out["base"] + out["created"]
    # the limit, not something else, stopped it: all but a few descriptors went to logs
    assert LIMIT - out["base"] - 3 <= out["created"] < LIMIT
    assert out["error"] is not None and "Too many open files" in out["error"]
    assert out["offline_dirs"] == 0 and out["offline"] == 0
    assert out["retried"] and out["logs"] == out["created"] + 1
    assert out["first_log_end"] == 3

"""Fast checks of the chaos harness's pieces that need no cluster: the seeded random
schedule, the CLI's durations, the workload's value codec and partitioner, and the iptables
guard (only 127.0.0.0/8 rules, all removed)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from kafkalike.chaos.campaign import fault_kind
from kafkalike.chaos.faults import MENUS, ClockJump, Kill, KillZk, ZkQuorumLoss, fault_catalog, random_schedule
from kafkalike.chaos.local import ChaosBackendError, Iptables
from kafkalike.chaos.scenarios import SCENARIOS
from kafkalike.chaos.workload import decode_value, partition_for
from kafkalike.cli.chaos import parse_duration


def test_random_schedule_is_determined_by_the_seed() -> None:
    """Same seed, same steps; another seed, other steps; the holds cover the duration."""
    a = random_schedule(random.Random(1), 300, 6.0, with_zk=True)
    b = random_schedule(random.Random(1), 300, 6.0, with_zk=True)
    c = random_schedule(random.Random(2), 300, 6.0, with_zk=True)
    assert [(s.fault, s.hold, s.quiet) for s in a] == [(s.fault, s.hold, s.quiet) for s in b]
    assert [(s.fault, s.hold) for s in a] != [(s.fault, s.hold) for s in c]
    assert sum(s.hold + s.quiet + 12.0 for s in a) >= 300
    assert len({type(s.fault).__name__ + s.fault.name for s in a}) >= 4


def test_random_schedule_without_zookeeper_never_breaks_it() -> None:
    """A backend that does not own the ensemble gets no ZooKeeper faults."""
    for menu in MENUS:
        steps = random_schedule(random.Random(5), 2000, 6.0, with_zk=False, menu=menu)
        assert not [s for s in steps if isinstance(s.fault, (KillZk, ZkQuorumLoss))]
        assert any(isinstance(s.fault, Kill) for s in steps)


CAMPAIGN_V1 = Path(__file__).parents[2] / "docs" / "campaigns" / "2026-12-07-local" / "runs"


def test_menu_v1_replays_the_first_campaigns_schedules() -> None:
    """The first campaign ran before menus existed: for every one of its runs whose faults
    were all applied, the fault kinds it recorded are, in order, the kinds of the v1 schedule
    drawn from its seed (the first draw, before targets consume the rng)."""
    checked = 0
    for run in sorted(CAMPAIGN_V1.iterdir()):
        record = json.loads((run / "campaign-run.json").read_text())
        if record["fault_errors"] or record["status"] == "error":
            continue
        recorded = [fault_kind(f["name"], f["detail"]) for f in
                    (json.loads(line) for line in (run / "faults.jsonl").read_text().splitlines() if line)]
        steps = random_schedule(random.Random(record["seed"]), record["duration_s"], 6.0, with_zk=True, menu="v1")
        drawn = [fault_kind(s.fault.name, s.fault.describe()) for s in steps]
        n = min(len(recorded), len(steps) - 1)
        assert recorded[:n] == drawn[:n], (run.name, recorded, drawn)
        checked += n
    assert checked >= 50


def test_menu_v2_adds_storms_and_offers_disks_clocks_and_growth_only_where_the_backend_can() -> None:
    """v2 holds every v1 fault kind plus zk-expiry-storm and the topic-deletion combination;
    disk-full, clock-jump, the growth and the proxy faults only with with_disk / with_clock /
    with_spare / with_proxy; clock jumps go both ways; an unknown menu is refused."""
    def kinds(**kw: bool) -> set[str]:
        out: set[str] = set()
        for seed in range(30):
            out |= {s.fault.name for s in random_schedule(random.Random(seed), 600, 6.0, with_zk=True, **kw)}
        return out

    v1 = {s.fault.name for seed in range(30)
          for s in random_schedule(random.Random(seed), 600, 6.0, with_zk=True, menu="v1")}
    bare = kinds()
    full = kinds(with_disk=True, with_clock=True, with_spare=True, with_proxy=True)
    assert v1 <= bare and bare - v1 == {"zk-expiry-storm", "delete-topic+kill9"}
    assert full - bare == {"disk-full", "clock-jump", "grow", "decommission", "grow+kill9", "net-delay", "net-drop"}
    jumps = [s.fault.offset_s for seed in range(30) for s in
             random_schedule(random.Random(seed), 600, 6.0, with_zk=True, with_clock=True)
             if isinstance(s.fault, ClockJump)]
    assert min(jumps) < 0 < max(jumps)
    with pytest.raises(ValueError, match="unknown nemesis menu"):
        fault_catalog(6.0, True, menu="v3")


def test_duration_parsing() -> None:
    """The CLI's --duration accepts s, m, ms and bare seconds, and refuses garbage."""
    assert parse_duration("60s") == 60.0
    assert parse_duration("5m") == 300.0
    assert parse_duration("1.5") == 1.5
    assert parse_duration("500ms") == 0.5
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_value_codec_and_partitioner() -> None:
    """Values decode back to (key, seq); garbage decodes to (None, None); keys map to a stable
    partition."""
    assert decode_value(b"k1-3:41") == ("k1-3", 41)
    assert decode_value(b"\xff\xfe") == (None, None)
    assert decode_value(b"no-seq") == (None, None)
    assert partition_for("k0-1", 3) == partition_for("k0-1", 3)
    assert {partition_for(f"k{i}-{j}", 3) for i in range(2) for j in range(6)} == {0, 1, 2}


def test_scenario_library_names_and_expectations() -> None:
    """Every scenario of the issue is there; only unclean-election expects loss."""
    want = {"leader-kill", "controller-kill", "zombie-controller", "zk-leader-loss", "zk-quorum-loss",
            "leader-partition", "isolated-broker", "rolling-restart", "unclean-election", "random"}
    assert want <= set(SCENARIOS)
    assert [s.name for s in SCENARIOS.values() if s.expect == "lost"] == ["unclean-election"]
    assert SCENARIOS["unclean-election"].topic_config["unclean.leader.election.enable"] == "true"


def test_iptables_refuses_rules_outside_loopback() -> None:
    """A rule naming an address outside 127.0.0.0/8 is refused before iptables runs."""
    ipt = Iptables()
    with pytest.raises(ChaosBackendError, match="outside 127"):
        ipt._rule(("-d", "10.0.0.1"))


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("iptables") is None, reason="needs root and iptables")
def test_iptables_rules_are_all_removed() -> None:
    """Rules added under a run's tag are gone after remove_all (the atexit/finally path)."""
    ipt = Iptables()

    def tagged() -> list[str]:
        out = subprocess.run(["iptables", "-w", "-S", "OUTPUT"], capture_output=True, text=True).stdout
        return [line for line in out.splitlines() if ipt.tag in line]

    try:
        # gid 1 owns nothing that talks to this port: the rules are inert
        ipt.add("-p", "tcp", "-m", "owner", "--gid-owner", "1", "-d", "127.0.0.250", "--dport", "9")
        ipt.add("-p", "tcp", "-m", "owner", "--gid-owner", "1", "-d", "127.0.0.251", "--dport", "9")
        assert len(tagged()) == 2
    finally:
        assert ipt.remove_all() >= 2
    assert tagged() == []


def test_chaos_check_command_judges_a_history_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``kafkalike chaos check`` exits 0 on a valid history and 1 when an acknowledged record
    is missing from the drain, naming it."""
    from kafkalike.chaos.history import Acknowledged, Assigned, Consumed, Drained, Sent, write_history
    from kafkalike.cli.main import main

    def history(read_seq1: bool) -> list:
        ev: list = [Sent(1.0, "p0.0", "t", "k", 0, 0), Acknowledged(1.1, "t", "k", 0, 0, 0),
                    Sent(1.2, "p0.0", "t", "k", 1, 0), Acknowledged(1.3, "t", "k", 1, 0, 1),
                    Assigned(2.0, "drain", "t", 0, 0), Consumed(2.1, "drain", "t", 0, 0, "k", 0)]
        if read_seq1:
            ev.append(Consumed(2.2, "drain", "t", 0, 1, "k", 1))
        return ev + [Drained(2.3, "drain", "t", 0, 0, 2)]

    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    write_history(good / "history.jsonl", history(True))
    write_history(bad / "history.jsonl", history(False))
    assert main(["chaos", "check", str(good)]) == 0
    assert "VERDICT VALID" in capsys.readouterr().out
    assert main(["chaos", "check", str(bad / "history.jsonl")]) == 1
    out = capsys.readouterr().out
    assert "VERDICT INVALID: lost=1" in out and "key=k seq=1" in out
    assert main(["chaos", "check", str(tmp_path / "missing")]) == 2

"""A campaign's focus (``--kinds``): the random nemesis's draw restricted to some fault kinds,
kept in the menu spec every run records and replays (kafkalike/chaos/faults.py MenuSpec,
fault_catalog; kafkalike/chaos/campaign.py; kafkalike/cli/chaos.py). Unit-level: schedules
drawn, argv built, the CLI's refusals (no cluster is started)."""

from __future__ import annotations

import random
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from kafkalike.chaos.campaign import CampaignOptions, fault_kind, replay_command, run_record
from kafkalike.chaos.faults import (
    KINDS,
    NEW_KINDS,
    V1_KINDS,
    MenuSpec,
    fault_catalog,
    parse_kinds,
    parse_menu,
    random_schedule,
)

ALL_SURFACES = {"with_disk": True, "with_clock": True, "with_spare": True, "with_proxy": True}


def _kinds_of(steps: list) -> list[str]:  # type: ignore[type-arg]
    return [fault_kind(s.fault.name, s.fault.describe()) for s in steps]


def test_every_catalog_entry_draws_a_fault_of_its_declared_kind() -> None:
    """The kind each menu entry is tagged with is the kind the campaign counts its fault
    under: a focus on one kind draws only that kind, for every kind of menu v2."""
    for kind in KINDS:
        steps = random_schedule(random.Random(7), 400, 6.0, with_zk=True, menu=f"v2:{kind}", **ALL_SURFACES)
        assert set(_kinds_of(steps)) == {kind}, kind


def test_same_seed_and_kinds_give_the_same_schedule() -> None:
    spec = "v2:disk-full,clock-jump,net-drop"
    a = random_schedule(random.Random(11), 600, 6.0, with_zk=True, menu=spec, **ALL_SURFACES)
    b = random_schedule(random.Random(11), 600, 6.0, with_zk=True, menu=spec, **ALL_SURFACES)
    c = random_schedule(random.Random(12), 600, 6.0, with_zk=True, menu=spec, **ALL_SURFACES)
    assert [(s.fault, s.hold, s.quiet) for s in a] == [(s.fault, s.hold, s.quiet) for s in b]
    assert [(s.fault, s.hold, s.quiet) for s in a] != [(s.fault, s.hold, s.quiet) for s in c]
    assert set(_kinds_of(a)) == {"disk-full", "clock-jump", "net-drop"}


def test_a_schedule_without_focus_is_unchanged_by_the_kind_tags() -> None:
    """The whole v2 menu (no focus) still draws every kind, so earlier seeds keep their faults."""
    seen: set[str] = set()
    for seed in range(40):
        seen |= set(_kinds_of(random_schedule(random.Random(seed), 600, 6.0, with_zk=True, **ALL_SURFACES)))
    assert seen == set(KINDS)


def test_new_stands_for_every_kind_menu_v2_adds() -> None:
    assert parse_kinds("new") == NEW_KINDS
    assert parse_kinds("clock-jump,new,kill9") == ("kill9", *NEW_KINDS)
    assert parse_kinds("") == ()
    assert str(parse_menu("v2:net-drop,disk-full")) == "v2:disk-full,net-drop"  # KINDS order
    assert parse_menu("v1") == MenuSpec("v1")


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault kind 'disk-ful'"):
        parse_kinds("disk-full,disk-ful")
    with pytest.raises(ValueError, match="unknown fault kind 'disk-full' for menu v1"):
        parse_menu("v1:disk-full")
    with pytest.raises(ValueError, match="unknown nemesis menu 'v3'"):
        parse_menu("v3:kill9")
    with pytest.raises(ValueError, match="names no fault kind"):
        parse_menu("v2:")
    assert set(parse_kinds(",".join(V1_KINDS), "v1")) == set(V1_KINDS)


def test_a_kind_the_backend_does_not_offer_is_refused() -> None:
    with pytest.raises(ValueError, match="disk-full not offered by this backend"):
        fault_catalog(6.0, True, "v2:disk-full,clock-jump", with_clock=True)
    with pytest.raises(ValueError, match="delete-topic\\+kill9 not offered"):
        fault_catalog(6.0, False, "v2:delete-topic+kill9")  # a backend that shows no topic znodes


def test_replay_command_and_record_carry_the_focus(tmp_path: Path) -> None:
    opts = CampaignOptions(3, tmp_path, duration=90.0, seed_from=5, kinds=("disk-full", "grow+kill9"))
    argv = replay_command(opts, 6, tmp_path / "run-001-seed-6")
    assert argv[argv.index("--kinds") + 1] == "disk-full,grow+kill9"
    assert argv[argv.index("--menu") + 1] == "v2"
    assert opts.menu_spec == "v2:disk-full,grow+kill9"
    assert "--kinds" not in replay_command(CampaignOptions(1, tmp_path), 1, tmp_path)
    # a run that left no verdict is still recorded with its focus and a replay carrying it
    rec = run_record(1, 6, opts, tmp_path / "run-001-seed-6", 2, 10.0, "set-up failed")
    assert rec.menu == "v2:disk-full,grow+kill9"
    assert "--kinds disk-full,grow+kill9" in rec.replay
    assert shlex.split(rec.replay)[:3] == ["kafkalike", "chaos", "run"]


@pytest.mark.parametrize("argv", [
    ["chaos", "run", "--nemesis", "random", "--kinds", "disk-full,bogus"],
    ["chaos", "campaign", "--runs", "1", "--kinds", "bogus"],
    ["chaos", "campaign", "--runs", "1", "--menu", "v1", "--kinds", "disk-full"],
    ["chaos", "run", "--scenario", "leader-kill", "--kinds", "kill9"],
])
def test_cli_refuses_a_bad_focus_before_starting_anything(argv: list[str], tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "kafkalike.cli.main", *argv, "--report", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "kind" in proc.stderr
    assert not (tmp_path / "r" / "cluster").exists()

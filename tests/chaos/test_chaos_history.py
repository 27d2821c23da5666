"""The history format: events round-trip through JSON lines; a torn last line is ignored;
bad lines are typed errors naming the line."""

import io
import json
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkalike.chaos.history import (
    EVENT_TYPES,
    Acknowledged,
    Assigned,
    Committed,
    Consumed,
    Drained,
    Failed,
    FaultHealed,
    FaultStarted,
    HistoryError,
    HistoryReader,
    HistoryWriter,
    Joined,
    ProducerEpoch,
    Sent,
    dumps,
    event_from_dict,
    history_text,
    loads,
    read_history,
    write_history,
)

EXAMPLES = [
    Sent(1.5, "p0", "chaos", "k1", 0, 2),
    Sent(1.6, "p0", "chaos", "k1", 1),
    Acknowledged(1.7, "chaos", "k1", 0, 2, 17),
    Failed(1.8, "chaos", "k1", 1, "REQUEST_TIMED_OUT", False, 2),
    Failed(1.9, "chaos", "k2", 0, "NOT_ENOUGH_REPLICAS", True),
    Assigned(2.0, "c0", "chaos", 2, 0),
    Assigned(2.0, "c0", "chaos", 1),
    Consumed(2.1, "c0", "chaos", 2, 17, "k1", 0),
    Consumed(2.2, "c0", "chaos", 2, 18, None, None),
    Drained(3.0, "drain", "chaos", 2, 0, 19),
    FaultStarted(1.0, "kill9", "broker-2", "pid 4242"),
    FaultHealed(2.5, "kill9", "broker-2"),
    ProducerEpoch(2.6, "p0", "chaos", 2, 1000, 1, "epoch bump: skipped sequence numbers"),
    Joined(0.5, "c0", "chaos-group"),
    Committed(2.3, "c0", "chaos-group", "chaos", 2, 19),
]


def test_every_event_type_round_trips_through_a_line() -> None:
    """dumps then loads gives back an equal event, for every event class."""
    assert {type(e) for e in EXAMPLES} == set(EVENT_TYPES.values())
    for e in EXAMPLES:
        line = dumps(e)
        assert "\n" not in line
        assert loads(line) == e


def test_line_is_a_flat_json_object_with_a_type_tag() -> None:
    """A line is one JSON object: "type" plus the attrs field names."""
    d = json.loads(dumps(Acknowledged(1.25, "t", "k", 3, 0, 9)))
    assert d == {"type": "acked", "time": 1.25, "topic": "t", "key": "k", "seq": 3,
                 "partition": 0, "offset": 9}


keys = st.text(min_size=0, max_size=8)
ints = st.integers(min_value=0, max_value=2**62)
times = st.floats(min_value=0, max_value=1e9, allow_nan=False)
events = st.one_of(
    st.builds(Sent, times, keys, keys, keys, ints, st.none() | ints),
    st.builds(Acknowledged, times, keys, keys, ints, ints, ints),
    st.builds(Failed, times, keys, keys, ints, keys, st.booleans(), st.none() | ints),
    st.builds(Consumed, times, keys, keys, ints, ints, st.none() | keys, st.none() | ints),
    st.builds(Drained, times, keys, keys, ints, ints, ints),
    st.builds(FaultStarted, times, keys, keys, keys),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(events, max_size=20))
def test_any_event_sequence_round_trips_through_a_file(tmp_path_factory: pytest.TempPathFactory,
                                                     evs: list) -> None:
    """write_history then read_history yields the same events, unicode keys included."""
    path = tmp_path_factory.mktemp("h") / "history.jsonl"
    assert write_history(path, evs) == len(evs)
    assert list(read_history(path)) == evs


def test_torn_last_line_of_a_crashed_run_is_ignored(tmp_path: pathlib.Path) -> None:
    """A last line cut mid-write is skipped and reported in reader.torn."""
    text = history_text(EXAMPLES[:4])
    torn = dumps(EXAMPLES[4])[:23]
    path = tmp_path / "h.jsonl"
    path.write_text(text + torn, encoding="utf-8")
    reader = HistoryReader(path)
    assert list(reader) == EXAMPLES[:4]
    assert reader.torn == torn
    assert reader.lines == 5


def test_torn_last_line_inside_a_multibyte_character_is_ignored(tmp_path: pathlib.Path) -> None:
    """A write cut inside a UTF-8 sequence is still only a torn last line."""
    line = dumps(Sent(1.0, "p", "t", "clé-ünïcode", 0)).encode()
    cut = line[: line.index("é".encode()) + 1]
    path = tmp_path / "h.jsonl"
    path.write_bytes(history_text(EXAMPLES[:2]).encode() + cut)
    reader = HistoryReader(path)
    assert list(reader) == EXAMPLES[:2]
    assert reader.torn is not None


def test_complete_last_line_without_newline_is_kept() -> None:
    """A parseable last line without a newline is an event, not a torn line."""
    reader = HistoryReader(io.StringIO(history_text(EXAMPLES[:2]) + dumps(EXAMPLES[2])))
    assert list(reader) == EXAMPLES[:3]
    assert reader.torn is None


def test_bad_line_in_the_middle_is_an_error_naming_the_line() -> None:
    """A line that does not parse, followed by others, is corruption: HistoryError with its number."""
    text = history_text(EXAMPLES[:2]) + '{"type":"sent","ti\n' + history_text(EXAMPLES[2:3])
    with pytest.raises(HistoryError, match=r"^history line 3: not JSON|^history line 3: "):
        list(read_history(io.StringIO(text)))


def test_blank_lines_are_skipped() -> None:
    """Empty lines between events are ignored."""
    text = "\n" + dumps(EXAMPLES[0]) + "\n\n" + dumps(EXAMPLES[1]) + "\n"
    assert list(read_history(io.StringIO(text))) == EXAMPLES[:2]


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"type": "nope", "time": 1.0}, r"^unknown event type 'nope'$"),
        ([1, 2], r"^event must be a JSON object, got list$"),
        ({"type": "acked", "time": 1.0, "topic": "t", "key": "k", "seq": 1, "partition": 0},
         r"^acked: .*offset"),
        ({"type": "acked", "time": 1.0, "topic": "t", "key": "k", "seq": 1, "partition": 0,
          "offset": "9"}, r"^acked: field 'offset' has type str$"),
        ({"type": "acked", "time": 1.0, "topic": "t", "key": "k", "seq": 1, "partition": True,
          "offset": 9}, r"^acked: field 'partition' has type bool$"),
        ({"type": "sent", "time": "x", "producer": "p", "topic": "t", "key": "k", "seq": 1},
         r"^sent: field 'time' has type str$"),
        ({"type": "failed", "time": 1.0, "topic": "t", "key": "k", "seq": 1, "error": "E",
          "definite": 1}, r"^failed: field 'definite' has type int$"),
        ({"type": "fault_healed", "time": 1.0, "name": "n", "target": "t", "extra": 1},
         r"^fault_healed: unknown field\(s\) \['extra'\]$"),
    ],
)
def test_malformed_objects_are_typed_errors(obj: object, message: str) -> None:
    """Unknown types, missing, extra or mistyped fields raise HistoryError saying which."""
    with pytest.raises(HistoryError, match=message):
        event_from_dict(obj)


def test_defaults_may_be_omitted_in_a_line() -> None:
    """Optional fields (partition, definite, offset, detail) take their defaults when absent."""
    assert loads('{"type":"sent","time":1,"producer":"p","topic":"t","key":"k","seq":0}') \
        == Sent(1, "p", "t", "k", 0, None)
    assert loads('{"type":"fault_started","time":1.0,"name":"n","target":"b1"}') \
        == FaultStarted(1.0, "n", "b1", "")


def test_writer_hands_each_line_to_the_os_as_written(tmp_path: pathlib.Path) -> None:
    """With the default flush, another reader sees every event while the writer is open."""
    path = tmp_path / "live.jsonl"
    with HistoryWriter(path) as w:
        w.write(EXAMPLES[0])
        w.write(EXAMPLES[1])
        assert list(read_history(path)) == EXAMPLES[:2]
    assert w.count == 2


def test_writer_appends_to_an_existing_history(tmp_path: pathlib.Path) -> None:
    """Opening a writer on a path appends, so a restarted workload continues one history."""
    path = tmp_path / "h.jsonl"
    with HistoryWriter(path) as w:
        w.write(EXAMPLES[0])
    with HistoryWriter(path) as w:
        w.write(EXAMPLES[1])
    assert list(read_history(path)) == EXAMPLES[:2]


def test_writer_refuses_objects_that_are_not_events() -> None:
    """Writing something other than a history event is a HistoryError."""
    w = HistoryWriter(io.StringIO())
    with pytest.raises(HistoryError, match=r"^not a history event"):
        w.write({"type": "sent"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"type":"fault_healed","time":1.0,"name":"n","target":"\xff"}\n', r"^history line 2: not UTF-8"),
        (b'{"type":"fault_healed","time":1.0,"name":"n","target":"t"} x\n', r"^history line 2: not JSON: Extra data"),
        (b'{"type":"fault_healed","time":1.0,"name":"n","target":"t"}{}\n', r"^history line 2: not JSON: Extra data"),
        (b'{"type":"fault_healed","time":NaN,"name":"n","target":"t"}\n', r"^history line 2: fault_healed: field 'time' is NaN$"),
    ],
)
def test_bad_complete_lines_are_refused(tmp_path: pathlib.Path, raw: bytes, message: str) -> None:
    """Invalid UTF-8, trailing data after the object, and NaN times are HistoryErrors."""
    path = tmp_path / "h.jsonl"
    path.write_bytes(dumps(EXAMPLES[0]).encode() + b"\n" + raw + dumps(EXAMPLES[1]).encode() + b"\n")
    with pytest.raises(HistoryError, match=message):
        list(read_history(path))


def test_crlf_leading_spaces_and_binary_files_are_read(tmp_path: pathlib.Path) -> None:
    """CRLF line ends, indented lines and binary file objects give the same events."""
    lines = [dumps(e) for e in EXAMPLES]
    raw = "\r\n".join("  " + ln if i % 2 else ln for i, ln in enumerate(lines)) + "\r\n"
    path = tmp_path / "h.jsonl"
    path.write_bytes(raw.encode())
    assert list(read_history(path)) == EXAMPLES
    assert list(read_history(io.BytesIO(raw.encode()))) == EXAMPLES


def test_resuming_a_crashed_history_cuts_its_torn_tail(tmp_path: pathlib.Path) -> None:
    """A writer appending to a file that ends in a torn line drops the fragment first, so the
    resumed history reads cleanly instead of gluing the fragment to the next event."""
    path = tmp_path / "h.jsonl"
    torn = dumps(EXAMPLES[2])[:30]
    path.write_text(history_text(EXAMPLES[:2]) + torn, encoding="utf-8")
    with HistoryWriter(path) as w:
        assert w.dropped_torn == len(torn)
        w.write(EXAMPLES[3])
    assert list(read_history(path)) == [EXAMPLES[0], EXAMPLES[1], EXAMPLES[3]]


def test_resuming_a_history_that_is_only_a_torn_line(tmp_path: pathlib.Path) -> None:
    """A file holding nothing but a fragment is emptied before appending."""
    path = tmp_path / "h.jsonl"
    path.write_bytes(b'{"type":"se')
    with HistoryWriter(path) as w:
        assert w.dropped_torn == 11
        w.write(EXAMPLES[0])
    assert list(read_history(path)) == [EXAMPLES[0]]


def test_resuming_after_a_complete_line_without_newline_keeps_it(tmp_path: pathlib.Path) -> None:
    """A last line that parses but lacks its newline is an event: the writer completes it."""
    path = tmp_path / "h.jsonl"
    path.write_text(history_text(EXAMPLES[:1]) + dumps(EXAMPLES[1]), encoding="utf-8")
    with HistoryWriter(path) as w:
        assert w.dropped_torn == 0
        w.write(EXAMPLES[2])
    assert list(read_history(path)) == EXAMPLES[:3]

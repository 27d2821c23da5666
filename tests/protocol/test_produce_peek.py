"""protocol.produce.peek_required_acks: the acks of a Produce frame without decoding it (what
the socket server reads to decide whether a request may be pipelined)."""

from __future__ import annotations

import datetime
import struct

from kio.index import load_payload_module
from kio.static.constants import EntityType

from kafkalike.protocol.produce import encode_produce_request_body, peek_required_acks


def test_peek_required_acks_reads_acks_from_every_produce_layout() -> None:
    """acks straight from the frame for Produce v3-v12 (request header v1, then v2 with tagged
    fields from v9), with and without a transactional id and client id; None for other APIs,
    versions outside the fast layouts, and frames cut short."""
    for version in range(3, 13):
        for acks in (-1, 0, 1):
            for txn in (None, "txn-a"):
                for client_id in (None, "cli"):
                    mod = load_payload_module(0, version, EntityType.request)
                    req = mod.ProduceRequest(transactional_id=txn, acks=acks, timeout=datetime.timedelta(milliseconds=100), topic_data=())
                    body = b"".join(bytes(c) for c in encode_produce_request_body(req, version))
                    cid = b"\xff\xff" if client_id is None else struct.pack(">h", len(client_id)) + client_id.encode()
                    header = struct.pack(">hhi", 0, version, 7) + cid + (b"\x00" if version >= 9 else b"")
                    frame = memoryview(header + body)
                    assert peek_required_acks(frame) == acks, (version, acks, txn, client_id)
                    assert peek_required_acks(frame[:len(header) + 1]) is None
    metadata = memoryview(struct.pack(">hhi", 3, 12, 7) + b"\xff\xff\x00" + b"\x00" * 8)
    assert peek_required_acks(metadata) is None
    assert peek_required_acks(memoryview(struct.pack(">hhi", 0, 2, 7) + b"\xff\xff" + b"\x00" * 8)) is None

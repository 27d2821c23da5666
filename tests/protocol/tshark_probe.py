"""Ask Wireshark's Kafka dissector (tshark) which of our encoded frames it decodes cleanly.

    .venv/bin/python tests/protocol/tshark_probe.py [--all-known | --table tshark]

For every served (api_key, version) -- or with ``--all-known`` every version with a schema --
a sample request and a sample response (every field set) are encoded with kafkalike's codec
and exchanged over one loopback TCP connection while dumpcap records it; tshark then
dissects the capture as Kafka. Prints one line per (api, version): "ok", or what tshark
flagged (unsupported version, malformed, expert errors). Used to choose the version table
(docs/protocol.md, "Wireshark") and by tests/protocol/test_protocol_tshark.py.

Needs dumpcap and tshark (Debian package tshark) and the right to capture on ``lo``.
Stops dumpcap and closes its sockets before returning.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from test_protocol_fuzz import _sample  # noqa: E402

from kafkalike.protocol import codec  # noqa: E402
from kafkalike.protocol.api_keys import (SUPPORTED_APIS, TSHARK_COMPATIBLE_APIS,  # noqa: E402
                                         api_name)
from kafkalike.protocol.frame import FrameReader  # noqa: E402


def available() -> bool:
    """True when dumpcap and tshark are installed."""
    return shutil.which("dumpcap") is not None and shutil.which("tshark") is not None


# Group protocol metadata/assignment bytes that parse as Kafka's consumer protocol (v0, no
# topics, null user data): Wireshark dissects them, and random bytes would be "malformed".
_CONSUMER_PROTOCOL_BYTES = b"\x00\x00" + b"\x00\x00\x00\x00" + b"\xff\xff\xff\xff"


def _frames(pairs: list[tuple[int, int]]) -> list[tuple[int, int, int, bytes, bytes]]:
    import test_protocol_fuzz

    saved = test_protocol_fuzz._SAMPLE["bytes"]
    test_protocol_fuzz._SAMPLE["bytes"] = _CONSUMER_PROTOCOL_BYTES
    try:
        out = []
        for i, (key, version) in enumerate(pairs):
            correlation_id = 1000 + i
            request = _sample(codec.request_class(key, version), version)
            response = _sample(codec.response_class(key, version), version)
            req = codec.encode_request(request, correlation_id=correlation_id,
                                       client_id="probe", api_version=version)
            resp = codec.encode_response(
                codec.RequestHeader(key, version, correlation_id, "probe"), response)
            out.append((key, version, correlation_id, req, resp))
        return out
    finally:
        test_protocol_fuzz._SAMPLE["bytes"] = saved


def _wait_capturing(dumpcap: subprocess.Popen) -> None:
    """Block until dumpcap says "Capturing on ..." (30 s at most, for loaded machines)."""
    assert dumpcap.stderr is not None
    ready = threading.Event()

    def watch() -> None:
        for line in iter(dumpcap.stderr.readline, b""):  # type: ignore[union-attr]
            if line.startswith(b"Capturing on"):
                ready.set()
        ready.set()  # dumpcap ended: stop waiting either way

    threading.Thread(target=watch, daemon=True).start()
    if not ready.wait(30) or dumpcap.poll() is not None:
        raise RuntimeError("dumpcap did not start capturing on lo")
    time.sleep(0.3)


def stop_capture(dumpcap: subprocess.Popen) -> None:
    """Stop a dumpcap process (SIGTERM, then SIGKILL after 10 s) and reap it."""
    if dumpcap.poll() is None:
        dumpcap.terminate()
        try:
            dumpcap.wait(10)
        except subprocess.TimeoutExpired:
            dumpcap.kill()
            dumpcap.wait()


def probe(pairs: list[tuple[int, int]]) -> dict[tuple[int, int], list[str]]:
    """{(api_key, version): problems tshark reported (empty list = decoded cleanly)}."""
    frames = _frames(pairs)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        pcap = Path(tmp) / "probe.pcapng"
        dumpcap = subprocess.Popen(["dumpcap", "-i", "lo", "-f", f"tcp port {port}",
                                    "-w", str(pcap)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_capturing(dumpcap)

            def serve() -> None:
                conn, _ = server.accept()
                reader = FrameReader()
                with conn:
                    for _key, _v, _cid, _req, resp in frames:
                        while not reader.pending_frames:
                            data = conn.recv(65536)
                            if not data:
                                return
                            reader.feed(data)
                        reader.next_frame()
                        conn.sendall(resp)

            thread = threading.Thread(target=serve, daemon=True)
            thread.start()
            with socket.create_connection(("127.0.0.1", port)) as client:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                reader = FrameReader()
                for _key, _v, _cid, req, _resp in frames:
                    client.sendall(req)
                    while not reader.pending_frames:
                        reader.feed(client.recv(65536))
                    reader.next_frame()
            thread.join(10)
            time.sleep(1)
        finally:
            stop_capture(dumpcap)
            server.close()
        if not pcap.exists() or pcap.stat().st_size == 0:
            raise RuntimeError("dumpcap recorded nothing (no capture permission on lo?)")
        out = subprocess.run(
            ["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},kafka", "-Y", "kafka",
             "-T", "fields", "-E", "separator=|", "-e", "kafka.correlation_id",
             "-e", "_ws.malformed", "-e", "_ws.expert.severity", "-e", "_ws.expert.message",
             "-e", "_ws.col.Info"],
            capture_output=True, text=True, check=True).stdout
    by_cid = {cid: (key, v) for key, v, cid, _req, _resp in frames}
    problems: dict[tuple[int, int], list[str]] = {pair: [] for pair in pairs}
    seen: dict[tuple[int, int], int] = {pair: 0 for pair in pairs}
    for line in out.splitlines():
        cid_field, malformed, severity, message, info = (line.split("|") + [""] * 5)[:5]
        cids = [int(c) for c in cid_field.split(",") if c.strip().lstrip("-").isdigit()]
        for cid in cids:
            pair = by_cid.get(cid)
            if pair is None:
                continue
            seen[pair] += 1
            severities = [int(s, 0) for s in severity.split(",") if s]
            # expert severities: 0x00200000 note, 0x00600000 warn, 0x00800000 error
            if malformed or "Unsupported" in info or any(s >= 0x00600000 for s in severities):
                problems[pair].append(f"{info.strip()} {message.strip()}".strip())
    for pair, count in seen.items():
        if count < 2:
            problems[pair].append(f"tshark decoded {count} of 2 PDUs")
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all-known", action="store_true",
                        help="probe every version with a schema, not only the served ones")
    parser.add_argument("--table", choices=["supported", "tshark"], default="supported",
                        help="which served table to probe (SUPPORTED_APIS or "
                             "TSHARK_COMPATIBLE_APIS)")
    args = parser.parse_args(argv[1:])
    if not available():
        print("dumpcap/tshark not installed (apt-get install tshark)")
        return 2
    if args.all_known:
        from kafkalike.protocol.explain import known_apis

        ranges = {k: v for k, v in known_apis().items() if k in SUPPORTED_APIS}
    elif args.table == "tshark":
        ranges = TSHARK_COMPATIBLE_APIS
    else:
        ranges = SUPPORTED_APIS
    pairs = [(k, v) for k, (lo, hi) in sorted(ranges.items()) for v in range(lo, hi + 1)]
    result = probe(pairs)
    bad = 0
    for (key, version), issues in sorted(result.items()):
        status = "ok" if not issues else "; ".join(sorted(set(issues)))[:160]
        bad += bool(issues)
        print(f"{key:3d} {api_name(key):24s} v{version:<3d} {status}")
    print(f"{len(result) - bad} of {len(result)} (api, version) pairs decoded cleanly")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

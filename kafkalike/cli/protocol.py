"""``kafkalike protocol explain FILE|-``: print a captured Kafka frame field by field.

A thin face over kafkalike.protocol.explain. FILE holds one frame, binary or hex text, with or
without its int32 size prefix ("-" reads standard input). Requests are recognised from their
header; a response needs ``--response API:VERSION`` (e.g. ``--response Fetch:12``).
Exit codes: 0 explained, 1 the codec refused the frame (the error and its Kafka error code
are printed), 2 bad usage or unreadable input.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``protocol`` with its ``explain`` sub-command to the kafkalike parser."""
    parser = subparsers.add_parser("protocol", help="Kafka wire protocol tools",
                                   epilog="example:\n"
                                          "  kafkalike protocol explain tests/data/golden/kafka-python-ApiVersions-v3.bin\n"
                                          "  xxd -p captured.bin | kafkalike protocol explain -     # hex on stdin",
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="protocol_command", metavar="SUBCOMMAND")
    explain = sub.add_parser("explain", help="decode a captured frame (hex or binary)")
    explain.add_argument("file", help="file with one frame, or - for standard input")
    explain.add_argument("--response", metavar="API:VERSION",
                         help="decode as the response to this request, e.g. Fetch:12")
    explain.set_defaults(func=_explain)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _explain(args: argparse.Namespace) -> int:
    from kafkalike.protocol.errors import ProtocolError
    from kafkalike.protocol.explain import explain_frame, load_frame, parse_api_spec

    try:
        data = sys.stdin.buffer.read() if args.file == "-" else open(args.file, "rb").read()
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        response_for = parse_api_spec(args.response) if args.response else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        print(explain_frame(load_frame(data), response_for))
    except ProtocolError as exc:
        code = exc.error_code
        print(f"error: {type(exc).__name__}: {exc} [{int(code)} {code.name.upper()}]",
              file=sys.stderr)
        return 1
    return 0

"""kafkalike.protocol: Kafka's wire protocol as a sans-IO codec (bytes in, typed messages out).

Never imports trio, never touches sockets or files. Modules:

- ``frame``: FrameReader (int32 size-prefixed frames, socket.request.max.bytes limit).
- ``codec``: request/response headers and bodies, server side (parse_request,
  encode_response[_chunks], encode_api_versions_fallback) and client side (encode_request,
  decode_response).
- ``api_keys``: ApiKey, SUPPORTED_APIS (the broker's version table), API_COMPONENTS,
  TSHARK_COMPATIBLE_APIS (the table capped at what Debian's Wireshark 4.0 dissects, without
  DescribeCluster, which it does not know), request_versions_for_ibp (inter-broker request
  versions by inter.broker.protocol.version).
- ``errors``: ErrorCode (Kafka's error codes) and the ProtocolError hierarchy.
- ``produce`` / ``fetch``: fast paths keeping record data as memoryview / file slices.
- ``leader_and_isr``, ``stop_replica``, ``update_metadata``, ``controlled_shutdown``: the
  ZooKeeper-era inter-broker RPCs, declared with ``schema`` (Kafka 3.x layouts).
- ``record_batch``: zero-copy RecordBatch v2 header view, CRC checks, in-place patching.
- ``records``: full record decoding, the four compression codecs, a batch builder.
- ``kio_reader``: a bounds-checked reader for kio entities (kio's native one aborts the
  process on hostile array lengths).
- ``explain``: a human-readable dump of a captured frame.

See docs/protocol.md for the API table and the design.
"""

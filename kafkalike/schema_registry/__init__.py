"""kafkalike.schema_registry: a schema registry speaking Confluent Schema Registry's REST API,
storing in the ``_schemas`` compacted topic of a kafkalike (or Kafka) cluster.

- ``schemas``: parsing/validating AVRO (Apache Avro + fastavro), JSON and PROTOBUF texts.
- ``compatibility``: levels NONE .. FULL_TRANSITIVE, the Avro reader/writer check and JSON Schema
  (``json_schema_compat``: Confluent's JSON Schema differences); no check for Protobuf.
- ``in_memory_cache``: ``_schemas`` record formats and the state they build (sans-IO).
- ``kafka_store``: reading and writing ``_schemas`` with kafkalike's trio client.
- ``kafka_schema_registry``: the operations, raising Confluent's errors (``errors``).
- ``app`` / ``server``: the starlette app on hypercorn's trio worker.

``kafkalike schema-registry --bootstrap-server B [--port 8081]`` runs it; see
docs/tutorials/schemas.md.
"""

"""Demos that drive a local cluster with real clients and real data (``kafkalike demo ...``)."""

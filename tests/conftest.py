"""Shared pytest fixtures. Integration fixtures (ZooKeeper ensemble, brokers) live in
tests/fixtures_*.py modules registered here as plugins."""

pytest_plugins = ["tests.fixtures_zk", "tests.fixtures_cluster"]

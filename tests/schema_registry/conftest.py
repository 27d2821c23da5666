"""The registry tests' shared module-scoped fixtures (defined in registry_helpers.py):
``registry_cluster``, a real 1-broker cluster, and ``registry``, a schema registry on it."""

from tests.schema_registry.registry_helpers import registry, registry_cluster

__all__ = ["registry", "registry_cluster"]

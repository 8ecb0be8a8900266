"""Root conftest: wires the fixture modules under fixtures/ into every suite."""

pytest_plugins = [
    "fixtures.postgres",
    "fixtures.results",
    "fixtures.bench",
    "fixtures.store",
    "fixtures.targets",
    "fixtures.property_store",
    "fixtures.hypothesis_profiles",
    "fixtures.node_packages",
    "fixtures.faults",
    "fixtures.pgbouncer",
    "fixtures.chaos",
    "fixtures.load",
    "fixtures.signal",
]

"""Registers the marks the benchmarks use, so ``aetbench bench`` needs no project configuration file."""


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: heavy run (paper-size); aetbench bench --heavy includes it")

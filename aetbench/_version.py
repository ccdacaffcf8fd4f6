"""The package version, in one place: ``pyproject.toml`` reads it (``[tool.setuptools.dynamic]``), and
``aetbench.__version__``, ``aetbench --version`` and the cache's code fingerprint use it."""
__version__ = "0.1.0"

"""Benchmarks (pytest-benchmark), shipped with the package: ``aetbench bench`` runs them from any folder
(``--heavy`` adds the paper-size ones).  In a source checkout ``python -m pytest`` also runs each once, untimed."""

"""Numbers published by Liao et al., Nature 2026 (paper protocol), for side-by-side tables.

These are *reference values shown next to ours*; nothing in aetbench computes
with them.  Source: the paper and ``paper-data/README.md``.
Keys: reference name → {(dose e/Å², element): (rate %, precision pm or None)}, or
{(dose, element, method): …} where the paper gives one number per method on the same data (the angle study).
"""
from __future__ import annotations

PUBLISHED: dict[str, dict[tuple[float, str], tuple[float, float | None]]] = {
    "liao2026/aSi208": {
        (8.0e3, "Si"): (95.67, 28.91),
        (1.6e4, "Si"): (100.0, 17.31),
        (1.6e5, "Si"): (100.0, 4.24),
    },
    "liao2026/aSiGeSn": {
        (1.6e4, "Si"): (61.28, 67.92), (1.6e4, "Ge"): (98.98, 18.27), (1.6e4, "Sn"): (99.96, 8.66),
        (1.6e5, "Si"): (75.12, 50.18), (1.6e5, "Ge"): (99.92, 9.87), (1.6e5, "Sn"): (100.0, 5.13),
    },
    "liao2026/aSi19993": {
        (8.0e3, "Si"): (92.3, 38.7), (1.6e4, "Si"): (98.2, 25.2), (1.6e5, "Si"): (99.96, 12.5),
    },
    "liao2026/CoPdPt": {
        (1.7e4, "Co"): (95.1, 29.0), (1.7e4, "Pd"): (99.0, 12.0), (1.7e4, "Pt"): (100.0, 6.0),
    },
    # the same particle with a random defocus error per projection (rates only are given)
    "liao2026/CoPdPt-defocus": {
        (1.7e4, "Co"): (90.3, None), (1.7e4, "Pd"): (98.3, None), (1.7e4, "Pt"): (99.9, None),
    },
    # the angle-refinement study on the same particle: Co with the measured angles and after refining them (the paper
    # gives Co only)
    "liao2026/CoPdPt-angles": {
        (1.7e4, "Co", "liao2026"): (87.1, None), (1.7e4, "Co", "liao2026-robust"): (94.8, None),
    },
    # the competing SIRT workflow (Busch et al.) on the same CoPdPt particle, as reported by Liao et al.
    "busch2026/CoPdPt": {
        (5.6e4, "Co"): (45.7, 98.0), (5.6e4, "Pd"): (52.7, 79.0), (5.6e4, "Pt"): (76.2, 49.0),
    },
    # silica, 49 ptychographic phase projections −72°…72°
    "liao2026/SiO2-multislice": {
        (1.6e4, "Si"): (100.0, 5.3), (1.6e4, "O"): (100.0, 7.6),
        (1.6e3, "Si"): (98.2, 9.5), (1.6e3, "O"): (96.7, 14.4),
    },
    "liao2026/SiO2-single-slice": {
        (1.6e3, "Si"): (90.8, None), (1.6e3, "O"): (77.5, None),
    },
}


def published(reference: str, dose: float, element: str, method: str | None = None):
    """Published (rate %, precision pm) or ``None``; doses match within 1 %.  A reference with per-method rows
    (keys ``(dose, element, method)``) answers only for a ``method`` it names.

    >>> published("liao2026/CoPdPt", 1.7e4, "Co")
    (95.1, 29.0)
    >>> ref = "liao2026/CoPdPt-angles"
    >>> published(ref, 1.7e4, "Co", "liao2026-robust"), published(ref, 1.7e4, "Co")
    ((94.8, None), None)
    """
    table = PUBLISHED.get(reference, {})
    for key, v in table.items():
        d, e, m = (*key, None) if len(key) == 2 else key
        if e == element and abs(d - dose) <= 0.01 * d and (m is None or m == method):
            return v
    return None

"""Readers for atomic models: extended XYZ, whitespace tables and MATLAB ``.mat`` files.

One entry point, :func:`read_model`, returns an :class:`~aetbench.types.AtomicModel`
with positions in Å in the object frame.  Formats:

* **extended / plain XYZ** (read through ASE).  Header lines may carry a ``%`` or
  ``#`` prefix (the paper's ``aSi_208atoms_GT.txt``); species columns that hold
  integer labels (``"1"``) or the non-atom label ``"x"``, which ASE rejects, are
  parsed from the ``Properties=`` header directly.
* **whitespace table**: label (symbol or integer), then x y z in Å; further
  columns are ignored; lines starting with ``%`` or ``#`` and blank lines are skipped.
* **the paper's traced models** (``temp_model`` 3×N, ``temp_atomtype``): positions
  in voxel units of the paper's tracing volume, converted by
  :func:`aetbench.io.paper.paper_model_positions` (the paper's conventions live there).
* **generic coordinate arrays** in ``.mat`` files: the float array with 3 in one
  dimension (N×3 or 3×N, Å) and a label vector of length N, in the same file or
  in ``types_path``.  MATLAB v7.3 (HDF5) files are read with h5py.

Labels
------
An element list such as ``"x,O,Si"`` maps integer labels 1, 2, 3 … to elements;
``"x"`` (:data:`aetbench.types.NON_ATOM`) marks a non-atom class, whose atoms are
dropped.  Integer labels without a list are refused (one line), unless the caller asks for
atomic numbers (``atomic_numbers=True``; ``aetbench score --labels Z``); symbols need no list.

Checks
------
A reader never guesses silently: an XYZ header that announces a different atom count than
the file holds and a 3×3 coordinate array (atoms by rows or by columns?) are errors; an empty
file is reported as empty.  :func:`model_warnings` lists suspicious content (atoms closer than
:data:`DUPLICATE_DISTANCE_A`, i.e. duplicated atoms) as one-line warnings.

Axes
----
An axes string such as ``"yx-z"`` builds output (x, y, z) from input axes:
output x = input y, output y = input x, output z = − input z.

Examples
--------
>>> parse_axes("yx-z")
((1, 0, 2), (1.0, 1.0, -1.0))
>>> parse_elements("x,O,Si")
['x', 'O', 'Si']
>>> labels_to_elements(["1", "3", "2"], ["x", "O", "Si"]).tolist()
['x', 'Si', 'O']
>>> labels_to_elements(["14", "8"], atomic_numbers=True).tolist()
['Si', 'O']
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from ..types import NON_ATOM, AtomicModel
from ..errors import AetbenchError
from .paper import PAPER_MODEL_VARIABLE, paper_model_labels, paper_model_positions, read_mat_arrays

__all__ = ["read_model", "parse_axes", "apply_axes", "parse_elements", "labels_to_elements", "read_labels",
           "model_warnings", "axes_matrix", "matrix_axes", "DUPLICATE_DISTANCE_A"]

_MAT_SUFFIXES = {".mat"}

#: two atoms closer than this [Å] are reported as duplicates (the shortest bonds in condensed matter, H–H
#: aside, are ≥ 0.96 Å (O–H); AET resolves atoms ≳ 1 Å apart)
DUPLICATE_DISTANCE_A = 0.5


# ---------------------------------------------------------------------------------------------- parsing helpers
def parse_axes(axes: str, *, what: str = "axes") -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Parse an axes string such as ``"yx-z"``.

    Parameters
    ----------
    axes : str
        Three letters x, y, z, each once, each optionally preceded by ``-`` (flip)
        or ``+``; output axis k takes the input axis named at position k.
    what : str
        Name used in error messages.

    Returns
    -------
    order : tuple of int
        Input axis index for each output axis.
    signs : tuple of float
        ±1 per output axis.
    """
    s = str(axes).replace(" ", "").replace(",", "").lower()
    tokens = re.findall(r"([+-]?)([xyz])", s)
    if "".join(a + b for a, b in tokens) != s or len(tokens) != 3 or len({b for _, b in tokens}) != 3:
        raise AetbenchError(f"{what}: {axes!r} is not an axes string; expected a permutation of x, y, z "
                            "with optional '-' flips, e.g. 'yx-z'")
    order = tuple("xyz".index(b) for _, b in tokens)
    signs = tuple(-1.0 if a == "-" else 1.0 for a, _ in tokens)
    return order, signs


def apply_axes(positions, axes: str | None, *, what: str = "axes") -> np.ndarray:
    """Permute/flip coordinates (N, 3) [Å] according to an axes string (``None`` = unchanged)."""
    pos = np.asarray(positions, dtype=float).reshape(-1, 3)
    if axes is None:
        return pos
    order, signs = parse_axes(axes, what=what)
    return pos[:, list(order)] * np.asarray(signs)


def axes_matrix(axes: str | None) -> np.ndarray:
    """3×3 signed permutation ``M`` with ``apply_axes(p, axes) == p @ M.T`` (identity for ``None``)."""
    m = np.zeros((3, 3))
    order, signs = parse_axes(axes) if axes is not None else ((0, 1, 2), (1.0, 1.0, 1.0))
    for k, (j, s) in enumerate(zip(order, signs)):
        m[k, j] = s
    return m


def matrix_axes(m) -> str:
    """Axes string of a 3×3 signed permutation matrix (inverse of :func:`axes_matrix`).

    >>> matrix_axes(axes_matrix("yx-z"))
    'yx-z'
    """
    m = np.asarray(m)
    out = []
    for k in range(3):
        j = int(np.flatnonzero(m[k])[0])
        out.append(("-" if m[k, j] < 0 else "") + "xyz"[j])
    return "".join(out)


def _chemical_symbols() -> list[str]:
    from ase.data import chemical_symbols

    return chemical_symbols


def _normalise_symbol(s: str) -> str | None:
    """Return a canonical element symbol, NON_ATOM for 'x'/'X', or None when not a symbol."""
    s = s.strip()
    if s in ("x", "X"):
        return NON_ATOM
    cand = s[:1].upper() + s[1:].lower()
    syms = _chemical_symbols()
    return cand if cand in syms[1:] else None


def parse_elements(elements, *, what: str = "elements") -> list[str] | None:
    """Parse an element list (``"x,O,Si"``, ``"Si"`` or a list of symbols).

    Returns ``None`` for ``None``; raises :class:`AetbenchError` for unknown symbols.
    """
    if elements is None:
        return None
    if isinstance(elements, str):
        items = [t for t in re.split(r"[,\s]+", elements.strip()) if t]
    else:
        items = [str(t).strip() for t in elements]
    if not items:
        raise AetbenchError(f"{what}: empty element list; expected symbols such as 'x,O,Si'")
    out = []
    for t in items:
        sym = _normalise_symbol(t)
        if sym is None:
            raise AetbenchError(f"{what}: {t!r} is not a chemical symbol (use 'x' for non-atoms), in {elements!r}")
        out.append(sym)
    return out


def _as_int_labels(arr: np.ndarray) -> np.ndarray | None:
    """Integer view of numeric labels (None when any is not an integer)."""
    try:
        f = np.asarray(arr, dtype=float)
    except (TypeError, ValueError):
        return None
    if f.size and not (np.all(np.isfinite(f)) and np.all(f == np.round(f))):
        return None
    return f.astype(np.int64)


def labels_to_elements(labels, elements=None, *, source: str = "labels", atomic_numbers: bool = False) -> np.ndarray:
    """Map labels (symbols, integer strings or integers) to element symbols.

    Parameters
    ----------
    labels : array_like, shape (N,)
        Symbols, or integers 1…K (with ``elements``) / atomic numbers (without).
    elements : list of str or str, optional
        Element list; integer label k maps to ``elements[k - 1]``.
    source : str
        File or field named in error messages.
    atomic_numbers : bool
        Without a list, read integer labels as atomic numbers; otherwise integer labels
        without a list are an error (``1`` would silently become H).

    Returns
    -------
    ndarray of str, shape (N,)
        Symbols; non-atoms carry :data:`NON_ATOM`.
    """
    elist = parse_elements(elements, what=f"{source}: element list")
    lab = np.asarray(labels).reshape(-1)
    uniq, inv = np.unique(lab.astype(str), return_inverse=True)
    syms = _chemical_symbols()
    mapped = []
    for u in uniq:
        k = _as_int_labels(np.array([u])) if re.fullmatch(r"\s*[+-]?\d+(\.0*)?\s*", u) else None
        if k is not None:
            k = int(k[0])
            if elist is not None:
                if not 1 <= k <= len(elist):
                    raise AetbenchError(f"{source}: label {k} is out of range of the element list "
                                        f"{','.join(elist)} (labels 1..{len(elist)})")
                mapped.append(elist[k - 1])
            elif not atomic_numbers:
                raise AetbenchError(f"{source}: integer labels ({', '.join(str(v) for v in _int_uniques(uniq)[:5])}) "
                                    "and no element list; give one (e.g. 'Si,Ge,Sn' maps 1, 2, 3: --model-elements/"
                                    "--truth-elements, or elements/truth_elements in a scenario) or read them as "
                                    "atomic numbers (--labels Z)")
            else:
                if not 1 <= k < len(syms):
                    raise AetbenchError(f"{source}: label {k} is not an atomic number (1..{len(syms) - 1}); "
                                        "give an element list such as 'Si,Ge,Sn' to map labels 1, 2, 3")
                mapped.append(syms[k])
        else:
            sym = _normalise_symbol(u)
            if sym is None:
                raise AetbenchError(f"{source}: label {u!r} is neither a chemical symbol nor an integer label")
            mapped.append(sym)
    return np.asarray(mapped, dtype=str)[inv] if len(mapped) else np.empty(0, dtype=str)


def _int_uniques(uniq) -> list[int]:
    out = []
    for u in uniq:
        try:
            out.append(int(float(u)))
        except ValueError:
            pass
    return sorted(set(out))


# ---------------------------------------------------------------------------------------------- text formats
def _strip_comment_prefix(line: str) -> str:
    s = line.lstrip()
    while s[:1] in ("%", "#"):
        s = s[1:].lstrip()
    return s


def _looks_like_xyz(lines: list[str]) -> bool:
    first = next((ln for ln in lines if ln.strip()), "")
    return bool(re.fullmatch(r"\d+", _strip_comment_prefix(first).strip()))


def _parse_properties(comment: str) -> tuple[int, int, int]:
    """Column of the species, first position column, total columns, from an extxyz comment line."""
    m = re.search(r"Properties=(\S+)", comment, flags=re.IGNORECASE)
    spec = m.group(1).strip("\"'") if m else "species:S:1:pos:R:3"
    parts = spec.split(":")
    if len(parts) % 3:
        raise ValueError(f"malformed Properties={spec}")
    col, species_col, pos_col = 0, None, None
    for name, _kind, n in zip(parts[0::3], parts[1::3], parts[2::3]):
        if name.lower() in ("species", "symbols", "element") and species_col is None:
            species_col = col
        elif name.lower() in ("pos", "positions") and pos_col is None:
            pos_col = col
        col += int(n)
    if species_col is None or pos_col is None:
        raise ValueError(f"Properties={spec} has no species or pos column")
    return species_col, pos_col, col


def _read_xyz(path: Path, lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
    start = next(i for i, ln in enumerate(lines) if ln.strip())
    n = int(_strip_comment_prefix(lines[start]).strip())
    if len(lines) < start + 2 + n:
        raise AetbenchError(f"{path}: XYZ header announces {n} atoms but the file holds "
                            f"{max(len(lines) - start - 2, 0)} atom lines")
    rest = [ln for ln in lines[start + 2 + n:] if ln.strip()]
    if rest and not re.fullmatch(r"\d+", _strip_comment_prefix(rest[0]).strip()):
        # more atom lines than announced (a second frame would start with its own count line)
        more = len([ln for ln in rest if len(_strip_comment_prefix(ln).split()) >= 4])
        if more:
            raise AetbenchError(f"{path}: XYZ header announces {n} atoms but the file holds {n + more} atom "
                                "lines; fix the count on the first line")
    comment = _strip_comment_prefix(lines[start + 1])
    body = lines[start + 2:start + 2 + n]
    text = f"{n}\n{comment.rstrip()}\n" + "".join(ln if ln.endswith("\n") else ln + "\n" for ln in body)
    try:  # standard files through ASE
        from ase.io import read

        atoms = read(io.StringIO(text), format="extxyz", index=0)
        return np.asarray(atoms.get_positions(), dtype=float), np.asarray(atoms.get_chemical_symbols())
    except Exception:  # noqa: BLE001 - integer or 'x' species: parse the columns ourselves
        pass
    try:
        sc, pc, _ = _parse_properties(comment)
        rows = [ln.split() for ln in body]
        labels = np.array([r[sc] for r in rows])
        pos = np.array([[float(v) for v in r[pc:pc + 3]] for r in rows], dtype=float).reshape(-1, 3)
    except (ValueError, IndexError) as exc:
        raise AetbenchError(f"{path}: not a readable (extended) XYZ file ({exc})") from None
    return pos, labels


def _read_table(path: Path, lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
    labels, pos = [], []
    for k, ln in enumerate(lines, start=1):
        s = ln.strip()
        if not s or s[0] in "%#":
            continue
        t = s.replace(",", " ").split()
        if len(t) < 4:
            raise AetbenchError(f"{path}: line {k} has {len(t)} columns; expected 'species x y z' (Å)")
        try:
            pos.append([float(t[1]), float(t[2]), float(t[3])])
        except ValueError:
            raise AetbenchError(f"{path}: line {k}: x y z must be numbers in Å, got {' '.join(t[1:4])!r}") from None
        labels.append(t[0])
    if not pos:
        raise AetbenchError(f"{path}: no atoms found (expected lines 'species x y z' in Å)")
    return np.asarray(pos, dtype=float), np.asarray(labels)


def _read_text(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        lines = path.read_text().splitlines(keepends=True)
    except UnicodeDecodeError:
        raise AetbenchError(f"{path}: unknown format (binary file that is not a .mat file); expected extxyz, "
                            "a whitespace table or a MATLAB .mat file") from None
    if _looks_like_xyz(lines):
        return _read_xyz(path, lines)
    return _read_table(path, lines)


# ---------------------------------------------------------------------------------------------- MATLAB
def _vectors(arrays: dict[str, np.ndarray], n: int, skip: str | None = None) -> dict[str, np.ndarray]:
    return {k: v.reshape(-1) for k, v in arrays.items()
            if k != skip and v.size == n and (v.ndim == 1 or (v.ndim == 2 and 1 in v.shape))}


def _pick_labels(path: Path, arrays: dict[str, np.ndarray], n: int, skip: str | None) -> np.ndarray | None:
    cands = _vectors(arrays, n, skip)
    if not cands:
        return None
    ints = {k: v for k, v in cands.items() if _as_int_labels(v) is not None}
    pool = ints or cands
    if len(pool) > 1:
        raise AetbenchError(f"{path}: several label vectors of length {n} ({', '.join(sorted(pool))}); "
                            "keep one per file")
    lab = next(iter(pool.values()))
    if _as_int_labels(lab) is None:
        raise AetbenchError(f"{path}: label vector holds non-integer values; expected integer labels")
    return _as_int_labels(lab)


def read_labels(path, n: int) -> np.ndarray:
    """Labels (N,) from a separate file: a ``.mat`` file with one vector of length ``n``, or text.

    Text files hold whitespace-separated labels (symbols or integers); ``%``/``#`` lines are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise AetbenchError(f"{path}: file not found (types file)")
    if path.suffix.lower() in _MAT_SUFFIXES:
        lab = _pick_labels(path, read_mat_arrays(path), n, None)
        if lab is None:
            raise AetbenchError(f"{path}: no label vector of length {n} (the number of atoms)")
        return lab
    try:
        toks = [t for ln in path.read_text().splitlines() if ln.strip() and ln.strip()[0] not in "%#"
                for t in ln.replace(",", " ").split()]
    except UnicodeDecodeError:
        raise AetbenchError(f"{path}: unknown format for a types file; expected .mat or text labels") from None
    if len(toks) != n:
        raise AetbenchError(f"{path}: {len(toks)} labels but the model holds {n} atoms")
    return np.asarray(toks)


def _read_mat(path: Path, pixel_size: float | None, types_path) -> tuple[np.ndarray, np.ndarray | None]:
    arrays = read_mat_arrays(path)
    pos = paper_model_positions(path, arrays, pixel_size)  # the paper's traced model (io.paper), if it is one
    if pos is not None:
        if types_path is not None:
            lab = read_labels(types_path, pos.shape[0])
        else:
            lab = paper_model_labels(path, arrays, pos.shape[0])
            if lab is None:
                lab = _pick_labels(path, arrays, pos.shape[0], PAPER_MODEL_VARIABLE)
        return pos, lab
    coords = {k: v for k, v in arrays.items() if v.ndim == 2 and 3 in v.shape and v.size > 3 and v.dtype.kind == "f"}
    if not coords:  # integer-typed coordinates as a last resort
        coords = {k: v for k, v in arrays.items() if v.ndim == 2 and 3 in v.shape and v.size > 3}
    if len(coords) != 1:
        found = ", ".join(f"{k} {v.shape}" for k, v in sorted(arrays.items())) or "none"
        raise AetbenchError(f"{path}: expected exactly one N×3 or 3×N coordinate array (Å), found {len(coords)} "
                            f"(variables: {found})")
    key, c = next(iter(coords.items()))
    c = np.asarray(c, dtype=float)
    if c.shape == (3, 3):
        raise AetbenchError(f"{path}: coordinate array {key} is 3×3: cannot tell 3 atoms by rows (N×3) from 3 atoms "
                            "by columns (3×N); write the 3 atoms as a text or XYZ file (species x y z in Å)")
    pos = c if c.shape[1] == 3 else c.T
    n = pos.shape[0]
    if types_path is not None:
        lab = read_labels(types_path, n)
    else:
        lab = _pick_labels(path, arrays, n, key)
    return pos, lab


# ---------------------------------------------------------------------------------------------- entry point
def read_model(path, *, elements: list[str] | str | None = None, axes: str | None = None,
               types_path=None, pixel_size: float | None = None, atomic_numbers: bool = False) -> AtomicModel:
    """Read an atomic model (positions in Å) from extxyz, a table or a ``.mat`` file.

    Parameters
    ----------
    path : path
        Model file (see the module docstring for the formats).
    elements : list of str or str, optional
        Element list mapping integer labels 1, 2, … (``"x,O,Si"``; ``"x"`` = non-atom).
        Without it, integer labels are an error unless ``atomic_numbers``.
    axes : str, optional
        Axis permutation/flip applied after reading, e.g. ``"yxz"`` swaps x and y.
    types_path : path, optional
        Separate file with the labels (``.mat`` vector or text), for coordinate-only files.
    pixel_size : float, optional
        Pixel size [Å] of the tracing volume; required for the paper's ``temp_model`` files.
    atomic_numbers : bool
        Read integer labels without an element list as atomic numbers (14 = Si).

    Returns
    -------
    AtomicModel
        Positions [Å] and symbols; non-atom entries (``"x"``) are dropped.

    Raises
    ------
    AetbenchError
        One-line message naming the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise AetbenchError(f"{path}: file not found")
    if not path.is_file():
        raise AetbenchError(f"{path}: not a file (a folder?); expected a model file")
    if path.stat().st_size == 0:
        raise AetbenchError(f"{path}: empty file (0 bytes); expected an atomic model")
    if path.suffix.lower() in _MAT_SUFFIXES:
        pos, lab = _read_mat(path, pixel_size, types_path)
    else:
        pos, lab = _read_text(path)
        if types_path is not None:
            lab = read_labels(types_path, pos.shape[0])
    if not np.all(np.isfinite(pos)):
        raise AetbenchError(f"{path}: coordinates contain NaN or infinite values")
    if lab is None:
        elist = parse_elements(elements, what=f"{path}: element list")
        real = [e for e in (elist or []) if e != NON_ATOM]
        if len(real) != 1:
            raise AetbenchError(f"{path}: no atom labels found; give a types file or a single element "
                                "(e.g. elements 'Si')")
        el = np.repeat(np.asarray(real), pos.shape[0])
    else:
        el = labels_to_elements(lab, elements, source=str(path), atomic_numbers=atomic_numbers)
    pos = apply_axes(pos, axes, what=f"{path}: axes")
    keep = el != NON_ATOM
    return AtomicModel(pos[keep], el[keep], name=str(path))


def model_warnings(model: AtomicModel, what: str = "model", *,
                   duplicate_distance_A: float = DUPLICATE_DISTANCE_A) -> list[str]:
    """One-line warnings about suspicious model content.

    Reports pairs of atoms closer than ``duplicate_distance_A`` [Å] (default
    :data:`DUPLICATE_DISTANCE_A`): identical or near-identical rows, which inflate the
    atom count and pair one traced atom with two truth atoms.

    >>> from aetbench.types import AtomicModel
    >>> model_warnings(AtomicModel([[0, 0, 0], [0, 0, 0], [3, 0, 0]], ["Si"] * 3), "truth")[0][:44]
    'truth: 1 pair of atoms closer than 0.5 Å (at'
    """
    from scipy.spatial import cKDTree

    pos = np.asarray(model.positions, dtype=float).reshape(-1, 3)
    if len(pos) < 2:
        return []
    pairs = cKDTree(pos).query_pairs(duplicate_distance_A, output_type="ndarray")
    if len(pairs) == 0:
        return []
    i, j = (int(v) for v in pairs[0])
    d = float(np.linalg.norm(pos[i] - pos[j]))
    n = len(pairs)
    return [f"{what}: {n} pair{'s' if n > 1 else ''} of atoms closer than {duplicate_distance_A:g} Å "
            f"(atoms {i + 1} and {j + 1} at {d:.3f} Å): duplicated atoms? they inflate the atom count"]

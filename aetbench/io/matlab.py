"""MATLAB class objects (MCOS) in v5 ``.mat`` files: a reader for their numeric properties, and a fixture writer.

Older Miao-group repositories save RESIRE results as objects of a MATLAB class (``RESIRE_reconstructor``) in v5
MAT-files; :func:`scipy.io.loadmat` returns them as opaque ``MatlabOpaque`` values without their properties.
Where the properties live (our own parser of the public v5 format, after the layout notes of the MAT-file
community; no MATLAB code):

* The variable is an ``mxOPAQUE_CLASS`` matrix: array flags, name, type system (``MCOS``), class name, and a
  ``uint32`` array ``[0xDD000000, ndims, dims…, object ids…, class id]``.
* The file's *subsystem* (the unnamed ``uint8`` variable that the header's bytes 117–124 point to; scipy's
  ``__function_workspace__``) is itself a small MAT stream: 8 bytes (version, endianness, padding) and a 1 × 1 struct
  whose field ``MCOS`` is an opaque ``FileWrapper__`` holding a cell array.  Cell 1 is the *linking metadata*
  (uint8 bytes of uint32 words): version, number of names, the offsets of its regions (8 for version ≥ 4, 6 before),
  the null-terminated names, then region 1 (classes: ``namespace, name index, 0, 0`` per class id, block 0 zeros),
  region 3 (objects: ``class id, 0, 0, saveobj id, object id, dependency id`` per object id, block 0 zeros) and
  region 4 (per object id: ``n``, then ``n`` triples ``name index, type, value``, padded to 8 bytes; block 0 is 8 zero
  bytes).  A property of type 1 is stored in cell ``3 + value`` (1-based) of the cell array.  Name indices are
  1-based into the names.

:func:`read_mcos_objects` returns ``{variable: {"__class__": name, property: value …}}`` with the numeric and char
properties (Fortran order, as :func:`scipy.io.loadmat` gives them); nested objects and other kinds are skipped.
:func:`write_mcos_fixture` writes such a file (one object with numeric properties) for the tests.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import AetbenchError
from .files import atomic_write_path

__all__ = ["read_mcos_objects", "write_mcos_fixture", "mcos_numeric_arrays"]

# MAT v5 data types and array classes
_MI = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8", 16: "u1", 17: "u2",
       18: "u4"}
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_MX_CELL, _MX_STRUCT, _MX_OBJECT, _MX_CHAR, _MX_SPARSE, _MX_OPAQUE = 1, 2, 3, 4, 5, 17
_MX_NUM = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4", 14: "i8", 15: "u8"}


class _Opaque:
    def __init__(self, name, system, cls, content):
        self.name, self.system, self.cls, self.content = name, system, cls, content


class _Reader:
    """Minimal MAT v5 element parser (numeric, char, logical, cell, struct, opaque; zlib-compressed elements)."""

    def __init__(self, order: str):
        self.o = order

    def tag(self, buf: bytes, pos: int):
        t, n = struct.unpack_from(self.o + "II", buf, pos)
        if t >> 16:  # small data element: type and size in the first word, data in the next 4 bytes
            return t & 0xFFFF, pos + 4, t >> 16, pos + 8
        return t, pos + 8, n, pos + 8 + ((n + 7) // 8) * 8

    def element(self, buf: bytes, pos: int):
        """(value, next position) of the element at ``pos``; value is an ndarray, a dict, a list or an _Opaque."""
        t, start, n, nxt = self.tag(buf, pos)
        data = buf[start:start + n]
        if t == _MI_COMPRESSED:
            return self.element(zlib.decompress(data), 0)[0], start + n
        if t == _MI_MATRIX:
            return (self.matrix(data) if n else np.zeros((0, 0))), nxt
        if t not in _MI:
            raise AetbenchError(f"MAT v5: unknown data type {t}")
        return np.frombuffer(data, dtype=np.dtype(_MI[t]).newbyteorder(self.o)), nxt

    def _sub(self, data: bytes, pos: int):
        t, start, n, nxt = self.tag(data, pos)
        return t, data[start:start + n], nxt

    def matrix(self, data: bytes):
        _, flags, p = self._sub(data, 0)
        w0 = struct.unpack_from(self.o + "I", flags, 0)[0]
        mc, logical, cplx = w0 & 0xFF, (w0 >> 9) & 1, (w0 >> 11) & 1
        if mc == _MX_OPAQUE:
            _, name, p = self._sub(data, p)
            _, system, p = self._sub(data, p)
            _, cls, p = self._sub(data, p)
            content, p = self.element(data, p)
            return _Opaque(name.decode("latin1"), system.decode("latin1"), cls.decode("latin1"), content)
        _, dims, p = self._sub(data, p)
        dims = tuple(int(d) for d in np.frombuffer(dims, dtype=np.dtype("i4").newbyteorder(self.o)))
        _, name, p = self._sub(data, p)
        count = int(np.prod(dims)) if dims else 0
        if mc == _MX_CELL:
            out = []
            for _ in range(count):
                v, p = self.element(data, p)
                out.append(v)
            return out
        if mc in (_MX_STRUCT, _MX_OBJECT):
            if mc == _MX_OBJECT:
                _, _, p = self._sub(data, p)
            _, fl, p = self._sub(data, p)
            flen = int(np.frombuffer(fl, dtype=np.dtype("i4").newbyteorder(self.o))[0])
            _, raw, p = self._sub(data, p)
            names = [raw[i:i + flen].split(b"\0")[0].decode("latin1") for i in range(0, len(raw), flen)]
            recs = []
            for _ in range(count):
                rec = {}
                for f in names:
                    rec[f], p = self.element(data, p)
                recs.append(rec)
            return recs[0] if count == 1 else recs
        if mc == _MX_SPARSE:
            return None
        if mc == _MX_CHAR:
            arr, p = self.element(data, p)
            return "".join(map(chr, np.asarray(arr).ravel()))
        if mc not in _MX_NUM:
            return None
        re, p = self.element(data, p)
        arr = np.asarray(re).astype(np.dtype(_MX_NUM[mc]))
        if cplx:
            im, p = self.element(data, p)
            arr = arr + 1j * np.asarray(im)
        arr = arr.reshape(dims, order="F")
        return arr.astype(bool) if logical else arr


def _parse_file(path: Path):
    raw = path.read_bytes()
    if len(raw) < 128:
        raise AetbenchError(f"{path}: not a MAT v5 file (shorter than its 128-byte header)")
    order = "<" if raw[126:128] == b"IM" else ">" if raw[126:128] == b"MI" else None
    if order is None:
        raise AetbenchError(f"{path}: not a MAT v5 file (no endian indicator; v7.3 files are HDF5)")
    r = _Reader(order)
    pos, out, subsystem = 128, {}, None
    while pos + 8 <= len(raw):
        t, start, n, nxt = r.tag(raw, pos)
        body = zlib.decompress(raw[start:start + n]) if t == _MI_COMPRESSED else raw[pos:nxt]
        val, _ = r.element(body, 0)
        if isinstance(val, np.ndarray) and val.dtype == np.uint8 and _var_name(r, body) == "":
            subsystem = val.tobytes()
        else:
            out[_var_name(r, body)] = val
        pos = nxt if t != _MI_COMPRESSED else start + ((n + 7) // 8) * 8
    return r, out, subsystem


def _var_name(r: _Reader, body: bytes) -> str:
    _, start, n, _ = r.tag(body, 0)
    data = body[start:start + n]
    _, _, p = r._sub(data, 0)          # flags
    t, dims, p2 = r._sub(data, p)      # dims (or, for opaque, the name)
    w0 = struct.unpack_from(r.o + "I", data, 8)[0]
    if (w0 & 0xFF) == _MX_OPAQUE:
        return dims.decode("latin1")
    _, name, _ = r._sub(data, p2)
    return name.decode("latin1")


def _linking(meta: bytes, order: str):
    u = lambda off: struct.unpack_from(order + "I", meta, off)[0]  # noqa: E731
    version, nstr = u(0), u(4)
    noff = 8 if version >= 4 else 6
    offs = [u(8 + 4 * i) for i in range(noff)]
    names, p = [], 8 + 4 * noff
    for _ in range(nstr):
        e = meta.index(b"\0", p)
        names.append(meta[p:e].decode("latin1"))
        p = e + 1
    classes = {}
    for k, q in enumerate(range(offs[0], offs[1], 16)):
        classes[k] = names[u(q + 4) - 1] if u(q + 4) else ""
    objects = {}
    for k, q in enumerate(range(offs[2], offs[3], 24)):
        objects[k] = (u(q), u(q + 16))  # class id, normal object id
    props, q, k = {}, offs[3], 0
    while q < offs[4]:
        n = u(q)
        props[k] = [(names[u(q + 4 + 12 * i) - 1], u(q + 8 + 12 * i), u(q + 12 + 12 * i)) for i in range(n)]
        q += ((4 + 12 * n + 7) // 8) * 8
        k += 1
    return classes, objects, props


def read_mcos_objects(path) -> dict[str, dict]:
    """MATLAB class objects of a v5 ``.mat`` file: ``{variable: {"__class__": …, property: value}}``.

    Raises
    ------
    AetbenchError
        Missing file, not a v5 file, or an object without the subsystem data that describes it (one line).
    """
    path = Path(path)
    if not path.is_file():
        raise AetbenchError(f"{path}: file not found")
    try:
        r, variables, subsystem = _parse_file(path)
        opaque = {k: v for k, v in variables.items() if isinstance(v, _Opaque) and v.system == "MCOS"}
        if not opaque:
            return {}
        if subsystem is None:
            raise AetbenchError(f"{path}: MATLAB objects without subsystem data (file truncated?)")
        sorder = "<" if subsystem[2:4] == b"IM" else ">"
        sr = _Reader(sorder)
        top, _ = sr.element(subsystem, 8)
        wrapper = top["MCOS"]
        cells = wrapper.content
        classes, objects, props = _linking(np.asarray(cells[0]).tobytes(), sorder)
        out = {}
        for name, op in opaque.items():
            meta = np.asarray(op.content).ravel().astype(np.int64)
            ndim = int(meta[1])
            n_obj = int(np.prod(meta[2:2 + ndim]))
            oid = int(meta[2 + ndim])  # the first object of the array
            cls_id, normal_id = objects[oid]
            rec: dict = {"__class__": classes.get(cls_id, op.cls), "__n_objects__": n_obj}
            for pname, ptype, value in props.get(normal_id, []):
                if ptype == 1:
                    v = cells[2 + value]
                    if isinstance(v, (np.ndarray, str)):
                        rec[pname] = v
            out[name] = rec
        return out
    except AetbenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed files are a user-facing problem
        raise AetbenchError(f"{path}: cannot read MATLAB class objects ({exc.__class__.__name__}: {exc})") from None


def mcos_numeric_arrays(path) -> dict[str, np.ndarray]:
    """Numeric properties of every class object of ``path`` as ``{"variable.property": array}``."""
    out = {}
    for var, rec in read_mcos_objects(path).items():
        for k, v in rec.items():
            if isinstance(v, np.ndarray) and v.dtype.kind in "uifb":
                out[f"{var}.{k}"] = v
    return out


# ------------------------------------------------------------------------------------------ fixture writer
def _el(t: int, data: bytes) -> bytes:
    return struct.pack("<II", t, len(data)) + data + b"\0" * ((-len(data)) % 8)


def _flags(mc: int) -> bytes:
    return _el(6, struct.pack("<II", mc, 0))


def _numeric(arr: np.ndarray, name: str = "") -> bytes:
    a = np.asarray(arr)
    a = a.reshape(1, -1) if a.ndim < 2 else a
    mc = {v: k for k, v in _MX_NUM.items()}[a.dtype.str[1:]]
    mi = {v: k for k, v in _MI.items() if k < 14}[a.dtype.str[1:]]
    body = (_flags(mc) + _el(5, np.asarray(a.shape, "<i4").tobytes()) + _el(1, name.encode())
            + _el(mi, np.asfortranarray(a).astype(a.dtype.newbyteorder("<")).tobytes(order="F")))
    return _el(_MI_MATRIX, body)


def _cell(items: list[bytes]) -> bytes:
    body = _flags(_MX_CELL) + _el(5, np.array([len(items), 1], "<i4").tobytes()) + _el(1, b"") + b"".join(items)
    return _el(_MI_MATRIX, body)


def _opaque(name: str, system: str, cls: str, content: bytes) -> bytes:
    body = _flags(_MX_OPAQUE) + _el(1, name.encode()) + _el(1, system.encode()) + _el(1, cls.encode()) + content
    return _el(_MI_MATRIX, body)


def write_mcos_fixture(path, variable: str, class_name: str, properties: dict[str, np.ndarray]) -> None:
    """Write a v5 MAT-file holding one MATLAB object ``variable`` of ``class_name`` with numeric ``properties``
    (the layout that :func:`read_mcos_objects` reads; metadata version 4)."""
    pnames = list(properties)
    names = [class_name, *pnames]
    head = bytearray()
    strings = b"".join(s.encode() + b"\0" for s in names)
    strings += b"\0" * ((-(40 + len(strings))) % 8)
    r1 = struct.pack("<4I", 0, 0, 0, 0) + struct.pack("<4I", 0, 1, 0, 0)              # class 1 = names[0]
    r2 = b""
    r3 = struct.pack("<6I", 0, 0, 0, 0, 0, 0) + struct.pack("<6I", 1, 0, 0, 0, 1, 1)    # object 1: class 1, normal 1
    block = struct.pack("<I", len(pnames)) + b"".join(struct.pack("<3I", 2 + i, 1, i) for i in range(len(pnames)))
    r4 = b"\0" * 8 + block + b"\0" * ((-len(block)) % 8)
    r5 = b"\0" * 8
    o1 = 40 + len(strings)
    offs = [o1, o1 + len(r1), o1 + len(r1) + len(r2), o1 + len(r1) + len(r2) + len(r3)]
    offs += [offs[3] + len(r4), offs[3] + len(r4) + len(r5), offs[3] + len(r4) + len(r5),
             offs[3] + len(r4) + len(r5)]
    head += struct.pack("<II", 4, len(names)) + struct.pack("<8I", *offs) + strings + r1 + r2 + r3 + r4 + r5
    cells = [_numeric(np.frombuffer(bytes(head), np.uint8)), _el(_MI_MATRIX, b"")]
    cells += [_numeric(np.asarray(properties[k])) for k in pnames]
    cells += [_el(_MI_MATRIX, b""), _numeric(np.zeros((2, 1), np.int32)), _el(_MI_MATRIX, b"")]
    wrapper = _opaque("", "MCOS", "FileWrapper__", _cell(cells))
    fields = _el(5, np.array([32], "<i4").tobytes()) + _el(1, b"MCOS".ljust(32, b"\0"))
    top = _el(_MI_MATRIX, _flags(_MX_STRUCT) + _el(5, np.array([1, 1], "<i4").tobytes()) + _el(1, b"") + fields
              + wrapper)
    subsystem = b"\x01\x00IM\0\0\0\0" + top
    var = _opaque(variable, "MCOS", class_name, _numeric(np.array([[0xDD000000], [2], [1], [1], [1], [1]], np.uint32)))
    ss_var = _numeric(np.frombuffer(subsystem, np.uint8))
    text = b"MATLAB 5.0 MAT-file, written by aetbench.io.matlab (test fixture)".ljust(116, b" ")
    header = text + struct.pack("<Q", 128 + len(var)) + struct.pack("<H", 0x0100) + b"IM"
    with atomic_write_path(path) as tmp:
        Path(tmp).write_bytes(header + var + ss_var)

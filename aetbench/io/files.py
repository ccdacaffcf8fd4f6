"""Atomic file writes and small path helpers.

Every output of aetbench is written to a temporary file next to its target and
renamed into place, so a crash never leaves a half-written result and a rerun
can trust whatever exists.  A temporary file is named
``.<name>.<host>-<pid>-<random>.part<suffix>``: it is removed when the write
fails (exception, Ctrl-C, SIGTERM through the CLI), and one left by a killed
process is recognised and removed by :func:`remove_stale_parts`.

Names that come from user files (scenario ``name``, ``[[input]] label``,
recipe ``name``) become file names only after :func:`check_name`, and every
output path built from them goes through :func:`safe_join`, which refuses a
path that would leave its root folder.
"""
from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from pathlib import Path

from ..errors import AetbenchError  # re-exported: the old home of the shared error

__all__ = ["atomic_write_path", "atomic_write_text", "AetbenchError", "check_name", "safe_join",
           "remove_stale_parts"]


def _file_mode() -> int:
    """The mode a plain ``open(..., "w")`` would give: 0o666 less the process umask (0644 under the usual 022)."""
    mask = os.umask(0o022)  # read the umask (the only way) and put it back at once
    os.umask(mask)
    return 0o666 & ~mask


def _host() -> str:
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname().split(".")[0])[:32] or "host"


@contextlib.contextmanager
def atomic_write_path(path):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    The temporary file is removed whenever the body fails (any exception,
    including ``KeyboardInterrupt``).  The result gets the mode a plain write
    would give (0644 under the usual umask 022), not mkstemp's private 0600.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_write_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (d / "a.txt").read_text(), sorted(p.name for p in d.iterdir())
    ('hello', ['a.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_host()}-{os.getpid()}-", suffix=".part" + path.suffix,
                               dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with contextlib.suppress(OSError):  # mkstemp makes 0600 files; outputs are shared like any other file
            os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_write_path(path) as tmp:
        tmp.write_text(text)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_parts(folder, max_age_s: float = 86400.0) -> list[Path]:
    """Remove the ``.part`` files that killed writers left in ``folder`` (not recursive).

    A part file is stale when it was written on this host by a process that no
    longer runs, or when it is older than ``max_age_s`` seconds (writers on
    other hosts of a shared cache).  Parts of live writers are left alone.

    Returns
    -------
    list of Path
        The files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    host, removed, now = _host(), [], time.time()
    for p in folder.glob(".*.part*"):
        stale = False
        tag = p.name.rsplit(".part", 1)[0].rsplit(".", 1)[-1]  # "<host>-<pid>-<random>"
        bits = tag.rsplit("-", 2)
        if len(bits) == 3 and bits[0] == host and bits[1].isdigit():
            stale = not _pid_alive(int(bits[1]))
        try:
            stale = stale or now - p.stat().st_mtime > max_age_s
            if stale:
                p.unlink()
                removed.append(p)
        except OSError:  # gone already (another process cleaned it), or not ours to remove
            pass
    return removed


def check_name(value: str, what: str) -> str:
    """Return ``value`` if it can serve as one file-name component, else raise :class:`AetbenchError`.

    Refused: empty names, path separators (``/``, ``\\``), ``..``, a leading
    ``.``, absolute paths and control characters.  ``what`` names the file and
    field for the one-line message (e.g. ``"quick.toml: name"``).

    Examples
    --------
    >>> check_name("aSi208-v2", "x: name")
    'aSi208-v2'
    >>> try:
    ...     check_name("../etc", "x.toml: name")
    ... except AetbenchError as e:
    ...     print(e)
    x.toml: name: expected a plain name (no path separator, '..', leading '.' or control character), got '../etc'
    """
    bad = (not isinstance(value, str) or not value or "/" in value or "\\" in value or ".." in value
           or value.startswith(".") or os.path.isabs(value) or any(ord(c) < 32 or ord(c) == 127 for c in value)
           or (os.sep in value) or (os.altsep is not None and os.altsep in value))
    if bad:
        raise AetbenchError(f"{what}: expected a plain name (no path separator, '..', leading '.' or control "
                            f"character), got {value!r}")
    return value


def safe_join(root, *parts) -> Path:
    """``root / parts…`` resolved, refused with :class:`AetbenchError` unless it stays inside ``root``.

    Examples
    --------
    >>> safe_join("/tmp/r", "models", "a.xyz").as_posix().endswith("/r/models/a.xyz")
    True
    >>> try:
    ...     safe_join("/tmp/r", "models", "../../x")
    ... except AetbenchError as e:
    ...     print(e)
    output path models/../../x leaves its folder /tmp/r
    """
    base = Path(root).resolve()
    target = base.joinpath(*parts).resolve()
    if target != base and base not in target.parents:
        rel = "/".join(str(p) for p in parts)
        raise AetbenchError(f"output path {rel} leaves its folder {Path(root)}")
    return target

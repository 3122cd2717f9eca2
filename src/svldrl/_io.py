"""Atomic file writes: a crash or a kill never leaves a half-written result behind.

Everything is first written to a temporary file in the destination folder, flushed, then moved
into place with ``os.replace`` (atomic on POSIX and Windows within one file system). The file
then gets the mode an ordinary ``open`` would give it (0666 less the umask): ``mkstemp`` makes
its files 0600, which would hide a shared runs folder from colleagues.

A process killed between the two steps leaves its temporary (``.<name>.<random>.tmp<suffix>``);
``remove_stale_temporaries`` deletes them when a run is resumed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TEMPORARY_MARK = ".tmp"
"""Part of every temporary name ``atomic_path`` makes (after a leading dot)."""


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux: /proc/self/status).

    Elsewhere ``os.umask`` can only be read by setting it, so it is set and put back at once.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def default_file_mode() -> int:
    """0666 less the process umask: the mode ``open(path, "w")`` would give a new file."""
    return 0o666 & ~current_umask()


@contextmanager
def atomic_path(path: str | Path, *, set_mode: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it into place, on error delete it.

    The temporary name keeps the destination's suffixes (``.nii.gz`` stays ``.nii.gz``) so writers
    that infer the format from the name still work. ``set_mode=False`` keeps whatever mode the
    file at the temporary path has (a hard link must not change its source's mode).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f"{TEMPORARY_MARK}{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if set_mode:
            os.chmod(tmp_path, default_file_mode())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def is_stale_temporary(path: Path) -> bool:
    """Whether ``path`` is a temporary ``atomic_path`` left behind (``.<name>.<random>.tmp...``)."""
    return path.is_file() and path.name.startswith(".") and TEMPORARY_MARK in path.name[1:]


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporaries a killed process left anywhere under ``folder``; returns them.

    Only safe while no other process writes into ``folder`` (a run folder is claimed by one
    process at a time).
    """
    removed = [p for p in Path(folder).rglob(f".*{TEMPORARY_MARK}*") if is_stale_temporary(p)]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def atomic_write(path: str | Path, write: Callable[[IO[Any]], None], mode: str = "w") -> None:
    """Open a temporary file, let ``write`` fill it, fsync, then move it to ``path``."""
    with atomic_path(path) as tmp, open(tmp, mode) as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text))


def write_json(path: str | Path, data: Any) -> None:
    atomic_write(path, lambda fh: json.dump(data, fh, indent=2, sort_keys=False, default=_json_default))


def _json_default(obj: Any) -> Any:
    """numpy scalars/arrays and paths in JSON without surprises."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

"""Per-process scratch directories for staged remote files, removed even after a SIGKILL.

A worker that stages a remote object (a TFRecord file to read, a task's output before its
upload) puts it in ``<tmp>/sparktf-<kind>-<pid>/``, where ``<tmp>`` is ``SPARKTF_SCRATCH_DIR``
or the system temporary directory, and removes the file when done (in a ``finally``). A
process killed with SIGKILL cannot clean up; so whenever a process creates its own scratch
directory it removes those of processes on the same host that no longer exist.

Examples
--------
>>> import os
>>> with scratch_file("doctest", ".bin") as path:
...     _ = open(path, "wb").write(b"x")
...     there = os.path.exists(path)
>>> there, os.path.exists(path)
(True, False)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

_PREFIX = "sparktf-"
_MINE: dict[tuple[str, str, int], str] = {}


def root() -> str:
    """Where scratch directories go: ``SPARKTF_SCRATCH_DIR`` or the temporary directory."""
    return os.environ.get("SPARKTF_SCRATCH_DIR") or tempfile.gettempdir()


def alive(pid: int) -> bool:
    """Whether process ``pid`` is running (on this host)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_dead(kind: str) -> list[str]:
    """Remove the ``kind`` scratch directories of processes that are gone; their paths."""
    removed = []
    base, head = root(), f"{_PREFIX}{kind}-"
    with contextlib.suppress(OSError):
        for name in os.listdir(base):
            pid = name[len(head):]
            if name.startswith(head) and pid.isdigit() and not alive(int(pid)):
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)
                removed.append(os.path.join(base, name))
    return removed


def own_dir(kind: str) -> str:
    """This process's ``kind`` scratch directory (created, after cleaning dead ones)."""
    key = (root(), kind, os.getpid())
    path = _MINE.get(key)
    if path is None or not os.path.isdir(path):
        clean_dead(kind)
        path = os.path.join(root(), f"{_PREFIX}{kind}-{os.getpid()}")
        os.makedirs(path, exist_ok=True)
        _MINE[key] = path
    return path


@contextlib.contextmanager
def scratch_file(kind: str, suffix: str = "") -> Iterator[str]:
    """A fresh file path in this process's scratch directory, removed on exit."""
    handle, path = tempfile.mkstemp(suffix=suffix, dir=own_dir(kind))
    os.close(handle)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)

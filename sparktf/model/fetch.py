"""Remote SavedModels: one local copy per host, keyed by URL and object identity.

TensorFlow 2.21 cannot open ``s3://`` or ``hdfs://``, so a SavedModel given as a URL is copied
to a local cache directory first, once per host (driver and each worker host):

- the copy's name is a hash of the URL and of every object's relative name, size and
  modification time (pyarrow exposes no etag), so a rewritten model gets a new copy and an
  unchanged one is reused by every process on the host;
- a process downloads into a private temporary directory next to the cache entry, checks
  that every listed object arrived with its size, writes ``.sparktf-complete`` (the listing),
  and renames the directory into place: no process ever loads a half-written copy; an
  exclusive ``fcntl.flock`` on ``<entry>.lock`` makes the other processes of the host wait
  for that copy instead of downloading it again;
- the cache lives in ``SPARKTF_MODEL_CACHE_DIR`` (default ``<tmp>/sparktf-models``) and keeps
  the ``SPARKTF_MODEL_CACHE_KEEP`` (default 3) most recently used models; older ones are
  removed when a new one arrives, unless a process is fetching them.

Examples
--------
>>> local_copy("mnist_export")  # a local path is returned as it is
'mnist_export'
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator

from sparktf import fs
from sparktf.errors import ModelError, StorageError
from sparktf.scratch import alive

log = logging.getLogger(__name__)
COMPLETE = ".sparktf-complete"
DEFAULT_KEEP = 3


def cache_root() -> str:
    """The model cache directory of this host (created)."""
    root = os.environ.get("SPARKTF_MODEL_CACHE_DIR") or os.path.join(
        tempfile.gettempdir(), "sparktf-models")
    os.makedirs(root, exist_ok=True)
    return root


CONVERTED = "converted"


def converted_root() -> str:
    """Where models made on this machine are cached (Keras exports, MLflow downloads),
    inside the model cache (created)."""
    root = os.path.join(cache_root(), CONVERTED)
    os.makedirs(root, exist_ok=True)
    return root


def _keep() -> int:
    try:
        return max(1, int(os.environ.get("SPARKTF_MODEL_CACHE_KEEP", DEFAULT_KEEP)))
    except ValueError:
        return DEFAULT_KEEP


def listing(url: str) -> dict[str, tuple[int, int]]:
    """``{relative name: (size, mtime in ns)}`` of the objects of the SavedModel at ``url``, or a
    :class:`ModelError` when there is none."""
    try:
        found = {name: item for name, item in fs.walk(url)}
    except StorageError as exc:
        raise ModelError(f"SavedModel directory {url!r}: {exc}") from None
    if not found:
        raise ModelError(f"SavedModel directory {url!r} does not exist (no objects under it)")
    if not {"saved_model.pb", "saved_model.pbtxt"} & set(found):
        names = ", ".join(sorted(found)[:20])
        raise ModelError(f"{url!r} is not a SavedModel directory: it has no saved_model.pb or "
                         f"saved_model.pbtxt (it holds: {names})")
    return {name: (int(item.size), item.mtime_ns or 0) for name, item in found.items()}


def local_copy(export_dir: str | os.PathLike[str]) -> str:
    """A local directory holding the SavedModel ``export_dir``: the path itself when local,
    else this host's cached copy of the remote one (fetched when absent or changed)."""
    text = os.fspath(export_dir)
    if not fs.is_remote(text):
        return fs.local_path(text)
    objects = listing(text)
    identity = json.dumps([fs.parse(text).scheme, fs.parse(text).path, sorted(objects.items())])
    key = hashlib.sha256(identity.encode()).hexdigest()[:24]
    root = cache_root()
    target = os.path.join(root, key)
    with locked(os.path.join(root, f"{key}.lock")):
        fetched = not _complete(target, objects)
        if fetched:
            _fetch(text, objects, root, target)
        os.utime(target)  # most recently used
    if fetched:  # old copies go when a new one arrives, not on every task's call
        prune(root, current=key)
    return target


def _complete(target: str, objects: dict[str, tuple[int, int]]) -> bool:
    """Whether ``target`` is a finished copy of ``objects``, every file of its size."""
    try:
        with open(os.path.join(target, COMPLETE), encoding="utf-8") as handle:
            recorded = json.load(handle)
    except (OSError, ValueError):
        return False
    if recorded != {name: size for name, (size, _) in objects.items()}:
        return False
    paths = {os.path.join(target, *n.split("/")): s for n, s in recorded.items()}
    return all(os.path.isfile(p) and os.path.getsize(p) == s for p, s in paths.items())


def _fetch(url: str, objects: dict[str, tuple[int, int]], root: str, target: str) -> None:
    """Download into a private directory, check it, and rename it into place."""
    log.info("fetching SavedModel %s (%d objects) into %s", url, len(objects), target)
    private = tempfile.mkdtemp(prefix=f".part-{os.getpid()}-", dir=root)
    try:
        for name, (size, _) in objects.items():
            local = os.path.join(private, *name.split("/"))
            os.makedirs(os.path.dirname(local), exist_ok=True)
            got = fs.download(fs.child(url, name), local)
            if got != size:
                raise ModelError(f"SavedModel {url!r}: {name} arrived with {got} of "
                                 f"{size} bytes (changed while it was fetched?)")
        with open(os.path.join(private, COMPLETE), "w", encoding="utf-8") as handle:
            json.dump({name: size for name, (size, _) in objects.items()}, handle)
        if os.path.exists(target):  # an incomplete copy left by a killed process
            shutil.rmtree(target)
        os.rename(private, target)
    except OSError as exc:
        raise ModelError(f"cannot fetch SavedModel {url!r}: {exc}") from None
    finally:
        shutil.rmtree(private, ignore_errors=True)


@contextlib.contextmanager
def locked(path: str, *, blocking: bool = True) -> Iterator[bool]:
    """An exclusive ``flock`` on ``path`` (created) while the block runs; with
    ``blocking=False``, the block gets False instead of waiting."""
    with open(path, "a+") as handle:
        flags = fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(handle, flags)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prune(root: str, *, keep: int | None = None, current: str) -> None:
    """Remove all but the ``keep`` (default ``SPARKTF_MODEL_CACHE_KEEP``) most recently used
    copies (never ``current``, never one being fetched), and private directories of
    processes that died mid-download."""
    keep = _keep() if keep is None else keep
    entries = []
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if name.startswith(".part-"):
            pid = name.split("-")[1]
            if pid.isdigit() and not alive(int(pid)):
                shutil.rmtree(path, ignore_errors=True)
        elif os.path.isdir(path) and name not in (current, CONVERTED):
            entries.append((os.path.getmtime(path), name))
    for _, name in sorted(entries, reverse=True)[max(keep - 1, 0):]:
        with locked(os.path.join(root, f"{name}.lock"), blocking=False) as mine:
            if mine:  # the (empty) lock file stays: another process may hold it open
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)


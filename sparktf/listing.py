"""One listing of a scan's inputs: the data files with their sizes, their partition values,
and which of them may be read in splits. Runs on the driver (or a Spark Connect server's
task, or the data source's planning worker), before any file is opened.

As Ray Data's file datasources do: resolve the paths, list them once with sizes, discover and
prune partitions, then plan tasks (:mod:`sparktf.planning`). A directory whose ``_SUCCESS``
is a sparktf manifest gives exactly the files it lists, with the sizes it records.

Examples
--------
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> for d in ("day=1/kind=a", "day=2/kind=b"):
...     (root / d).mkdir(parents=True)
...     _ = (root / d / "part-0.tfrecord").write_bytes(b"")
>>> found = list_inputs(str(root))
>>> found.spec.columns, found.spec.values
((('day', 'int'), ('kind', 'string')), (('1', 'a'), ('2', 'b')))
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from sparktf import fs, manifest
from sparktf.errors import TFRecordError
from sparktf.partitions import PartitionSpec, discover
from sparktf.planning import FileInfo
from sparktf.tfrecord.framing import GZIP_MAGIC

_COMPRESSED_NAMES = (".gz", ".gzip", ".zlib", ".z")
#: Under ``compression=auto`` a file smaller than this is not split (a task holds at least
#: the open cost): no need to open it to look for gzip's magic bytes.
_SNIFF_FROM = 1 << 20


@dataclass(frozen=True)
class Listing:
    """The data files of a scan and the partition directories they lie in."""

    files: tuple[FileInfo, ...]
    spec: PartitionSpec = PartitionSpec()

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.files]

    def pruned(self, keep: Callable[[int], bool]) -> Listing:
        """The files of the partition rows ``keep`` accepts."""
        return replace(self, files=tuple(f for f in self.files if keep(f.partition)))


def list_inputs(paths: str | Iterable[str], *, base_path: str | None = None,
                compression: str = "auto", hint: dict[str, str] | None = None) -> Listing:
    """List the data files of ``paths`` (files, directories, globs; local or URLs).

    ``base_path``: the table's root, above the ``key=value`` directories (Spark's
    ``basePath``); by default each input directory (a file's own folder). ``hint``: Spark
    type names of columns a schema hint gives, partition columns included.
    """
    items = [paths] if isinstance(paths, str) else [str(p) for p in paths]
    if not items:
        raise TFRecordError("no input path given")
    for raw in items:
        fs.parse(raw)  # every path is checked before anything is listed
    base = _base(base_path)
    infos: list[tuple[str, int, bool]] = []
    dirs: list[tuple[str, ...]] = []
    for raw in items:
        remote = fs.is_remote(raw)
        for path, size, root in _files_of(raw):
            if base is not None:
                where = path if remote else os.path.abspath(path)
                if not (where == base or where.startswith(base.rstrip("/") + "/")):
                    raise TFRecordError(f"input {path} is not under basePath {base_path}")
                path_dirs = _dirs_below(base, where)
            else:
                path_dirs = _dirs_below(root, path)
            dirs.append(path_dirs)
            infos.append((path, size, not remote and _splittable(path, size, compression)))
    spec, rows = discover(dirs, hint=hint, shown=[p for p, _, _ in infos])
    return Listing(tuple(FileInfo(path, size, splittable, row)
                         for (path, size, splittable), row in zip(infos, rows, strict=True)),
                   spec)


def _files_of(raw: str) -> list[tuple[str, int, str]]:
    """``(path, size, root)`` of the data files of one input path."""
    entries = None if glob.has_magic(raw) else manifest.read(raw)
    if entries is not None:
        files = manifest.files(raw, entries)
        sizes = {e.name: e.size for e in entries}
        root = raw.rstrip("/")
        found = [(f, int(sizes.get(_relative(root, f), 0) or 0), root) for f in files]
    else:
        found = fs.expand_sized(raw)
    if not found:
        if fs.is_remote(raw):
            fs.check_container(raw)  # a missing bucket says so
        empty = entries is not None or (not glob.has_magic(raw) and fs.exists(raw))
        what = ("holds no data files (names starting with '_' or '.' are skipped)" if empty
                else "matches nothing")
        raise TFRecordError(f"input path {raw}: {what}")
    return found


def _base(base_path: str | None) -> str | None:
    if base_path is None:
        return None
    location = fs.parse(base_path)
    return location.path if location.is_local else base_path.rstrip("/")


def _relative(root: str, path: str) -> str:
    return path[len(root):].lstrip("/")


def _dirs_below(root: str, path: str) -> tuple[str, ...]:
    """The directory names between ``root`` and the file ``path`` (both as listed: the
    same form of path)."""
    rest = path[len(root):].strip("/") if path.startswith(root) else ""
    return tuple(rest.split("/")[:-1]) if rest else ()


def _splittable(path: str, size: int, compression: str) -> bool:
    """Whether the local file ``path`` may be read in byte ranges: uncompressed (a remote
    one is staged whole by each task that reads it, so it is read whole)."""
    if compression in ("gzip", "zlib"):
        return False
    if compression == "none":
        return True
    if size < _SNIFF_FROM or path.lower().endswith(_COMPRESSED_NAMES):
        return False
    with open(fs.local_path(path), "rb") as handle:
        return handle.read(2) != GZIP_MAGIC


def sample_across(listing: Listing, max_files: int = 32) -> list[str]:
    """Up to ``max_files`` files for schema inference, spread over the partition directories
    first (one file of each, in turn; directories evenly spread when there are more of
    them), and evenly over each directory's files.

    Examples
    --------
    >>> spec = PartitionSpec((("d", "int"),), (("1",), ("2",)))
    >>> files = [FileInfo(f"d={d}/{i}", 1, partition=d - 1) for d in (1, 2) for i in range(4)]
    >>> sample_across(Listing(tuple(files), spec), 3)
    ['d=1/0', 'd=2/0', 'd=1/2']
    """
    from sparktf.tfrecord.infer import sample_files

    rows: dict[int, list[str]] = {}
    for f in listing.files:
        rows.setdefault(f.partition, []).append(f.path)
    groups = sample_files(list(rows.values()), max_files)  # more directories than files
    spread = [sample_files(paths, max_files) for paths in groups]
    picked: list[str] = []
    for turn in range(max((len(s) for s in spread), default=0)):
        picked += [s[turn] for s in spread if turn < len(s)]
    return picked[:max_files]

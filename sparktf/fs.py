"""Paths and filesystems: the one place that turns a path or URL into bytes.

Every path sparktf takes goes through :func:`parse`: a local path (relative or absolute),
``file:`` and ``file://``, ``s3://`` (``s3a://`` and ``s3n://`` name the same store),
``gs://`` (``gcs://``), ``abfs://``/``abfss://`` and ``hdfs://``. Remote stores are reached
through :mod:`pyarrow.fs` (``FileSystem.from_uri``, which takes credentials from each store's
standard chain and the S3 endpoint from ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``).
A path with a scheme is never taken as a local relative path: an unknown scheme or a
malformed URL is a :class:`~sparktf.errors.StorageError` naming it and the accepted schemes.

Messages always show the URL as the user wrote it (``s3a://...`` stays ``s3a://...``).
Nothing here imports Spark or TensorFlow: it runs on the driver and in workers alike.

Examples
--------
>>> parse("s3a://bucket/data/train").path
'bucket/data/train'
>>> parse("s3a://bucket/data/train").scheme
's3'
>>> is_remote("data/train"), is_remote("file:///data/train"), is_remote("gs://b/x")
(False, False, True)
>>> child("s3a://bucket/out", "_SUCCESS")
's3a://bucket/out/_SUCCESS'
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from sparktf.errors import StorageError

# the scheme a user may write -> the store it names
SCHEMES = {
    "file": "file", "s3": "s3", "s3a": "s3", "s3n": "s3", "gs": "gs", "gcs": "gs",
    "abfs": "abfs", "abfss": "abfs", "hdfs": "hdfs",
}
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):(.*)$", re.S)
_NEEDS_AUTHORITY = ("s3", "gs", "abfs")  # bucket or container@account


@dataclass(frozen=True)
class Location:
    """A parsed path: as written (``url``), the store (``scheme``), its bucket, container or
    namenode (``authority``) and the path a :mod:`pyarrow.fs` filesystem of that store takes
    (``path``; an absolute OS path for local files)."""

    url: str
    scheme: str
    authority: str
    path: str
    written_scheme: str = "file"

    @property
    def is_local(self) -> bool:
        return self.scheme == "file"

    def filesystem(self) -> Any:
        """The (cached) ``pyarrow.fs.FileSystem`` of this location's store."""
        return _filesystem(self.scheme, self.authority)

    def __str__(self) -> str:
        return self.url


def parse(url: str | os.PathLike[str]) -> Location:
    """Parse a path or URL, or raise :class:`~sparktf.errors.StorageError`.

    Examples
    --------
    >>> parse("file:///tmp/x").path
    '/tmp/x'
    >>> parse("hdfs://nn:8020/data").authority
    'nn:8020'
    >>> parse("ftp://host/x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sparktf.errors.StorageError: ftp://host/x: unknown URL scheme 'ftp'; accepted: a local ...
    >>> parse("s3:/bucket/x")
    Traceback (most recent call last):
    ...
    sparktf.errors.StorageError: s3:/bucket/x: malformed URL: expected s3://<bucket>/<path>
    """
    text = os.fspath(url)
    if not isinstance(text, str) or not text:
        raise StorageError(f"expected a path or URL, found {url!r}")
    match = _URL.match(text)
    if match is None or len(match.group(1)) == 1:  # no scheme (or a drive letter)
        return Location(text, "file", "", os.path.abspath(os.path.expanduser(text)))
    written, rest = match.group(1).lower(), match.group(2)
    if written == "file":
        local = rest[2:] if rest.startswith("//") else rest
        if not local.startswith("/"):
            raise StorageError(f"{text}: malformed URL: expected file:///<absolute path>")
        return Location(text, "file", "", os.path.normpath(local), "file")
    if not rest.startswith("/"):
        return Location(text, "file", "", os.path.abspath(text))  # 'a:b' is a relative name
    scheme = SCHEMES.get(written)
    if scheme is None:
        raise StorageError(f"{text}: unknown URL scheme {written!r}; accepted: {accepted()}")
    if not rest.startswith("//"):
        raise StorageError(f"{text}: malformed URL: expected {written}://"
                           f"{'<bucket>' if scheme != 'hdfs' else '<namenode>'}/<path>")
    authority, _, key = rest[2:].partition("/")
    if scheme in _NEEDS_AUTHORITY and not authority:
        raise StorageError(f"{text}: malformed URL: no bucket or container after {written}://")
    if "?" in key or "#" in key or "?" in authority:
        raise StorageError(f"{text}: malformed URL: query strings are not supported; "
                           "options come from the environment")
    key = "/".join(p for p in key.split("/") if p)
    if scheme == "hdfs":
        path = "/" + key
    elif scheme == "abfs":
        path = "/".join(p for p in (authority.split("@")[0], key) if p)
    else:
        path = "/".join(p for p in (authority, key) if p)
    return Location(text, scheme, authority, path, written)


def accepted() -> str:
    """The accepted schemes, for messages."""
    return "a local path, file://, s3:// (s3a://, s3n://), gs://, abfs://, abfss://, hdfs://"


def is_remote(url: str | os.PathLike[str]) -> bool:
    """Whether ``url`` names something other than a local file (it must parse)."""
    return not parse(url).is_local


def local_path(url: str | os.PathLike[str]) -> str:
    """The OS path of a local path or ``file:`` URL (as given when it has no scheme).

    Examples
    --------
    >>> local_path("file:///tmp/a"), local_path("rel/b")
    ('/tmp/a', 'rel/b')
    """
    loc = parse(url)
    if not loc.is_local:
        raise StorageError(f"{loc.url}: expected a local path")
    return loc.path if loc.url.lower().startswith("file:") else os.fspath(url)


def child(url: str, name: str) -> str:
    """``name`` (relative, ``/``-separated) inside the directory ``url``, in the same form.

    Examples
    --------
    >>> child("gs://b/dir/", "a/part-0")
    'gs://b/dir/a/part-0'
    >>> child("out", "_SUCCESS")
    'out/_SUCCESS'
    """
    loc = parse(url)
    if loc.is_local and not loc.url.lower().startswith("file:"):
        return os.path.join(url, *name.split("/"))
    return url.rstrip("/") + "/" + name.lstrip("/")


# -- filesystem objects -----------------------------------------------------------------------

_FS_CACHE: OrderedDict[tuple[str, ...], Any] = OrderedDict()
_FS_LOCK = threading.Lock()
FS_CACHE_SIZE = 16
"""Filesystem objects kept per process, keyed by store, bucket/authority and the endpoint
variables in effect (a changed ``AWS_ENDPOINT_URL`` gets a new object); least recently used
ones are dropped. They hold connections and credentials providers, never data."""
_ENDPOINT_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "SPARKTF_S3_MAX_ATTEMPTS",
                  "SPARKTF_S3_REQUEST_TIMEOUT")


def _filesystem(scheme: str, authority: str) -> Any:
    import pyarrow.fs as pafs

    key = (scheme, authority, *(os.environ.get(v, "") for v in _ENDPOINT_VARS))
    with _FS_LOCK:
        found = _FS_CACHE.get(key)
        if found is not None:
            _FS_CACHE.move_to_end(key)
            return found
    if scheme == "file":
        made = pafs.LocalFileSystem()
    else:
        uri = f"{scheme}://{authority}/"
        try:
            if scheme == "s3":
                from sparktf.stores import s3_filesystem

                made = s3_filesystem(authority)  # retries and timeouts (sparktf.stores)
            else:
                made, _ = pafs.FileSystem.from_uri(uri)
        except Exception as exc:  # pyarrow raises ArrowInvalid/OSError/ImportError
            raise StorageError(f"cannot open the {scheme}:// store {authority!r}: "
                               f"{_first_line(exc)}") from None
    with _FS_LOCK:
        _FS_CACHE[key] = made
        while len(_FS_CACHE) > FS_CACHE_SIZE:
            _FS_CACHE.popitem(last=False)
    return made


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# -- metadata and listing -----------------------------------------------------------------------


def info(url: str) -> Any:
    """The ``pyarrow.fs.FileInfo`` of ``url`` (type ``NotFound`` when missing)."""
    loc = parse(url)
    try:
        return loc.filesystem().get_file_info(loc.path)
    except OSError as exc:
        raise StorageError(f"{loc.url}: {_first_line(exc)}") from None


def check_container(url: str) -> None:
    """Raise :class:`StorageError` when the bucket or container of ``url`` does not exist
    (or these credentials cannot see it): before a write, where S3 would only say so when
    the first upload fails."""
    import pyarrow.fs as pafs

    loc = parse(url)
    if loc.scheme not in _NEEDS_AUTHORITY:
        return
    root = loc.path.split("/", 1)[0]
    if info(url_of(loc, root)).type == pafs.FileType.NotFound:
        kind = "container" if loc.scheme == "abfs" else "bucket"
        raise StorageError(f"{loc.url}: the {kind} {root!r} does not exist (or these "
                           "credentials cannot see it)")


def exists(url: str) -> bool:
    """Whether a file or directory is at ``url``."""
    import pyarrow.fs as pafs

    return info(url).type != pafs.FileType.NotFound


def size(url: str) -> int:
    """The size of the file at ``url`` in bytes."""
    loc = parse(url)
    if loc.is_local:
        return os.path.getsize(loc.path)
    found = info(url)
    if found.size is None:
        raise FileNotFoundError(f"{url}: no such file")
    return int(found.size)


def walk(url: str) -> Iterator[tuple[str, Any]]:
    """``(relative name, FileInfo)`` of every file under the directory ``url`` (recursive;
    nothing when it does not exist)."""
    import pyarrow.fs as pafs

    loc = parse(url)
    selector = pafs.FileSelector(loc.path, recursive=True, allow_not_found=True)
    try:
        found = loc.filesystem().get_file_info(selector)
    except OSError as exc:
        raise StorageError(f"{loc.url}: cannot list: {_first_line(exc)}") from None
    base = loc.path.rstrip("/") + "/"
    for item in found:
        if item.type == pafs.FileType.File and item.path.startswith(base):
            yield item.path[len(base):], item


def entries(url: str) -> list[str]:
    """Names directly inside the directory ``url``; ``[url]`` when it is a file; ``[]`` when
    nothing is there."""
    import pyarrow.fs as pafs

    loc = parse(url)
    found = info(url)
    if found.type == pafs.FileType.NotFound:
        return []
    if found.type == pafs.FileType.File:
        return [loc.url]
    selector = pafs.FileSelector(loc.path, recursive=False, allow_not_found=True)
    return sorted(i.base_name for i in loc.filesystem().get_file_info(selector))


def is_hidden(name: str) -> bool:
    """Names skipped in a data directory: ``_SUCCESS``, ``.crc`` files, ``_temporary`` ..."""
    return name.startswith((".", "_")) or name.endswith(".crc")


def expand(url: str) -> list[str]:
    """The data files of ``url``: itself when a file, else every file under it whose path
    has no hidden part, sorted; globs (``*``, ``?``, ``[..]``) match within one path part."""
    return [path for path, _, _ in expand_sized(url)]


def expand_sized(url: str) -> list[tuple[str, int, str]]:
    """:func:`expand` with each file's size and its root: the file or directory the glob
    (or ``url`` itself) matched, below which partition directories are looked for (one
    listing: sizes come with it)."""
    loc = parse(url)
    if loc.is_local:
        path = local_path(url)
        matches = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
        return [found for m in matches for found in _expand_local(m)]
    if glob.has_magic(loc.path):
        return [f for m in _glob_remote(loc) for f in _expand_remote(m)]
    return _expand_remote(url)


def _expand_local(path: str) -> list[tuple[str, int, str]]:
    try:
        found = os.stat(path)
    except OSError:
        return []
    if not os.path.isdir(path):
        return [(path, found.st_size, os.path.dirname(path))]
    out: list[tuple[str, int, str]] = []
    stack = [path]
    while stack:
        with os.scandir(stack.pop()) as scan:
            for entry in scan:
                if is_hidden(entry.name):
                    continue
                if entry.is_dir():
                    stack.append(entry.path)
                else:
                    out.append((entry.path, entry.stat().st_size, path))
    return sorted(out)


def _expand_remote(url: str) -> list[tuple[str, int, str]]:
    """The data files under ``url``, leaving out the objects of an unfinished sparktf write
    (``part-*-<job>-a<n>*`` while ``_sparktf-job-<job>`` marks the job open: a running job,
    or one whose driver was killed)."""
    import pyarrow.fs as pafs

    found = info(url)
    if found.type == pafs.FileType.File:
        return [(url, int(found.size or 0), url.rsplit("/", 1)[0])]
    items = list(walk(url))
    open_jobs = {name.rsplit("/", 1)[-1][len(JOB_MARK):] for name, _ in items
                 if name.rsplit("/", 1)[-1].startswith(JOB_MARK)}
    return sorted((child(url, name), int(item.size or 0), url) for name, item in items
                  if not any(is_hidden(part) for part in name.split("/"))
                  and not of_open_job(name, open_jobs))


JOB_MARK = "_sparktf-job-"  # see sparktf.spark.objcommit


def of_open_job(name: str, jobs: set[str]) -> bool:
    base = name.rsplit("/", 1)[-1]
    return bool(jobs) and base.startswith("part-") and any(f"-{j}-a" in base for j in jobs)


def _glob_remote(loc: Location) -> list[str]:
    """URLs of the files and directories matching the glob ``loc`` (one listing)."""
    parts = loc.path.split("/")
    fixed = next(i for i, p in enumerate(parts) if glob.has_magic(p))
    prefix = url_of(loc, "/".join(parts[:fixed]))
    names: set[str] = set()
    for name, _ in walk(prefix):
        pieces = name.split("/")
        for depth in range(1, len(pieces) + 1):  # the file and the directories above it
            names.add("/".join(pieces[:depth]))
    pattern = parts[fixed:]
    return sorted(child(prefix, n) for n in names if _matches(n.split("/"), pattern))


def url_of(loc: Location, path: str) -> str:
    """The URL, in ``loc``'s form, of the filesystem path ``path`` of the same store.

    Examples
    --------
    >>> url_of(parse("s3a://b/x"), "b/y/z")
    's3a://b/y/z'
    """
    if loc.is_local:
        return path
    if loc.scheme == "hdfs":
        return f"{loc.written_scheme}://{loc.authority}/{path.lstrip('/')}"
    if loc.scheme == "abfs":
        key = path.split("/", 1)[1] if "/" in path else ""
        return f"{loc.written_scheme}://{loc.authority}/{key}"
    return f"{loc.written_scheme}://{path}"


def _matches(pieces: list[str], pattern: list[str]) -> bool:
    return len(pieces) == len(pattern) and all(
        fnmatch.fnmatchcase(p, q) for p, q in zip(pieces, pattern))


# -- bytes ----------------------------------------------------------------------------------


def open_input(url: str, *, buffer_size: int = 1 << 20) -> BinaryIO:
    """A readable binary stream of the file at ``url`` (read sequentially; remote objects are
    fetched in ``buffer_size`` chunks, not one request per read call)."""
    loc = parse(url)
    if loc.is_local:
        return open(loc.path, "rb", buffering=buffer_size)
    try:
        return loc.filesystem().open_input_stream(loc.path, buffer_size=buffer_size)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise OSError(f"{loc.url}: {_first_line(exc)}") from None


def open_output(url: str) -> BinaryIO:
    """A writable binary stream to ``url``; an object store makes it visible only when the
    stream is closed."""
    loc = parse(url)
    if loc.is_local:
        os.makedirs(os.path.dirname(loc.path), exist_ok=True)
        return open(loc.path, "wb")
    return loc.filesystem().open_output_stream(loc.path)


def upload(local: str, url: str) -> int:
    """Copy the local file ``local`` to ``url``; returns its size."""
    with open(local, "rb") as source, open_output(url) as target:
        while chunk := source.read(8 << 20):
            target.write(chunk)
    return os.path.getsize(local)


def download(url: str, local: str) -> int:
    """Copy the file at ``url`` to the local path ``local``; returns the bytes copied."""
    total = 0
    with open_input(url, buffer_size=8 << 20) as source, open(local, "wb") as target:
        while chunk := source.read(8 << 20):
            target.write(chunk)
            total += len(chunk)
    return total


def delete(urls: Iterable[str]) -> None:
    """Delete the files ``urls`` (missing ones are fine)."""
    for url in urls:
        loc = parse(url)
        try:
            loc.filesystem().delete_file(loc.path)
        except FileNotFoundError:
            pass


def delete_tree(url: str) -> None:
    """Delete the directory ``url`` and everything under it (missing is fine)."""
    loc = parse(url)
    try:
        loc.filesystem().delete_dir(loc.path)
    except FileNotFoundError:
        pass

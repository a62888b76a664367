"""The ``_SUCCESS`` manifest written by the object-store commit protocol.

On an object store (``s3://``, ``gs://``, ``abfs://``, ``hdfs://``) a committed output
directory holds ``_SUCCESS`` as JSON naming exactly the data files of the output, with their
sizes and record counts. Readers trust it: they read the files it lists and nothing else
(objects of failed or losing task attempts may still be there for a moment), and a listed
file that is missing or of another size is an error. An empty ``_SUCCESS`` (the local
protocol's, or Spark's) or another writer's (Hadoop's S3A committers write JSON of their own)
is no manifest: the directory is listed as usual.

Examples
--------
>>> text = dumps([Entry("part-00000-j-a0.tfrecord", 120, 3)], job="j")
>>> [e.name for e in loads(text, "s3://b/out/_SUCCESS")]
['part-00000-j-a0.tfrecord']
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from sparktf import fs
from sparktf.errors import StorageError

SUCCESS = "_SUCCESS"
FORMAT = "sparktf-manifest"


@dataclass(frozen=True)
class Entry:
    """One committed data file: name relative to the output directory, bytes, records."""

    name: str
    size: int
    records: int | None = None


def dumps(entries: list[Entry], *, job: str) -> str:
    """The manifest text for ``entries``."""
    files = [asdict(e) for e in sorted(entries, key=lambda e: e.name)]
    return json.dumps({"format": FORMAT, "version": 1, "job": job, "files": files}, indent=1)


def loads(text: str, where: str) -> list[Entry]:
    """The entries of a manifest; :class:`StorageError` naming ``where`` when malformed."""
    try:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
        return [Entry(str(f["name"]), int(f["size"]), f.get("records")) for f in data["files"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StorageError(f"{where}: not a sparktf manifest ({exc})") from None


def read(directory: str) -> list[Entry] | None:
    """The manifest of ``directory``, or None when it has none (or an empty ``_SUCCESS``)."""
    url = fs.child(directory, SUCCESS)
    try:
        with fs.open_input(url) as handle:
            text = handle.read(64 << 20).decode("utf-8", "replace")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except OSError as exc:
        if "does not exist" in str(exc) or "No such" in str(exc):
            return None
        raise StorageError(f"{url}: cannot read: {exc}") from None
    if not text.strip():
        return None
    try:
        foreign = json.loads(text).get("format") != FORMAT
    except (ValueError, AttributeError):
        foreign = True
    if foreign:  # another writer's _SUCCESS (Hadoop's S3A committers write JSON too)
        return None
    return loads(text, url)


def write(directory: str, entries: list[Entry], *, job: str) -> None:
    """Write the manifest of ``directory`` (one object: it appears whole or not at all)."""
    with fs.open_output(fs.child(directory, SUCCESS)) as handle:
        handle.write(dumps(entries, job=job).encode())


def files(directory: str, entries: list[Entry]) -> list[str]:
    """URLs of the manifest's files, checked to exist with their recorded sizes."""
    present = {name: item.size for name, item in fs.walk(directory)}
    out = []
    for entry in entries:
        found = present.get(entry.name)
        if found is None:
            raise StorageError(
                f"{fs.child(directory, entry.name)}: listed in the manifest "
                f"{fs.child(directory, SUCCESS)} but missing; the output is damaged")
        if found != entry.size:
            raise StorageError(
                f"{fs.child(directory, entry.name)}: the manifest says {entry.size} bytes, "
                f"found {found}; the output is damaged or being rewritten")
        out.append(fs.child(directory, entry.name))
    return out

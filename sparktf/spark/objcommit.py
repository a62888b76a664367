"""A rename-free commit protocol for object stores (``s3://``, ``gs://``, ``abfs://``,
``hdfs://``).

On S3 a rename is a copy and a delete, and a directory cannot be moved at all, so the local
protocol (:mod:`sparktf.spark.commit`) does not carry over. Instead:

- each task attempt writes its file in its own scratch directory and uploads it, only when
  complete, straight to its final name, unique to the job and the attempt:
  ``<out>/part-00003-<job>-a1.tfrecord`` (an object becomes visible only once its upload
  completes, so no reader ever sees a partial one);
- the job commit writes ``<out>/_SUCCESS``, a JSON manifest of the winning files (name, size,
  records; see :mod:`sparktf.manifest`), in one PUT, then deletes the objects of losing or
  failed attempts and, for an overwrite, the previous output's files; an append keeps the
  files of the previous manifest (or, without one, the data files already there) in the new
  manifest;
- an aborted job deletes every object of the job and leaves ``<out>`` as it was: no
  ``_SUCCESS`` is written, the old files and old manifest are untouched.

While the job runs, the empty object ``<out>/_sparktf-job-<job>`` marks it open; commit and
abort delete it before they list the job's objects. A task attempt uploads only while it is
there and looks again after its upload, deleting its object when the job has closed in the
meantime: an attempt that outlives its job (the writer of a task whose input worker was
killed carries on with a cut-short input) leaves nothing behind. Readers trust the manifest,
so no such object is ever read in any case.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sparktf import fs, manifest
from sparktf.errors import StorageError, TFRecordError

log = logging.getLogger(__name__)


def object_name(partition: int, job: str, attempt: int, extension: str) -> str:
    """The final object name of one task attempt's file.

    Examples
    --------
    >>> object_name(3, "abc", 1, ".tfrecord.gz")
    'part-00003-abc-a1.tfrecord.gz'
    """
    return f"part-{partition:05d}-{job}-a{attempt}{extension}"


def _of_job(name: str, job: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.startswith("part-") and f"-{job}-a" in base


def _within(name: str, folders: set[str]) -> bool:
    return any(name.startswith(f"{folder}/") for folder in folders)


def job_mark(out: str, job: str) -> str:
    """The object that marks the job open."""
    return fs.child(out, f"_sparktf-job-{job}")


def start_job(out: str, job: str) -> None:
    """On the driver before any task runs: ``out`` is not a file and is writable (an
    unknown bucket fails here, not in every task); the job is marked open."""
    import pyarrow.fs as pafs

    try:
        fs.check_container(out)
        found = fs.info(out)
        if found.type == pafs.FileType.File:
            raise TFRecordError(f"output path {out} exists and is not a directory")
        with fs.open_output(job_mark(out, job)):
            pass
    except (OSError, StorageError) as exc:  # a missing bucket, no permission ...
        raise TFRecordError(f"output path {out} is not writable: {exc}") from None


def upload(local: str, out: str, job: str, name: str) -> int:
    """Upload a task attempt's finished file to ``<out>/<name>`` while the job is open;
    returns its size."""
    target = fs.child(out, name)
    if not fs.exists(job_mark(out, job)):
        raise TFRecordError(f"output path {out}: job {job} has already been committed or "
                            f"aborted; this task attempt ({name}) writes nothing")
    size = fs.upload(local, target)
    if not fs.exists(job_mark(out, job)):  # closed during the upload: take it back
        fs.delete([target])
        raise TFRecordError(f"output path {out}: job {job} was committed or aborted while "
                            f"this task attempt uploaded {name}; removed it")
    return size


def commit_job(out: str, job: str, messages: Sequence[Any], *, overwrite: bool,
               dynamic: bool = False) -> int:
    """Publish the files of ``messages`` (``TaskCommit``): the manifest first, then the
    deletions. ``dynamic`` (with ``overwrite``): replace only the partition directories
    written to. Returns the records committed."""
    from sparktf.spark.commit import directories

    present = {name: item.size for name, item in fs.walk(out)}
    entries = []
    for file in (f for m in messages if m is not None for f in m.files()):
        found = present.get(file.final)
        if found != file.size:
            raise TFRecordError(
                f"output path {out}: task file {file.final} has {found} bytes, the task "
                f"wrote {file.size}; nothing is committed")
        entries.append(manifest.Entry(file.final, file.size, file.records))
    replaced = directories(list(messages)) if overwrite and dynamic else set()
    kept: list[manifest.Entry] = []
    if not overwrite or dynamic:
        previous = manifest.read(out)
        if previous is None:
            previous = [manifest.Entry(n, s, None) for n, s in present.items()
                        if not any(fs.is_hidden(p) for p in n.split("/")) and not _of_job(n, job)]
        kept = [e for e in previous if e.name in present and not _within(e.name, replaced)]
    manifest.write(out, kept + entries, job=job)
    fs.delete([job_mark(out, job)])
    present = {name: item.size for name, item in fs.walk(out)}  # what late attempts added
    listed = {e.name for e in kept + entries} | {manifest.SUCCESS}
    doomed = [n for n in present if n not in listed and (
        (overwrite and not dynamic) or _of_job(n, job) or _within(n, replaced))]
    fs.delete(fs.child(out, n) for n in doomed)
    total = sum(m.total for m in messages if m is not None)
    log.info("committed %d files (%d records) to %s; removed %d objects", len(entries), total,
             out, len(doomed))
    return total


def abort_job(out: str, job: str) -> None:
    """Delete every object of the job; when nothing else is in ``out``, remove it whole
    (with any directory marker the deletions left)."""
    fs.delete([job_mark(out, job)])
    present = [name for name, _ in fs.walk(out)]
    ours = [n for n in present if _of_job(n, job)]
    if len(ours) == len(present):  # a fresh output: nothing of anyone else's in it
        fs.delete_tree(out)
    else:
        fs.delete(fs.child(out, n) for n in ours)
    log.info("aborted job %s on %s: removed %d objects", job, out, len(ours))

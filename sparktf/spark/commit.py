"""A commit protocol for the writer: stage per task, publish on job commit, clean on abort.

Each task attempt writes into ``<out>/_temporary/<job>/<task>-<attempt>/``. Only the files
named in the commit messages (one per successful task) are moved into ``<out>``; then
``_SUCCESS`` is written. A failed job removes its staging directory and leaves ``<out>``
as it was (an overwrite deletes the old files only at commit). The job's staging directory
is created before any task runs and task attempts stage files only while it exists, so an
attempt that starts late (after its job was committed or aborted) leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field

from pyspark.sql.datasource import WriterCommitMessage

from sparktf.errors import TFRecordError, is_this_host, this_host

TEMPORARY = "_temporary"
SUCCESS = "_SUCCESS"


@dataclass
class TaskCommit(WriterCommitMessage):
    """What one task wrote: staged file (if any rows; on an object store, the uploaded
    object), final name (relative to the output: ``day=1/part-...`` in a partitioned
    write), record count and (object stores) bytes; ``others``: the task's other files (one
    per partition directory it wrote into)."""

    staged: str | None
    final: str | None
    records: int
    skipped: list[str] = field(default_factory=list)
    size: int = 0
    host: str = ""  #: where the task ran (for errors about files the driver cannot see)
    others: list[TaskCommit] = field(default_factory=list)

    def files(self) -> list[TaskCommit]:
        """Every file the task wrote (none when it had no rows)."""
        return [f for f in (self, *self.others) if f.final]

    @property
    def total(self) -> int:
        """The records of every file of the task."""
        return self.records + sum(f.records for f in self.others)


def of_files(files: list[TaskCommit], host: str = "") -> TaskCommit:
    """One task's message for the files it wrote (possibly none)."""
    if not files:
        return TaskCommit(staged=None, final=None, records=0, host=host)
    first, *others = files
    return TaskCommit(staged=first.staged, final=first.final, records=first.records,
                      size=first.size, host=host, others=others)


def directories(messages: list[TaskCommit | None]) -> set[str]:
    """The partition directories (relative) the files of ``messages`` lie in."""
    return {f.final.rsplit("/", 1)[0] for m in messages if m is not None for f in m.files()
            if f.final and "/" in f.final}


def staging_dir(out: str, job: str) -> str:
    return os.path.join(out, TEMPORARY, job)


def start_job(out: str, job: str) -> None:
    """Create the job's staging directory (on the driver, before any task runs)."""
    try:
        os.makedirs(staging_dir(out, job), exist_ok=True)
    except OSError as exc:
        raise TFRecordError(
            f"output path {out} is not writable: cannot create {staging_dir(out, job)} "
            f"({exc.strerror or exc})"
        ) from None


def task_path(out: str, job: str, partition: int, attempt: int, name: str, *,
              driver_host: str = "") -> str:
    """A fresh staging path for one task attempt's file.

    The job's staging directory must still exist: once the job is committed or aborted it is
    gone, and a late attempt (a task whose job failed while it started, or a zombie of a
    killed worker) must not leave files behind, so it fails here instead. On a host other
    than ``driver_host`` (the driver's :func:`~sparktf.errors.this_host`) a missing ``out``
    means that this host does not see the driver's output folder.
    """
    folder = os.path.join(staging_dir(out, job), f"{partition:05d}-{attempt}")
    try:
        os.mkdir(folder)
    except FileExistsError:
        pass
    except FileNotFoundError:
        here = this_host()
        if driver_host and not is_this_host(driver_host) and not os.path.isdir(out):
            raise TFRecordError(
                f"output path {out} does not exist on executor host {here} (the driver "
                f"runs on {driver_host}): executors "
                "write their part files into it themselves, so it must be a folder every "
                "host sees at the same path (a shared filesystem) or remote storage"
            ) from None
        raise TFRecordError(
            f"output path {out}: job {job} has already been committed or aborted; this task "
            f"attempt (partition {partition}, attempt {attempt}) writes nothing"
        ) from None
    target = os.path.join(folder, *name.split("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    return target


def visible_entries(out: str) -> list[str]:
    """Entries of ``out`` (a local path or any URL of :mod:`sparktf.fs`) other than the
    staging area; ``[out]`` when it is a file, empty when it does not exist."""
    from sparktf import fs

    if not fs.is_remote(out):
        out = fs.local_path(out)
        if not os.path.isdir(out):
            return [out] if os.path.exists(out) else []
        return [e for e in os.listdir(out) if not _bookkeeping(e)]
    if fs.info(out).type.name == "File":
        return [out]
    items = [name for name, _ in fs.walk(out)]
    open_jobs = {n[len(fs.JOB_MARK):] for n in items if n.startswith(fs.JOB_MARK)}
    kept = {n.split("/", 1)[0] for n in items  # what an unfinished write left is not output
            if not _bookkeeping(n.split("/", 1)[0]) and not fs.of_open_job(n, open_jobs)}
    return sorted(kept)


def _bookkeeping(name: str) -> bool:
    """Staging and the marks of running jobs: not output (sparktf.spark.claim, objcommit)."""
    return name == TEMPORARY or name.startswith(("_sparktf-claim-", "_sparktf-job-"))


def commit_job(out: str, job: str, messages: list[TaskCommit | None], *, overwrite: bool,
               dynamic: bool = False) -> int:
    """Publish the staged files of ``messages``; returns the number of records committed.
    ``dynamic`` (with ``overwrite``): replace only the partition directories written to.

    Every staged file must be visible here (on the driver) before anything is published: a
    task that ran on another host and wrote to that host's own disk is an error.
    """
    files = [f for m in messages if m is not None for f in m.files() if f.staged]
    for file in files:
        if not os.path.isfile(file.staged or ""):
            raise TFRecordError(
                f"output path {out}: the part file {file.staged} written on executor host "
                f"{file.host or _host_of(messages, file) or 'unknown'} is not visible on the "
                f"driver's host {this_host()}: the output must be a folder every host sees "
                "at the same path (a shared filesystem) or remote storage")
    if overwrite:
        doomed = (list(directories(messages)) if dynamic
                  else [e for e in visible_entries(out) if e != SUCCESS])
        for entry in doomed:
            target = os.path.join(out, *entry.split("/"))
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            elif os.path.lexists(target):
                os.remove(target)
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(out, SUCCESS))
    for file in files:
        target = os.path.join(out, *(file.final or "").split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(file.staged or "", target)
    _remove_staging(out, job)
    with open(os.path.join(out, SUCCESS), "wb"):
        pass
    return sum(m.total for m in messages if m is not None)


def _host_of(messages: list[TaskCommit | None], file: TaskCommit) -> str:
    for message in messages:
        if message is not None and file in message.files():
            return message.host
    return ""


def remove_if_empty(out: str) -> None:
    """Remove the directory ``out`` when it holds nothing but (empty) staging folders."""
    if os.path.isdir(out) and not visible_entries(out):
        shutil.rmtree(out, ignore_errors=True)


def abort_job(out: str, job: str) -> None:
    """Remove what the job staged; drop ``out`` too when the job created it and it is empty."""
    _remove_staging(out, job)
    with contextlib.suppress(OSError):
        os.rmdir(out)  # only succeeds when empty


def _remove_staging(out: str, job: str) -> None:
    """Remove the job's staging directory, and ``_temporary`` when nothing else is in it.

    The directory is renamed first: a task attempt still starting (its job failed under it)
    can then no longer create a folder or file in it, so the removal cannot race with it.
    """
    staging = staging_dir(out, job)
    doomed = f"{staging}.removed"
    try:
        os.rename(staging, doomed)
    except OSError:
        doomed = staging
    shutil.rmtree(doomed, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.join(out, TEMPORARY))

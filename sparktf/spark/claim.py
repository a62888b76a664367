"""One writer per new output: a claim taken on the driver before a job that must not find
its output existing (``errorifexists``, ``ignore``), and what a killed job left behind.

Two jobs started together on one output both find it absent; without a claim both would
write, and the output would hold a mix of both. The claim decides:

- a local output: the file ``.<name>.sparktf-claim`` beside it, created with ``O_EXCL``;
- an object store (no conditional writes there): the object
  ``<output>/_sparktf-claim-<job>``; a job that then sees no other claim, twice, wins, and
  one that sees another takes its own back and fails (or tries again, if the other one
  took its own back too).

A claim holds its job's id, host and process id. When its process is gone (the driver was
killed, on this host) the next job takes it over and removes what the dead job left: its
staging folder (``_temporary/<job>``, or the hidden sibling of Spark's writers) or its
uploaded objects (``part-*-<job>-a*``) and its open-job mark. Readers never take those for
output meanwhile (hidden names; on an object store a listing leaves out the objects of a job
whose mark says it is open).

Examples
--------
>>> import tempfile, os
>>> out = os.path.join(tempfile.mkdtemp(), "pred")
>>> first = claim(out, job="a1")
>>> try:
...     claim(out, job="b2")
... except SparkTFError as exc:
...     print(str(exc).split(";")[0])  # doctest: +ELLIPSIS
output path .../pred is being written by another job (a1, pid ..., host ...)
>>> first.release()
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass

from sparktf import fs
from sparktf.errors import SparkTFError
from sparktf.scratch import alive

PREFIX = "_sparktf-claim-"


@dataclass
class Claim:
    """A job's claim on ``output`` (release it when the job is done or failed)."""

    output: str
    job: str
    path: str

    def release(self) -> None:
        if not self.path:
            return
        if fs.is_remote(self.path):
            fs.delete([self.path])
            # deleting an object leaves its folder's marker behind on S3 (pyarrow keeps the
            # parent "directory"): a job that wrote nothing leaves nothing
            if not fs.entries(self.output):
                fs.delete_tree(self.output)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)


def claim(output: str, *, job: str, staging: str = "", what: str = "output path") -> Claim:
    """Claim ``output`` for the job ``job`` (``staging``: the local folder it stages into,
    removed if the job dies), or raise :class:`SparkTFError` naming the job that holds it."""
    note = json.dumps({"job": job, "pid": os.getpid(), "host": socket.gethostname(),
                       "since": time.time(), "staging": staging})
    if fs.is_remote(output):
        return _claim_remote(output, job, note, what)
    try:
        path = _local_claim_path(output)
    except OSError:  # no folder can hold the output: the write's own check says why
        return Claim(output, job, "")
    for _ in range(3):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(path)
            if holder is not None and _dead(holder):
                take_over(output, holder)
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
                continue
            raise SparkTFError(_busy(output, holder, what)) from None
        except OSError:  # a read-only or refusing file system: the write's check says why
            return Claim(output, job, "")
        with os.fdopen(descriptor, "w") as handle:
            handle.write(note)
        return Claim(output, job, path)
    raise SparkTFError(f"{what} {output}: could not claim it ({path} keeps coming back)")


def _local_claim_path(output: str) -> str:
    parent, name = os.path.split(os.path.abspath(fs.local_path(output)))
    os.makedirs(parent, exist_ok=True)
    return os.path.join(parent, f".{name}.sparktf-claim")


def _claim_remote(output: str, job: str, note: str, what: str) -> Claim:
    """Put our claim, then see it alone twice, ``SETTLE`` seconds apart, to win (a store
    without conditional writes: a claim put after our first look shows in our second, and
    ours in its first). Seeing another claim, take ours back; if the other is still there
    after a random pause, it holds the output; if both took theirs back, try again."""
    import random

    path = fs.child(output, f"{PREFIX}{job}")
    for _ in range(8):
        with fs.open_output(path) as handle:
            handle.write(note.encode())
        others = _other_claims(output, job)
        if not others:
            time.sleep(SETTLE)
            others = _other_claims(output, job)
            if not others:
                return Claim(output, job, path)
        fs.delete([path])
        time.sleep(SETTLE * (1 + 2 * random.random()))
        still = _other_claims(output, job)
        if still:
            raise SparkTFError(_busy(output, still[0], what))
    raise SparkTFError(f"{what} {output}: could not claim it (other jobs kept trying too)")


SETTLE = 0.3  # seconds between the two looks of a remote claim


def _other_claims(output: str, job: str) -> list[dict]:
    """The live claims on ``output`` other than ``job``'s (dead ones are taken over)."""
    found = []
    for name, _ in fs.walk(output):
        if not name.startswith(PREFIX) or "/" in name or name == f"{PREFIX}{job}":
            continue
        holder = _read(fs.child(output, name)) or {}
        if holder and _dead(holder):
            take_over(output, holder)
            fs.delete([fs.child(output, name)])
            continue
        found.append(holder)
    return found


def _read(path: str) -> dict | None:
    try:
        with fs.open_input(path) as handle:
            return json.loads(handle.read(1 << 16).decode() or "null")
    except (OSError, ValueError):
        return None


def _dead(holder: dict) -> bool:
    """Whether the process of a claim is gone (known only for this host's processes)."""
    return holder.get("host") == socket.gethostname() and not alive(int(holder.get("pid", 0)))


def _busy(output: str, holder: dict | None, what: str) -> str:
    who = ("another job" if holder is None else
           f"another job ({holder.get('job')}, pid {holder.get('pid')}, host "
           f"{holder.get('host')})")
    return (f"{what} {output} is being written by {who}; wait for it to finish, or write "
            "elsewhere (if no such job runs any more, remove its claim "
            f"{_claim_name(output)})")


def _claim_name(output: str) -> str:
    if fs.is_remote(output):
        return fs.child(output, f"{PREFIX}<job>")
    return _local_claim_path(output)


def take_over(output: str, holder: dict) -> None:
    """Remove what the dead job of ``holder`` left in or beside ``output``."""
    job = str(holder.get("job", ""))
    if not job:
        return
    if fs.is_remote(output):
        from sparktf.spark.objcommit import abort_job

        abort_job(output, job)
        return
    local = fs.local_path(output)
    shutil.rmtree(os.path.join(local, "_temporary", job), ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.join(local, "_temporary"))
    staging = holder.get("staging")
    if staging and os.path.basename(staging).startswith("."):
        shutil.rmtree(staging, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rmdir(local)  # only when the dead job left it empty

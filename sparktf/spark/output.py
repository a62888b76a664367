"""Whole-directory outputs that appear complete or not at all (driver side, local paths).

Spark's own file writers (JSON, Parquet, CSV) create the output directory before the job
runs, leave it behind when the job fails, and, in ``overwrite`` mode, delete the old output
before the new one exists. :func:`staged_output` gives them a hidden sibling directory to
write instead, and moves it into place only once the job has succeeded.

Examples
--------
>>> import os, tempfile
>>> out = os.path.join(tempfile.mkdtemp(), "pred")
>>> with staged_output(out, overwrite=False) as staging:
...     os.mkdir(staging)
...     open(os.path.join(staging, "part-0"), "w").close()
>>> sorted(os.listdir(out))
['part-0']
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sparktf.errors import SparkTFError
from sparktf.spark.commit import visible_entries


def check_output(path: str, *, overwrite: bool, flag: str = "output path") -> None:
    """Refuse an existing, non-empty ``path`` unless ``overwrite`` (an empty directory counts
    as absent: a failed run of an older version may have left it)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise SparkTFError(f"{flag} {path} exists and is not a directory")
    if not overwrite and visible_entries(path):
        raise SparkTFError(
            f"{flag} {path} already exists; choose another path or pass --mode overwrite"
        )


@contextmanager
def staged_output(path: str, *, overwrite: bool) -> Iterator[str]:
    """Yield a staging path beside ``path`` for a writer that creates a whole directory.

    On success the staging directory becomes ``path``: an existing ``path`` is replaced only
    then (``overwrite``), an empty one is replaced. On failure the staging directory is
    removed and ``path`` is left exactly as it was. Without ``overwrite`` the job first
    claims ``path`` (:mod:`sparktf.spark.claim`): of two jobs started together on it, one
    fails at once, and the staging folder of a killed one is removed by the next.
    """
    from sparktf.spark.claim import claim

    parent, name = os.path.split(os.path.abspath(path))
    token = uuid.uuid4().hex[:12]
    staging = os.path.join(parent, f".{name}.sparktf-{token}")
    claimed = None if overwrite else claim(path, job=token, staging=staging, what="--output")
    try:
        check_output(path, overwrite=overwrite)
        try:
            yield staging
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _publish(staging, path, os.path.join(parent, f".{name}.sparktf-old-{token}"))
    finally:
        if claimed is not None:
            claimed.release()


def _publish(staging: str, path: str, old: str) -> None:
    """Move ``staging`` to ``path``, moving an existing ``path`` aside first."""
    moved = False
    if os.path.isdir(path):
        os.rename(path, old)
        moved = True
    try:
        os.rename(staging, path)
    except OSError:
        if moved:
            os.rename(old, path)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if moved:
        shutil.rmtree(old, ignore_errors=True)

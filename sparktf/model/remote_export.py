"""``export_checkpoint`` and ``list_operations`` with URLs (``s3://``, ``gs://`` ...).

TensorFlow 2.21 cannot open ``s3://`` or ``hdfs://``: a remote checkpoint directory is
copied into a local temporary directory first, and a SavedModel for a remote ``export_dir``
is written locally (complete and checked, as for a local one), then uploaded. An existing
remote ``export_dir`` is refused unless ``overwrite``; then the new objects are uploaded
first and the old ones that the new model does not have are deleted after. Temporary copies
are removed when done or failed. Messages name the URLs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sparktf import fs
from sparktf.errors import ModelError, SparkTFError


@contextmanager
def _renamed(local: str, url: str) -> Iterator[None]:
    """Errors that name the local copy ``local`` name ``url`` instead."""
    try:
        yield
    except SparkTFError as exc:
        raise type(exc)(str(exc).replace(local, url)) from None


@contextmanager
def local_checkpoint(model_dir: str) -> Iterator[str]:
    """A local directory holding ``model_dir`` (copied when it is a URL)."""
    if not fs.is_remote(model_dir):
        yield fs.local_path(model_dir)
        return
    objects = [name for name, _ in fs.walk(model_dir)]
    if not objects:
        raise ModelError(f"checkpoint directory {model_dir!r} does not exist (no objects "
                         "under it)")
    with tempfile.TemporaryDirectory(prefix="sparktf-checkpoint-") as folder:
        local = os.path.join(folder, "model")
        for name in objects:
            path = os.path.join(local, *name.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fs.download(fs.child(model_dir, name), path)
        with _renamed(local, model_dir.rstrip("/")):
            yield local


def list_operations(model_dir: str) -> list[tuple[str, str]]:
    """:func:`sparktf.model.export.list_operations` of a URL."""
    from sparktf.model import export

    with local_checkpoint(model_dir) as local:
        return export.list_operations(local)


def export_checkpoint(
    model_dir: str, export_dir: str, *, signatures: Mapping[str, Any],
    tag_set: str | Sequence[str], overwrite: bool,
) -> str:
    """:func:`sparktf.model.export.export_checkpoint` where either directory is a URL."""
    from sparktf.model import export

    if not fs.is_remote(export_dir):
        with local_checkpoint(model_dir) as local:
            export.export_checkpoint(local, export_dir, signatures=signatures,
                                     tag_set=tag_set, overwrite=overwrite)
        return str(export_dir)
    old = {name for name, _ in fs.walk(export_dir)}
    if old and not overwrite:
        shown = ", ".join(sorted(old)[:12])
        raise ModelError(f"export directory {export_dir!r} already exists and is not empty "
                         f"(it holds: {shown}); choose another one or overwrite it "
                         "(--overwrite, overwrite=True)")
    with local_checkpoint(model_dir) as local, \
            tempfile.TemporaryDirectory(prefix="sparktf-export-") as folder:
        built = os.path.join(folder, "export")
        with _renamed(built, export_dir.rstrip("/")):
            export.export_checkpoint(local, built, signatures=signatures, tag_set=tag_set)
        new = [p.relative_to(built).as_posix() for p in sorted(Path(built).rglob("*"))
               if p.is_file()]
        for name in new:
            fs.upload(os.path.join(built, *name.split("/")), fs.child(export_dir, name))
    fs.delete(fs.child(export_dir, name) for name in sorted(old - set(new)))
    return str(export_dir)

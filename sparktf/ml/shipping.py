"""Ship a driver-local SavedModel to the executors with Spark's file distribution."""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import shutil
import tempfile
import threading
from typing import Any

from sparktf import fs
from sparktf.model.metadata import fingerprint

log = logging.getLogger(__name__)

_SHIPPED: set[tuple[str, str]] = set()
_SHIP_LOCK = threading.Lock()


def ship_model(spark: Any, export_dir: str) -> str:
    """Zip a local export directory and distribute it to the executors
    (:func:`sparktf.spark.compat.add_archive`: ``addArtifacts(archive=True)`` from a Spark
    Connect client, ``SparkContext.addArchive`` on a classic session).

    Returns the archive's name for ``SparkFiles.get`` on the workers, where Spark unpacks it
    once per executor. The zip lives in a ``tempfile`` directory removed when this process
    exits. A rewritten model gets a new name, so it is shipped again.
    """
    from sparktf.spark.compat import add_archive, session_key

    real = os.path.realpath(fs.local_path(export_dir))
    digest = hashlib.sha256(repr((real, fingerprint(real))).encode()).hexdigest()[:16]
    name = f"sparktf-model-{digest}.zip"
    key = (session_key(spark), name)
    with _SHIP_LOCK:
        if key in _SHIPPED:
            return name
        folder = tempfile.mkdtemp(prefix="sparktf-ship-")
        atexit.register(shutil.rmtree, folder, True)
        archive = shutil.make_archive(os.path.join(folder, name[:-4]), "zip", real)
        add_archive(spark, archive)
        _SHIPPED.add(key)
    log.info("shipping model %s to the executors as %s", real, name)
    return name

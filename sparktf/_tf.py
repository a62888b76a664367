"""Lazy TensorFlow import, so ``import sparktf`` and ``sparktf --help`` stay fast."""

from __future__ import annotations

import gc
import os
import threading
from types import ModuleType

from sparktf.errors import SparkTFError

_TF: ModuleType | None = None


def tensorflow() -> ModuleType:
    """Import TensorFlow once per process, quietly, with a clear error when it is missing."""
    global _TF
    if _TF is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            import tensorflow as tf
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise SparkTFError(
                "TensorFlow is not installed: pip install 'sparktf[cpu]' (or 'sparktf[gpu]')"
            ) from exc
        # TensorFlow leaves ~300k Python objects that the cyclic GC would walk on every full
        # collection, and PySpark's daemon runs gc.collect() after each task of a reused
        # worker: ~0.3 s each, half of a reading worker's CPU. They live as long as the
        # process, so move them out of the collector's sight.
        gc.freeze()
        _TF = tf
    return _TF


_WARMING: threading.Thread | None = None


def warm_up() -> None:
    """Start importing TensorFlow in a background thread (e.g. while Spark starts)."""
    global _WARMING
    if _TF is None and _WARMING is None:
        _WARMING = threading.Thread(target=_quiet_import, name="sparktf-tf-import", daemon=True)
        _WARMING.start()


def _quiet_import() -> None:
    try:
        tensorflow()
    except SparkTFError:
        pass  # reported when TensorFlow is really needed

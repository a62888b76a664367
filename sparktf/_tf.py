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


def example_pb2() -> ModuleType:
    """TensorFlow's ``example_pb2`` (``Example``, ``SequenceExample``), imported quietly:
    importing it bare loads TensorFlow without :func:`tensorflow`'s log settings, and each
    process that does so prints TensorFlow's C++ start-up lines."""
    tensorflow()
    from tensorflow.core.example import example_pb2 as module

    return module


def freeze_survivors() -> None:
    """Collect garbage, then move every object still alive out of the cyclic GC's sight.

    Called as a worker starts a file or a stream of batches: what is alive then (modules,
    TensorFlow, cached models) lives as long as the process. Without it, each automatic full
    collection, and the ``gc.collect()`` PySpark's daemon runs after every task, walks them
    all: ~0.3 s each with TensorFlow loaded. The collection first is cheap (it walks only
    objects not frozen yet) and keeps garbage from being frozen.
    """
    gc.collect()
    gc.freeze()


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

"""Lazy TensorFlow import, so ``import sparktf`` and ``sparktf --help`` stay fast.

TensorFlow's shared libraries log from their static initialisers, before TensorFlow reads
``TF_CPP_MIN_LOG_LEVEL`` (and before absl's logging is initialised): where oneDNN is on (CPUs
with AVX-512 or AMX, or ``TF_ENABLE_ONEDNN_OPTS=1``) every process that imports TensorFlow
prints ``WARNING: All log messages before absl::InitializeLog() ...`` and ``I0000 ...
port.cc:153] oneDNN custom operations are on ...``, twice, whatever the level says.
:func:`tensorflow` imports it with file descriptor 2 going through a pipe whose lines are
passed on to the real stderr unless they are such start-up lines at a level that
``TF_CPP_MIN_LOG_LEVEL`` hides (default here: 2, warnings and info hidden). A child started
meanwhile by another thread (the JVM) keeps writing through the pipe, and its lines are
passed on as they come.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import sys
import threading
from collections.abc import Iterator
from types import ModuleType

from sparktf.errors import SparkTFError

_TF: ModuleType | None = None
_IMPORTING = threading.RLock()  # one import (and one filter of fd 2) at a time


def tensorflow() -> ModuleType:
    """Import TensorFlow once per process, quietly, with a clear error when it is missing.

    Thread-safe: a caller that comes while another thread imports (:func:`warm_up`) waits
    for it, as two filters of fd 2 at once would close each other's descriptors.
    """
    if _TF is None:
        with _IMPORTING:
            _import()
    assert _TF is not None
    return _TF


def _import() -> None:
    global _TF
    if _TF is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # GPUs numbered as nvidia-smi (and Spark's discovery script) number them, and each
        # process takes GPU memory as it needs it, not all of it: several Python workers
        # share an executor's GPUs (sparktf.model.runtime.task_gpus)
        os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
        try:
            with quiet_startup():
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


def loaded() -> bool:
    """Whether this process has imported TensorFlow through :func:`tensorflow`."""
    return _TF is not None


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


#: absl's line before its logging is initialised, and TensorFlow's C++ log lines
#: (``I0000 00:00:1796425461.260726   26624 port.cc:153] message``), by severity letter
_ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called"
_CPP_LINE = re.compile(rb"^([IWEF])\d{4} [\d:.]+\s+\d+ [\w.\-]+:\d+\] ")
_SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}


def hidden(line: bytes, level: int) -> bool:
    """Whether TensorFlow's start-up ``line`` is one that ``TF_CPP_MIN_LOG_LEVEL`` = ``level``
    hides (absl's preamble always is; fatal lines never are).

    Examples
    --------
    >>> hidden(b"I0000 00:00:1796425461.260726   26624 port.cc:153] oneDNN custom ...", 2)
    True
    >>> hidden(b"E0000 00:00:1796425461.260726   26624 cuda_dnn.cc:8] cannot load", 2)
    False
    >>> hidden(b"Traceback (most recent call last):", 3)
    False
    """
    if line.startswith(_ABSL_PREAMBLE):
        return True
    match = _CPP_LINE.match(line)
    return match is not None and _SEVERITY[match.group(1)] < min(level, 3)


def _log_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0").strip() or "0")
    except ValueError:
        return 0


@contextlib.contextmanager
def quiet_startup() -> Iterator[None]:
    """File descriptor 2 through a filter that drops TensorFlow's start-up lines (see the
    module docstring) while the block runs; everything else reaches stderr, in order."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no stderr to protect
        yield
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    marker = b"\0sparktf-quiet-%d\n" % os.getpid()
    drained = threading.Event()
    threading.Thread(target=_forward, args=(read_end, saved, marker, drained, _log_level()),
                     name="sparktf-stderr-filter", daemon=True).start()
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.write(2, marker)  # everything written before it has been passed on once it is seen
        os.dup2(saved, 2)
        drained.wait(timeout=10)


def _forward(read_end: int, out: int, marker: bytes, drained: threading.Event,
             level: int) -> None:
    """Pass the lines arriving at ``read_end`` to ``out`` unless :func:`hidden`, until every
    writer has closed the pipe (a child started meanwhile may hold it for its lifetime)."""
    pending = b""
    try:
        while chunk := os.read(read_end, 1 << 16):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = []
            for line in lines:
                if line.endswith(marker[:-1]):  # after a line left unfinished, if any
                    drained.set()
                    kept.append(line[:-len(marker) + 1])
                elif not hidden(line, level):
                    kept.append(line + b"\n")
            if kept:
                _write_all(out, b"".join(kept))
        if pending:
            _write_all(out, pending)
    except OSError:
        pass
    finally:
        drained.set()
        os.close(read_end)
        os.close(out)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]

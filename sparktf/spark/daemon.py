"""A PySpark daemon whose task workers start with TensorFlow already imported.

PySpark forks each Python worker from a daemon process. A worker that reads TFRecords or runs
a model imports TensorFlow (3-4 s) unless its process has it already, and Spark ends a worker
whenever a task stops reading its output early (``limit``, ``show``, ``take``): the next task
then pays the import again in a new worker. With ``spark.python.daemon.module`` set to this
module (:func:`sparktf.configure_session` and ``sparktf infer`` do it), the daemon that forks
task workers (``pyspark.worker``) imports TensorFlow, pyarrow and sparktf's reader once and
moves them out of the cyclic GC's sight (``gc.freeze``: no copy-on-write from collections in
the children), then runs PySpark's own daemon. Each worker is then a ``fork`` of a process
that has everything: TensorFlow is imported once per executor, not once per worker. The
daemons of Spark's planning workers (data source lookup and planning) import nothing extra.

No TensorFlow session, graph or ``tf.data`` pipeline exists before the fork: those, and the
thread pools they start, are created in each worker.

``SPARKTF_PRELOAD`` in the executor's environment chooses: ``daemon`` (the default, as
above), ``shared`` (this daemon preloads nothing and the host's zygote forks the workers:
one TensorFlow import per host for every Spark Connect session,
:mod:`sparktf.spark.zygote`) or ``off``.

When Spark stops reading a task's output early, PySpark's own daemon prints the worker's
``BrokenPipeError`` traceback to the console; here such a worker just ends (it could not be
reused anyway).
"""

from __future__ import annotations

import os
import sys
from typing import Any

#: The worker module of the daemon that forks task workers (PySpark passes it as argv[1]).
TASK_WORKER = "pyspark.worker"
#: The values ``SPARKTF_PRELOAD`` takes (the first is the default).
MODES = ("daemon", "shared", "off")


def preload() -> None:
    """Import what task workers need, then freeze it (see the module docstring)."""
    import gc

    import pyarrow  # noqa: F401

    from sparktf._tf import tensorflow
    from sparktf.tfrecord import reader  # noqa: F401
    from sparktf.tfrecord.protos import example_classes

    tensorflow()
    example_classes()
    gc.collect()
    gc.freeze()


def patched_worker() -> Any:
    """PySpark's ``daemon.worker``, ending quietly when Spark stops reading early."""
    import pyspark.daemon as daemon

    forked = daemon.worker

    def worker(sock: Any, authenticated: bool) -> int:
        try:
            return forked(sock, authenticated)
        except (BrokenPipeError, ConnectionResetError):  # Spark stopped reading early
            return 1  # not 0: the socket is gone, the worker must not be reused

    return worker


def preload_mode() -> str:
    """``SPARKTF_PRELOAD`` (case-insensitive); another value is reported on stderr (the
    executor's log) with the accepted ones, and the default is used.

    Examples
    --------
    >>> import os
    >>> os.environ["SPARKTF_PRELOAD"] = "Shared"
    >>> preload_mode()
    'shared'
    >>> del os.environ["SPARKTF_PRELOAD"]
    """
    raw = os.environ.get("SPARKTF_PRELOAD", MODES[0])
    mode = raw.strip().lower()
    if mode not in MODES:
        print(f"sparktf daemon: SPARKTF_PRELOAD={raw!r} is not one of {', '.join(MODES)}; "
              f"using {MODES[0]}", file=sys.stderr)
        return MODES[0]
    return mode


def main() -> None:
    """Run PySpark's daemon, after :func:`preload` in the daemon of task workers; with
    ``SPARKTF_PRELOAD=shared``, register with this host's zygote instead, which then forks
    the task workers (:mod:`sparktf.spark.zygote`)."""
    task_daemon = sys.argv[1:2] in ([], [TASK_WORKER])
    mode = preload_mode()
    if task_daemon and mode == "shared":
        from sparktf.spark import zygote
        from sparktf.spark.shared_daemon import serve

        for _ in range(2):  # again if the one found was exiting (idle) meanwhile
            conn = zygote.connect()
            if conn is None:
                break
            serve(conn)  # returns only if the zygote did not take the session
            conn.close()
        print("sparktf daemon: no zygote could be started; preloading here", file=sys.stderr)
    if task_daemon and mode != "off":
        try:
            preload()
        except Exception as exc:  # noqa: BLE001 - workers then import what they need
            print(f"sparktf daemon: preloading failed ({exc}); workers import on demand",
                  file=sys.stderr)
    import pyspark.daemon as daemon

    daemon.worker = patched_worker()
    daemon.manager()


if __name__ == "__main__":
    main()

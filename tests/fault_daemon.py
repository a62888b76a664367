"""The PySpark daemon of the fault-injection jobs: faults in the middle of TFModel inference.

``tests/fault_jobs.py`` starts its local session with
``spark.python.daemon.module=tests.fault_daemon`` (and the repository root on the workers'
``PYTHONPATH``). This module then runs instead of ``pyspark.daemon``: the same daemon, whose
forked Python workers first wrap :func:`sparktf.model.runtime.run_batch`, which both TFModel
paths (fused, :func:`sparktf.model.fused.score_files`, and general,
:func:`sparktf.model.runtime.map_batches`) call once per model batch through the module
global. ``spark.python.worker.module`` cannot do this: ``pyspark/daemon.py`` (PySpark 4.3)
imports a worker module only when its name starts with ``pyspark`` and otherwise silently
runs ``pyspark.worker``.

A job asks for faults with the Spark local property :data:`PROPERTY` (set on the driver's
thread around the action), a JSON object::

    {"tag": "fused", "markers": DIR, "kinds": {"2": "raise", "1": "kill"}, "after": 6,
     "staged_under": OUT}

Every task attempt that scores a batch leaves ``<tag>-scored-<partition>-<attempt>.json``.
In each partition of ``kinds``, on its first attempt only, the wrapper lets ``after`` model
batches run, then, before the next one, waits until the writer has staged a file under
``staged_under`` (so output has begun), leaves ``<tag>-<kind>-<attempt>.json`` (where the
fault hit: batches and rows scored, whether the model was loaded, the sparktf functions on
the stack) and raises (``"raise"``) or kills its own process with SIGKILL (``"kill"``).
Without the property the wrapper only counts.

Nothing heavy is imported before the daemon forks (pyspark's own rule: no threads before
``fork``); the wrapper is installed in each forked worker.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

PROPERTY = "sparktf.test.fault"


def install() -> None:
    """Wrap ``run_batch`` in this worker process (once)."""
    from sparktf.model import runtime

    if getattr(runtime.run_batch, "fault_wrapped", False):
        return
    original = runtime.run_batch
    counts: dict[int, tuple[int, int]] = {}  # task attempt id -> (batches, rows) scored

    def run_batch(model: Any, batch: Any, plan: Any) -> Any:
        from pyspark import TaskContext

        context = TaskContext.get()
        spec = context.getLocalProperty(PROPERTY) if context is not None else None
        if spec:
            fault = json.loads(spec)
            partition, attempt = context.partitionId(), context.attemptNumber()
            batches, rows = counts.get(context.taskAttemptId(), (0, 0))
            if batches == 0:
                note = {"partition": partition, "attempt": attempt, "pid": os.getpid()}
                name = f"{fault['tag']}-scored-{partition}-{attempt}.json"
                Path(fault["markers"], name).write_text(json.dumps(note))
            kind = fault["kinds"].get(str(partition)) if attempt == 0 else None
            if kind and batches == fault["after"]:
                inject(fault, kind, partition, model, batches, rows)
            counts[context.taskAttemptId()] = (batches + 1, rows + batch.num_rows)
        return original(model, batch, plan)

    run_batch.fault_wrapped = True  # type: ignore[attr-defined]
    runtime.run_batch = run_batch


def inject(fault: dict[str, Any], kind: str, partition: int, model: Any, batches: int,
           rows: int) -> None:
    """Leave the marker of this fault, then raise or SIGKILL this process."""
    from sparktf.model.runtime import LoadedModel
    from tests.fault_jobs import wait_for_staged

    staged = wait_for_staged(fault.get("staged_under"), partition, 0)
    note = {"kind": kind, "partition": partition, "attempt": 0, "pid": os.getpid(),
            "batches": batches, "rows": rows, "staged": staged,
            "loaded": isinstance(getattr(model, "model", model), LoadedModel),
            "callers": callers()}
    Path(fault["markers"], f"{fault['tag']}-{kind}-0.json").write_text(json.dumps(note))
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"injected fault in partition {partition}, attempt 0, "
                       f"after {batches} model batches")


def callers() -> list[str]:
    """The sparktf functions on the stack, innermost first (``module.function``)."""
    found, frame = [], sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith("sparktf."):
            found.append(f"{module}.{frame.f_code.co_name}")
        frame = frame.f_back
    return found


def main() -> None:
    """Run ``pyspark.daemon``, its forked workers wrapping ``run_batch`` first."""
    import pyspark.daemon as daemon

    forked = daemon.worker

    def worker(sock: Any, authenticated: bool) -> int:
        install()
        return forked(sock, authenticated)

    daemon.worker = worker
    daemon.manager()


if __name__ == "__main__":
    main()

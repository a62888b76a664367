"""Run a small sparktf function where the Spark server's tasks run (Spark Connect).

A Connect client may not see the filesystem its paths name; Spark's tasks do. A one-task
``spark.range(1).mapInArrow`` job calls a module-level function there and brings back its
JSON result. Errors raised by the function reach the client as their own sparktf class
(:func:`sparktf.spark.errors.reraise`).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa


def _call(batches: Iterator[pa.RecordBatch], *, fn: Callable[..., Any],
          kwargs: dict[str, Any]) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` function: one JSON row per input row (one row in all)."""
    for batch in batches:
        for _ in range(batch.num_rows):
            yield pa.RecordBatch.from_pydict({"result": [json.dumps(fn(**kwargs))]})


def run_on_server(spark: Any, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """``fn(**kwargs)`` (a module-level function returning JSON data) run in one Spark task.

    Examples
    --------
    >>> run_on_server(spark, output_state, path=tmp)  # any session: one task where tasks run
    {'entries': 0, 'exists': True, 'not_a_directory': False}
    """
    from sparktf.spark.errors import reraise

    task = functools.partial(_call, fn=fn, kwargs=kwargs)
    with reraise(f"running {fn.__name__} in a Spark task on the server"):
        row = spark.range(0, 1, 1, 1).mapInArrow(task, "result string").first()
    return json.loads(row.result)


def output_state(path: str) -> dict[str, Any]:
    """What ``write_tfrecords`` and ``sparktf infer`` check of an output path before writing:
    how many visible entries it holds, and whether it is a file rather than a folder."""
    from sparktf import fs
    from sparktf.spark.commit import visible_entries

    entries = visible_entries(path)
    local = not fs.is_remote(path)
    return {"entries": len(entries), "exists": bool(entries) or fs.exists(path),
            "not_a_directory": entries == [path] or (local and os.path.isfile(path))}

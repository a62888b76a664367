"""Turn errors raised inside Spark (JVM or Python workers) into sparktf errors on the driver.

A :class:`~sparktf.errors.SparkTFError` raised in a Python worker reaches the driver wrapped
in a ``PythonException`` or a ``Py4JJavaError`` whose text holds the original
``sparktf.errors.TFRecordError: message`` line. :func:`reraise` finds that line and raises the
same class again with the same message, so callers catch what they would catch locally.

Any other failure of a Spark call in sparktf's own paths becomes a
:class:`~sparktf.errors.SparkTFError` that says what sparktf was doing (``writing TFRecords to
out``) and the cause in Spark's own words (``[DATA_SOURCE_NOT_FOUND] Failed to find the data
source: tfrecord``): never a bare ``Py4JJavaError: An error occurred while calling o86.save``
or a Java class name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sparktf import errors

_LINE = re.compile(r"sparktf\.errors\.(\w+): (.+)")
#: ``org.apache.spark.SparkClassNotFoundException: `` and the like, before a Java message
_JAVA_CLASS = re.compile(r"^(?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error|Throwable)?: ")
_EMBEDDED_CLASS = re.compile(
    r"(?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error|Throwable)(?::\s*|$)")
#: PySpark's first line of a worker's traceback, and Py4J's line naming the JVM call
_WRAPPERS = ("An exception was thrown from the Python worker",
             "An error occurred while calling")
_FRAMES = ("at ", "...", "Caused by", "Driver stacktrace", "JVM stacktrace")
_LIMIT = 600


def find_sparktf_error(exc: BaseException) -> errors.SparkTFError | None:
    """The first sparktf error named in a (possibly wrapped) Spark exception, if any."""
    if isinstance(exc, errors.SparkTFError):
        return exc
    match = _LINE.search(str(exc))
    if not match:
        return None
    cls = getattr(errors, match.group(1), errors.SparkTFError)
    if not (isinstance(cls, type) and issubclass(cls, errors.SparkTFError)):
        cls = errors.SparkTFError
    return cls(match.group(2).strip())


def cause(exc: BaseException) -> str:
    """What went wrong in ``exc``, in one line without Java or Py4J class names.

    A ``Py4JJavaError`` gives its Java exception's message; a Python worker's traceback gives
    its last line (the Python exception); anything else its first line.

    Examples
    --------
    >>> cause(RuntimeError("An error occurred while calling o86.save.\\n: "
    ...       "org.apache.spark.SparkClassNotFoundException: [DATA_SOURCE_NOT_FOUND] "
    ...       "Failed to find the data source: tfrecord.\\n\\tat org.apache.X.y(X.scala:1)"))
    '[DATA_SOURCE_NOT_FOUND] Failed to find the data source: tfrecord.'
    >>> cause(ValueError("bad value"))
    'ValueError: bad value'
    """
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(_FRAMES)]
    if not lines:
        return type(exc).__name__
    if lines[0].startswith(_WRAPPERS):
        if "Traceback (most recent call last)" in text:  # a Python worker's error
            return _clip(_JAVA_CLASS.sub("", lines[-1]))
        lines = lines[1:] or lines  # Py4J: the Java exception follows
        return _clip(_completed(_JAVA_CLASS.sub("", lines[0].lstrip(": ")), lines[1:]))
    first = lines[0]
    if _JAVA_CLASS.match(first) or first.startswith("[") or type(exc).__name__.startswith(
            "Py4J"):
        return _clip(_completed(_JAVA_CLASS.sub("", first), lines[1:]))
    return _clip(f"{type(exc).__name__}: {first}")


def _completed(line: str, rest: list[str]) -> str:
    """``line`` without Java class names inside it; when nothing is left after its last
    colon (Spark's ``Lost task ...: org.apache.spark.SparkException:``), the first line
    below that says something (a Python worker that could not start says it there).

    Examples
    --------
    >>> _completed("Job aborted: Lost task 0.3 (executor 0): org.apache.SparkException:",
    ...            ["Error from python worker:", "python3: No module named 'sparktf'"])
    "Job aborted: Lost task 0.3 (executor 0): python3: No module named 'sparktf'"
    """
    line = _EMBEDDED_CLASS.sub("", line).strip()
    if not line.endswith(":"):
        return line
    more = [_EMBEDDED_CLASS.sub("", r).strip() for r in rest]
    more = [r for r in more if r and r != "Error from python worker:"]
    return f"{line} {more[0]}" if more else line.rstrip(":")


def _clip(text: str) -> str:
    return text if len(text) <= _LIMIT else text[:_LIMIT - 3] + "..."


def explain(exc: BaseException) -> str:
    """One line describing ``exc``: the sparktf message when one is inside it."""
    found = find_sparktf_error(exc)
    if found is not None:
        return str(found)
    return cause(exc)


@contextmanager
def reraise(what: str | None = None) -> Iterator[None]:
    """Re-raise worker-side sparktf errors as their own class on the driver; with ``what``
    (what sparktf was doing, e.g. ``writing TFRecords to out``), any other error of the
    block as a :class:`~sparktf.errors.SparkTFError` saying ``what: cause``.

    Examples
    --------
    >>> with reraise("writing TFRecords to out"):
    ...     raise RuntimeError("An error occurred while calling o1.save.\\n: "
    ...                        "java.io.IOException: No space left on device")
    Traceback (most recent call last):
    ...
    sparktf.errors.SparkTFError: writing TFRecords to out: No space left on device
    """
    try:
        yield
    except errors.SparkTFError:
        raise
    except Exception as exc:
        found = find_sparktf_error(exc)
        if found is not None:
            raise found from exc
        if what is None:
            raise
        raise errors.SparkTFError(f"{what}: {cause(exc)}") from exc

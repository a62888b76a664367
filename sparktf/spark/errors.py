"""Turn errors raised inside Spark workers back into sparktf errors on the driver.

A :class:`~sparktf.errors.SparkTFError` raised in a Python worker reaches the driver wrapped
in a ``PythonException`` or a ``Py4JJavaError`` whose text holds the original
``sparktf.errors.TFRecordError: message`` line. :func:`reraise` finds that line and raises the
same class again with the same message, so callers catch what they would catch locally.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sparktf import errors

_LINE = re.compile(r"sparktf\.errors\.(\w+): (.+)")


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


def explain(exc: BaseException) -> str:
    """One line describing ``exc``: the sparktf message when one is inside it."""
    found = find_sparktf_error(exc)
    if found is not None:
        return str(found)
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return f"{type(exc).__name__}: {first}"[:2000]


@contextmanager
def reraise() -> Iterator[None]:
    """Re-raise worker-side sparktf errors as their own class on the driver.

    Examples
    --------
    >>> with reraise():
    ...     pass
    """
    try:
        yield
    except errors.SparkTFError:
        raise
    except Exception as exc:
        found = find_sparktf_error(exc)
        if found is None:
            raise
        raise found from exc

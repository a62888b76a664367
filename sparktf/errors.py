"""The sparktf exception hierarchy.

Every error sparktf raises on purpose derives from :class:`SparkTFError`, so callers can
catch one class, and tests can assert the precise subclass and message.

Examples
--------
>>> from sparktf.errors import SparkTFError, TFRecordError
>>> issubclass(TFRecordError, SparkTFError)
True
"""

from __future__ import annotations

import difflib
import os
import re
import socket
from collections.abc import Iterable

__all__ = [
    "SparkTFError",
    "TFRecordError",
    "SchemaError",
    "ModelError",
    "MappingError",
    "StorageError",
    "close_matches",
    "this_host",
    "is_this_host",
    "redact",
]


class SparkTFError(Exception):
    """Base class of all sparktf errors."""


class TFRecordError(SparkTFError):
    """A TFRecord file, record or feature is unreadable, corrupt or does not fit the schema."""


class SchemaError(SparkTFError):
    """A schema hint, a Spark type or a type conversion is not supported or malformed."""


class ModelError(SparkTFError):
    """A SavedModel is missing, unreadable, or cannot run on the given inputs."""


class MappingError(SparkTFError):
    """A column-to-tensor or tensor-to-column mapping names something that does not exist."""


def close_matches(name: str, candidates: Iterable[str], *, n: int = 5) -> str:
    """Format the names in ``candidates`` closest to ``name`` for an error message.

    Examples
    --------
    >>> close_matches("imag", ["image", "label"])
    "closest: 'image'"
    >>> close_matches("zzz", ["image"])
    "known: 'image'"
    """
    pool = sorted({str(c) for c in candidates})
    best = difflib.get_close_matches(name, pool, n=n, cutoff=0.5)
    if not best:
        best = [c for c in pool if name.lower() in c.lower() or c.lower() in name.lower()][:n]
    if best:
        return "closest: " + ", ".join(repr(b) for b in best)
    shown = ", ".join(repr(c) for c in pool[:20])
    more = f" and {len(pool) - 20} more" if len(pool) > 20 else ""
    return f"known: {shown}{more}" if pool else "there are none"


class StorageError(SparkTFError):
    """A path or URL is malformed, names an unknown scheme, or its store cannot be reached."""


def this_host() -> str:
    """This machine's name for error messages, with ``SPARK_LOCAL_IP`` when Spark has one
    (a worker's errors reach the driver: they say on which host a path was missing).

    Examples
    --------
    >>> this_host() != ""
    True
    """
    name = socket.gethostname()
    address = os.environ.get("SPARK_LOCAL_IP", "")
    return f"{name} ({address})" if address and address != name else name


def is_this_host(described: str) -> bool:
    """Whether ``described`` (a :func:`this_host` text from another process) names this
    machine; only the host names are compared.

    Examples
    --------
    >>> is_this_host(this_host()), is_this_host("elsewhere (10.0.0.7)")
    (True, False)
    """
    return described.partition(" (")[0] == socket.gethostname()


#: Environment variables whose values are credentials (object stores, MLflow, Databricks).
SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_KEY",
                    "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_CLIENT_SECRET",
                    "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "DATABRICKS_TOKEN",
                    "SPARK_CONNECT_AUTHENTICATE_TOKEN")
_TOKEN = re.compile(r"((?:^|[;?&])\s*(?:token|password|secret)\s*=)[^;&/\s'\"]+", re.I)
_USERINFO = re.compile(r"(//[^/@\s:]+:)[^@\s/]+@")


def redact(text: str) -> str:
    """``text`` without credentials: the values of :data:`SECRET_VARIABLES`, a Spark Connect
    URL's ``token=``, a URL's ``user:password@``.

    Examples
    --------
    >>> redact("sc://host:15002/;use_ssl=true;token=abc123 and https://al:pw@h/x")
    'sc://host:15002/;use_ssl=true;token=*** and https://al:***@h/x'
    """
    for name in SECRET_VARIABLES:
        value = os.environ.get(name, "")
        if len(value) >= 8:
            text = text.replace(value, "***")
    return _USERINFO.sub(r"\1***@", _TOKEN.sub(r"\1***", text))

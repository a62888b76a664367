"""How sparktf opens an S3 store: pyarrow's ``S3FileSystem`` with retries and timeouts.

``pyarrow.fs.FileSystem.from_uri`` gives a filesystem with the AWS SDK's defaults (3
attempts). Object stores answer ``503 SlowDown`` and ``500`` under load, reset connections
and stall reads; a scoring job makes thousands of requests, so sparktf opens S3 with more
room, as Hadoop's S3A connector does, each setting from the environment of the process
(the driver's, and on a cluster each executor's: ``spark.executorEnv.*``):

- ``SPARKTF_S3_MAX_ATTEMPTS`` (default 10): attempts per request, with the SDK's standard
  exponential backoff and jitter (``AwsStandardS3RetryStrategy``);
- ``SPARKTF_S3_REQUEST_TIMEOUT`` (default 30 s): a request (a read that stalls) that takes
  longer is abandoned and retried; ``SPARKTF_S3_CONNECT_TIMEOUT`` (default 10 s).

The endpoint (``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``), region (``AWS_REGION``,
``AWS_DEFAULT_REGION``, else the bucket's own, as ``from_uri`` finds it) and credentials (the
SDK's standard chain) are those ``from_uri`` takes.

Examples
--------
>>> settings({"SPARKTF_S3_MAX_ATTEMPTS": "4", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000"})
{'max_attempts': 4, 'request_timeout': 30.0, 'connect_timeout': 10.0, \
'endpoint_override': '127.0.0.1:9000', 'scheme': 'http'}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from sparktf.errors import StorageError


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    try:
        value = float(text) if text else default
    except ValueError:
        raise StorageError(f"{name}={text!r}: expected a number") from None
    if value <= 0:
        raise StorageError(f"{name}={text!r}: expected a positive number")
    return value


def settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The S3 settings the environment ``env`` gives (see the module docstring)."""
    found: dict[str, Any] = {
        "max_attempts": int(_number(env, "SPARKTF_S3_MAX_ATTEMPTS", 10)),
        "request_timeout": _number(env, "SPARKTF_S3_REQUEST_TIMEOUT", 30.0),
        "connect_timeout": _number(env, "SPARKTF_S3_CONNECT_TIMEOUT", 10.0),
    }
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        found["endpoint_override"] = parsed.netloc + parsed.path.rstrip("/")
        found["scheme"] = parsed.scheme or "https"
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        found["region"] = region
    return found


def s3_filesystem(bucket: str) -> Any:
    """An ``S3FileSystem`` for ``bucket`` with the settings of this process's environment."""
    import pyarrow.fs as pafs

    options = settings(os.environ)
    attempts = options.pop("max_attempts")
    if "region" not in options and "endpoint_override" not in options and bucket:
        options["region"] = pafs.resolve_s3_region(bucket)
    return pafs.S3FileSystem(retry_strategy=pafs.AwsStandardS3RetryStrategy(
        max_attempts=attempts), **options)

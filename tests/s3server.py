"""A real S3-protocol server for the tests: ``moto_server`` on 127.0.0.1.

:func:`configure` picks a free port and sets ``AWS_ENDPOINT_URL`` and dummy credentials in
``os.environ``; ``tests/conftest.py`` calls it when it is imported, before the shared Spark
session starts, so Spark's Python workers (forked from a daemon that inherits the JVM's
environment) reach the same server. :func:`start` starts the server on that port and waits
until it answers; :func:`stop` ends it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

_ENV = {
    "AWS_ACCESS_KEY_ID": "sparktf-test",
    "AWS_SECRET_ACCESS_KEY": "sparktf-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def configure() -> str:
    """Set the S3 endpoint and dummy credentials in ``os.environ``; the endpoint URL."""
    endpoint = os.environ.get("SPARKTF_TEST_S3_ENDPOINT")
    if not endpoint:
        endpoint = f"http://127.0.0.1:{free_port()}"
        os.environ["SPARKTF_TEST_S3_ENDPOINT"] = endpoint
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    for key, value in _ENV.items():
        os.environ[key] = value
    return endpoint


def start(endpoint: str, log: Path) -> subprocess.Popen[bytes]:
    """Start ``moto_server`` for ``endpoint`` and wait (up to 30 s) until it accepts."""
    port = int(endpoint.rsplit(":", 1)[1])
    exe = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or "moto_server"
    with open(log, "wb") as out:
        proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=out,
                                stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited {proc.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"moto_server did not open port {port}: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def make_bucket(name: str) -> str:
    """Create bucket ``name`` on the server (pyarrow, allowed to create buckets)."""
    import pyarrow.fs as pafs

    store, _ = pafs.FileSystem.from_uri(f"s3://{name}?allow_bucket_creation=true")
    store.create_dir(name)
    return name


def keys(bucket: str) -> list[str]:
    """Every object key in ``bucket`` (directory markers included), sorted."""
    import boto3

    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    out: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        out += [item["Key"] for item in page.get("Contents", [])]
    return sorted(out)

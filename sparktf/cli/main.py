"""Entry point of the ``sparktf`` command line.

Each sub-command lives in its own module (``sparktf.cli.infer``, ``.export``, ``.inspect``)
exposing ``add_parser(subparsers)`` and ``run(args) -> int``. TensorFlow and Spark are only
imported inside ``run`` so that ``sparktf --help`` answers at once.

Exit codes: 0 success, 1 data or model error, 2 usage error. The last line printed on an
error is always one line, ``sparktf: error: ...``, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sparktf.errors import SparkTFError, redact

COMMANDS = ("infer", "convert", "export", "inspect")

EPILOG = """examples:
  sparktf inspect --export_dir mnist_export
  sparktf export --model_dir mnist_model --show
  sparktf infer --export_dir mnist_export --input mnist/tfr/test \\
      --schema_hint 'struct<image:array<float>,label:array<float>>' \\
      --input_mapping '{"image": "x"}' --output_mapping '{"prediction": "prediction"}' \\
      --output predictions
  sparktf convert --input mnist/tfr/test --output mnist/parquet/test
"""


class UsageError(SparkTFError):
    """A flag's value is malformed: the CLI exits with status 2."""


def json_arg(value: str, *, flag: str) -> Any:
    """Parse a flag given as inline JSON or as the path of a JSON file.

    Examples
    --------
    >>> json_arg('{"image": "x"}', flag="--input_mapping")
    {'image': 'x'}
    """
    text = value
    if not value.lstrip().startswith(("{", "[")) and Path(value).is_file():
        text = Path(value).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{flag}: expected inline JSON or a JSON file, found {value!r} "
            f"({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None


def mapping_arg(value: str, *, flag: str) -> dict[str, str]:
    """Parse a ``{name: name}`` mapping flag (inline JSON or file)."""
    obj = json_arg(value, flag=flag)
    if not isinstance(obj, dict) or not obj:
        raise UsageError(f"{flag}: expected a non-empty JSON object of names, found {value!r}")
    bad = [k for k, v in obj.items() if not isinstance(v, str)]
    if bad:
        raise UsageError(f"{flag}: values must be strings; {bad[0]!r} maps to {obj[bad[0]]!r}")
    return {str(k): v for k, v in obj.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sparktf",
        description="Run TensorFlow SavedModels over Spark DataFrames and TFRecord files.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from sparktf import __version__

    parser.add_argument("--version", action="version", version=f"sparktf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"sparktf.cli.{name}")
        module.add_parser(sub)
        sub.choices[name].set_defaults(usage=sub.choices[name].format_usage)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(getattr(args, "usage", parser.format_usage)().rstrip(), file=sys.stderr)
        print(f"sparktf: error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except SparkTFError as exc:
        _trace(args)
        print(f"sparktf: error: {redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sparktf: error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a one-line message, never a traceback last
        from sparktf.spark.errors import explain

        _trace(args)
        print(f"sparktf: error: {redact(explain(exc))}", file=sys.stderr)
        return 1


def _trace(args: argparse.Namespace) -> None:
    """With ``--verbose``, the traceback of the error being handled (before its one line)."""
    if getattr(args, "verbose", False):
        import traceback

        print(redact(traceback.format_exc()).rstrip(), file=sys.stderr)


def entry() -> None:
    """The ``sparktf`` console script: :func:`main`, then a quick exit.

    Once the command is done (output committed, Spark stopped), the process leaves without
    tearing down TensorFlow's modules, which takes 1-2 s; a JVM still starting when the
    command failed goes with it. Under ``spark-submit`` it exits normally, so the JVM's own
    shutdown runs as usual.
    """
    code = main()
    import threading

    starting = any(t.name == "sparktf-spark-start" for t in threading.enumerate())
    if not starting and ("tensorflow" not in sys.modules or any(
            k in os.environ for k in ("PYSPARK_GATEWAY_PORT", "SPARK_SUBMIT"))):
        sys.exit(code)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()

"""``sparktf export``: list a TF1 checkpoint's operations, or export it as a SavedModel."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sparktf.cli.main import UsageError, json_arg
from sparktf.errors import MappingError

DESCRIPTION = """\
Restore the latest TF1 checkpoint (meta graph + variables) in --model_dir, then
  --show         print every operation's name and type (to find the tensor names), and/or
  --export_dir   write a SavedModel whose signatures map aliases to tensors (--signatures).

--signatures is inline JSON or the path of a JSON file:
  {"SIGNATURE_KEY": {"inputs": {ALIAS: TENSOR}, "outputs": {ALIAS: TENSOR},
                     "method_name": "predict" | "classify" | "regress"}}
Tensor names may omit ":0"; method_name defaults to predict. '{}' exports no signature
(sparktf infer can still fetch any tensor by its graph name).
"""

EPILOG = """\
examples:
  sparktf export --model_dir mnist_model --show
  sparktf export --model_dir mnist_model --export_dir mnist_export --signatures \\
      '{"serving_default": {"inputs": {"img": "x"}, "outputs": {"pred": "prediction"}}}'
  sparktf export --model_dir mnist_model --export_dir mnist_export \\
      --signatures signatures.json --tag_set serve --overwrite
  saved_model_cli show --dir mnist_export --all
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``sparktf export``."""
    parser = subparsers.add_parser(
        "export",
        help="list a TF1 checkpoint's operations or export it as a SavedModel",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model_dir", required=True, help="directory of the TF1 checkpoint")
    parser.add_argument("--show", action="store_true", help="print operation names and types")
    parser.add_argument("--export_dir", help="SavedModel directory to write")
    parser.add_argument(
        "--signatures", help="signature JSON (inline or file); required with --export_dir"
    )
    parser.add_argument(
        "--tag_set", default="serve", help="comma-separated meta graph tags (default: serve)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --export_dir")
    parser.add_argument("--verbose", action="store_true", help="log progress to stderr")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Show and/or export; returns the exit status."""
    from sparktf.model import export

    signatures = _check_args(args)
    if args.show:
        print(format_operations(export.list_operations(args.model_dir)), flush=True)
    if args.export_dir:
        out = export.export_checkpoint(
            args.model_dir,
            args.export_dir,
            signatures=signatures,
            tag_set=args.tag_set,
            overwrite=args.overwrite,
        )
        keys = ", ".join(signatures) or "none"
        print(
            f"sparktf: exported {out} (tags: {args.tag_set}; signatures: {keys})", file=sys.stderr
        )
    return 0


def _check_args(args: argparse.Namespace) -> dict[str, Any]:
    """Validate the flag combination and parse --signatures, before any TensorFlow work."""
    from sparktf.model.export import parse_signatures, parse_tag_set

    if not args.show and not args.export_dir:
        raise UsageError("nothing to do: give --show, or --export_dir with --signatures")
    from sparktf import fs
    from sparktf.errors import StorageError

    for flag, value in (("--model_dir", args.model_dir), ("--export_dir", args.export_dir)):
        try:
            if value:
                fs.parse(value)
        except StorageError as exc:
            raise UsageError(f"{flag}: {exc}") from None
    if args.signatures is not None and not args.export_dir:
        raise UsageError("--signatures: only used with --export_dir")
    if not args.export_dir:
        return {}
    if args.signatures is None:
        raise UsageError(
            "--signatures: required with --export_dir (inline JSON or a file; '{}' for none)"
        )
    try:
        parse_tag_set(args.tag_set)
    except MappingError as exc:
        raise UsageError(f"--tag_set: {exc}") from None
    obj = json_arg(args.signatures, flag="--signatures")
    try:
        parse_signatures(obj)
    except MappingError as exc:
        raise UsageError(f"--signatures: {exc}") from None
    return obj


def format_operations(ops: list[tuple[str, str]]) -> str:
    """One ``name  type`` line per operation, aligned up to names of 40 characters.

    Examples
    --------
    >>> print(format_operations([("x", "Placeholder"), ("prediction", "ArgMax")]))
    x           Placeholder
    prediction  ArgMax
    """
    width = min(max((len(name) for name, _ in ops), default=0), 40)
    return "\n".join(f"{name:<{width}}  {op_type}" for name, op_type in ops)

"""``sparktf inspect``: a model's tag sets, signatures and (with --ops) operations: a
SavedModel, a Keras ``.keras`` file or an MLflow model URI (as the SavedModel sparktf scores:
:mod:`sparktf.model.sources`)."""

from __future__ import annotations

import argparse
from typing import Any

DESCRIPTION = """\
Show what a model holds (a SavedModel, a .keras file or an MLflow model URI such as
models:/name/3), to write --input_mapping and --output_mapping:
  - its tag sets,
  - the signatures of one tag set: each alias -> graph tensor name, dtype and shape
    (use aliases with --signature_def_key, tensor names without it),
  - with --ops, every graph operation with its type and output tensors: how to find
    tensors that no signature exposes, such as a hidden layer's Relu.
"""

EPILOG = """\
examples:
  sparktf inspect --export_dir mnist_export
  sparktf inspect --export_dir mnist_export --ops
  sparktf inspect --export_dir mnist_export --ops | grep Relu
  sparktf inspect --export_dir my_model --tag_set serve,gpu --signature_def_key serving_default
  sparktf inspect --export_dir model.keras --import mypackage.layers
  MLFLOW_TRACKING_URI=sqlite:///mlflow.db sparktf inspect --export_dir models:/mnist@champion
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``sparktf inspect``."""
    parser = subparsers.add_parser(
        "inspect",
        help="show a SavedModel's tag sets, signatures and operations",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--export_dir", required=True,
                        help="a SavedModel directory, a .keras file or an MLflow model URI")
    add_import_flag(parser)
    parser.add_argument(
        "--tag_set", default="serve", help="comma-separated meta graph tags (default: serve)"
    )
    parser.add_argument(
        "--signature_def_key", help="show only this signature (default: all signatures)"
    )
    parser.add_argument(
        "--ops", action="store_true", help="also list every graph operation with its type"
    )
    parser.add_argument("--verbose", action="store_true", help="log progress to stderr")
    parser.set_defaults(func=run)
    return parser


def describe(meta: Any, *, signature_key: str | None = None, ops: bool = False) -> list[str]:
    """The lines ``sparktf inspect`` prints for a :class:`~sparktf.model.ModelMetadata`.

    Examples
    --------
    >>> from sparktf.model import load_metadata
    >>> print("\\n".join(describe(load_metadata(mnist_export))))
    SavedModel: .../mnist_export
    tag sets: 'serve'
    ...
    """
    from sparktf.model.metadata import tags_text

    lines = [f"SavedModel: {meta.export_dir}",
             "tag sets: " + ", ".join(tags_text(t) for t in meta.tag_sets),
             "", f"signatures of tag set {tags_text(meta.tags)}:"]
    keys = [signature_key] if signature_key is not None else meta.public_signatures
    for key in keys:
        signature = meta.signature(key)
        lines.append(f"  {key} ({signature.method_name or 'no method name'})")
        for side, aliases in (("inputs", signature.inputs), ("outputs", signature.outputs)):
            lines.append(f"    {side}:")
            lines += [f"      {alias} -> {spec.describe()}" for alias, spec in aliases.items()]
    if not keys:
        lines.append("  (none: map graph tensor names; --ops lists the operations)")
    if ops:
        operations = meta.operations()
        lines += ["", f"operations ({len(operations)}): name  type  -> output tensors"]
        for name, op_type, outputs in operations:
            shown = ", ".join(spec.describe() for spec in outputs)
            lines.append(f"  {name}  {op_type}" + (f"  -> {shown}" if shown else ""))
    return lines


def run(args: argparse.Namespace) -> int:
    """Print the description of ``args.export_dir``; model errors exit 1."""
    from sparktf.model.metadata import load_metadata
    from sparktf.model.sources import resolve

    import_modules(args.imports)
    source = resolve(args.export_dir)
    meta = load_metadata(source.location, tag_set=args.tag_set, name=source.given)
    lines = describe(meta, signature_key=args.signature_def_key, ops=args.ops)
    lines[0] = source.describe()
    print("\n".join(lines))
    return 0


def add_import_flag(parser: argparse.ArgumentParser) -> None:
    """``--import MODULE``: modules that register a Keras model's custom classes."""
    parser.add_argument("--import", dest="imports", action="append", default=[],
                        metavar="MODULE",
                        help="import this module first (repeatable): where a .keras model's "
                        "custom layers are registered with "
                        "@keras.saving.register_keras_serializable")


def import_modules(names: list[str]) -> None:
    """Import each module of ``names`` (a usage error names one that cannot be)."""
    import importlib

    from sparktf.cli.main import UsageError

    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise UsageError(f"--import {name}: cannot import it ({exc}); put its folder "
                             "on PYTHONPATH") from None

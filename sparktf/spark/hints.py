"""Schema hints: partial schemas in Spark's DDL, merged with the inferred features.

A hint names some features and their Spark types, in any form Spark's own parser reads
(``image binary, label bigint``, ``struct<image:binary,label:bigint>``, ``label: bigint``)
or as Spark's JSON schema. Features the hint does not name are inferred from a sample of
records. The types are always parsed by Spark itself (on the driver by
:meth:`pyspark.sql.types.DataType.fromDDL`, in a data source's planning worker by returning
DDL text from ``schema()``); this module only splits the hint into its top-level fields, so
that it knows which features the hint names, and quotes names that Spark's parser would
not take bare: TFRecord feature names such as ``image/encoded``, ``image.format`` or
``class-id`` work without backticks.

Examples
--------
>>> hint_fields("struct<image/encoded:binary,label:bigint>")
[('image/encoded', '`image/encoded` binary'), ('label', '`label` bigint')]
>>> merged_ddl("label int", [("id", "bigint"), ("label", "bigint")])
'`label` int, `id` bigint'
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from sparktf.errors import SchemaError

_OPEN, _CLOSE = "<(", ">)"
_TYPES = {"boolean", "int", "bigint", "long", "float", "double", "string", "binary"}


def is_json(hint: str) -> bool:
    """Whether ``hint`` is Spark's JSON form of a schema (``StructType.json()``)."""
    return hint.lstrip().startswith("{")


def quote(name: str) -> str:
    """A column name as a DDL identifier: in backticks, inner backticks doubled.

    Examples
    --------
    >>> quote("a`b")
    '`a``b`'
    """
    return "`" + name.replace("`", "``") + "`"


def _split_top(text: str, hint: str) -> list[str]:
    """Split at commas outside ``<>``, ``()`` and backticks."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, char in enumerate(text):
        if char == "`":
            quoted = not quoted
        elif quoted:
            continue
        elif char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    if depth or quoted:
        what = "a backtick" if quoted else "'<' or '('"
        raise SchemaError(f"schema hint {hint!r} is malformed: {what} is not closed")
    return parts


def _strip_struct(text: str) -> str:
    body = text.strip()
    if body[:7].lower() == "struct<" and body.endswith(">"):
        return body[7:-1]
    return body


def _field(part: str, hint: str) -> tuple[str, str]:
    text = part.strip()
    if text.startswith("`"):
        end, i = None, 1
        while i < len(text):
            if text[i] == "`":
                if text[i + 1 : i + 2] == "`":
                    i += 2
                    continue
                end = i
                break
            i += 1
        if end is None:
            raise SchemaError(f"schema hint {hint!r}: unclosed backtick in {text!r}")
        name, rest = text[1:end].replace("``", "`"), text[end + 1 :]
    else:
        cut = min((i for i in (text.find(":"), text.find(" "), text.find("\t")) if i > 0),
                  default=-1)
        if cut < 0 or any(c in text[:cut] for c in "<>()"):
            if any(c in text for c in "<>()") or text.lower() in _TYPES:
                raise SchemaError(
                    f"schema hint {hint!r}: expected a struct of named fields such as "
                    f"'image array<float>, label bigint', found the bare type {text!r}"
                )
            raise SchemaError(
                f"schema hint {hint!r}: field {text!r} has no type; write it as "
                f"'{text or 'name'} binary' or '{text or 'name'}: array<float>'"
            )
        name, rest = text[:cut], text[cut:]
    rest = rest.strip().removeprefix(":").strip()
    if not name or not rest:
        raise SchemaError(
            f"schema hint {hint!r}: field {text!r} needs a name and a type, e.g. "
            "'image/encoded binary, label bigint'"
        )
    return name, f"{quote(name)} {rest}"


def hint_fields(hint: str) -> list[tuple[str, str]]:
    """The top-level fields of a DDL hint: ``(name, DDL text with the name quoted)``.

    Raises
    ------
    SchemaError
        When a field has no type or a name is given twice.
    """
    if is_json(hint):
        from pyspark.sql.types import StructType

        try:
            schema = StructType.fromJson(json.loads(hint))
        except (ValueError, KeyError, TypeError) as exc:
            raise SchemaError(f"schema hint is not a valid JSON schema: {exc}") from None
        return [(f.name, f"{quote(f.name)} {f.dataType.simpleString()}"
                 + ("" if f.nullable else " NOT NULL")) for f in schema.fields]
    body = _strip_struct(hint)
    if not body.strip():
        raise SchemaError(f"schema hint {hint!r} is empty; e.g. 'image/encoded binary'")
    fields = [_field(part, hint) for part in _split_top(body, hint)]
    names = [name for name, _ in fields]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SchemaError(f"schema hint {hint!r} names {twice[0]!r} twice")
    return fields


def quoted_ddl(hint: str) -> str:
    """``hint`` as DDL Spark's parser reads, with every top-level name quoted.

    Examples
    --------
    >>> quoted_ddl("struct<image.format:string>")
    '`image.format` string'
    """
    return ", ".join(text for _, text in hint_fields(hint))


def merged_ddl(hint: str | None, inferred: Iterable[tuple[str, str]]) -> str:
    """The hint's fields in its order, then the inferred ``(name, type)`` it does not name."""
    fields = hint_fields(hint) if hint else []
    named = {name for name, _ in fields}
    texts = [text for _, text in fields]
    texts += [f"{quote(name)} {type_}" for name, type_ in inferred if name not in named]
    return ", ".join(texts)


_ALIASES = {"integer": "int", "long": "bigint", "short": "smallint", "byte": "tinyint",
            "real": "float", "dec": "decimal", "numeric": "decimal"}


def hint_types(hint: str | None) -> dict[str, str]:
    """The Spark type name each top-level field of a hint gives (``integer`` as ``int``).

    Examples
    --------
    >>> hint_types("day INTEGER, kind string NOT NULL, v decimal(10, 2)")
    {'day': 'int', 'kind': 'string', 'v': 'decimal(10,2)'}
    """
    out = {}
    for name, text in hint_fields(hint) if hint else []:
        kind = text[len(quote(name)):].strip()
        kind = re.split(r"\s+(?:NOT\s+NULL|COMMENT)\b", kind, maxsplit=1, flags=re.I)[0]
        kind = re.sub(r"\s+", "", kind).lower()
        head, paren, rest = kind.partition("(")
        out[name] = _ALIASES.get(head, head) + paren + rest
    return out

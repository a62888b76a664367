"""What a file that is not a TFRecord file looks like, from its first bytes."""

from __future__ import annotations

_SIGNATURES = (  # leading bytes of formats that are mistaken for TFRecord files
    (b"PAR1", "a Parquet file"),
    (b"ORC", "an ORC file"),
    (b"Obj\x01", "an Avro file"),
    (b"\x1f\x8b", "a gzip file (read it with compression auto or gzip)"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"PK\x03\x04", "a zip archive"),
    (b"SQLite format 3", "an SQLite database"),
)


UNKNOWN = "unknown binary data"


def looks_like(head: bytes) -> str:
    """What a file starting with ``head`` looks like, when it is cheap to tell.

    Examples
    --------
    >>> looks_like(b"PAR1\x15\x04")
    'a Parquet file'
    >>> looks_like(b'{"image": [0.5]}')
    'JSON text'
    """
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return what
    if head[:2] in (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda"):
        return "a zlib stream (read it with compression zlib)"
    text = head.lstrip()
    if text[:1] in (b"{", b"[") and _printable(text):
        return "JSON text"
    if _printable(text):
        return "text"
    return UNKNOWN


def _printable(head: bytes) -> bool:
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        decoded = head[:-3].decode("utf-8", "ignore")  # a character cut at the end
    return bool(decoded) and all(c.isprintable() or c in "\r\n\t" for c in decoded)

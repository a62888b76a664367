"""Lazy TensorFlow import, so ``import sparktf`` and ``sparktf --help`` stay fast."""

from __future__ import annotations

import os
from types import ModuleType

from sparktf.errors import SparkTFError

_TF: ModuleType | None = None


def tensorflow() -> ModuleType:
    """Import TensorFlow once per process, quietly, with a clear error when it is missing."""
    global _TF
    if _TF is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            import tensorflow as tf
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise SparkTFError(
                "TensorFlow is not installed: pip install 'sparktf[cpu]' (or 'sparktf[gpu]')"
            ) from exc
        _TF = tf
    return _TF

"""``python -m sparktf`` and ``spark-submit <path of this file> infer ...``."""

import os
import sys

if __package__ in (None, ""):  # run as a plain file by spark-submit
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sparktf.cli.main import entry  # noqa: E402

if __name__ == "__main__":
    entry()

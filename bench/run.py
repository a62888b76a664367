"""``make bench``: every benchmark in one run, printed as one table.

Usage: python bench/run.py [--records 1000000] [--write-records 100000] [--files 10]
                           [--work bench/output]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import tfrecord_io  # noqa: E402


def table(rows: list[dict], baselines: dict[str, float]) -> str:
    lines = [f"| bench | who | records | seconds | records/s | ratio | peak worker RSS |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        rate = r["records"] / r["seconds"]
        base = baselines.get(r["bench"])
        ratio = f"{rate / base:.2f}x" if base else ""
        rss = f"{r['peak_rss_mib']:.0f} MiB" if r.get("peak_rss_mib") else ""
        lines.append(f"| {r['bench']} | {r['who']} | {r['records']:,} | {r['seconds']:.1f} | "
                     f"{rate:,.0f} | {ratio} | {rss} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--write-records", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--memory-records", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / "output")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    start = time.time()
    rows = tfrecord_io.run(args.work, args.records, args.write_records, args.files)
    rows += tfrecord_io.memory(args.work, args.memory_records)
    baselines = {}
    for r in rows:  # the first row of each bench is its baseline
        baselines.setdefault(r["bench"], r["records"] / r["seconds"])
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
          f"python {platform.python_version()}; total {time.time() - start:.0f} s")
    print(table(rows, baselines))
    (args.work / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

"""Hostile uploads at issue 13's sizes: seconds and peak RSS growth of `load_tensors` on each.

    python benchmarks/bench_hostile_uploads.py [--scale-down]

Each file is written to a temporary folder and loaded in its own subprocess
(`tests.reliability.hostile_uploads`), which reads the peak RSS from ``/proc/self/status``
(VmHWM, reset after the file's bytes are read). The target: every file refused in < 2 s with
< 200 MB extra memory. ``--scale-down`` uses the tests' smaller files.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import print_table  # noqa: E402
from tests.reliability.hostile_uploads import HOSTILE_UPLOADS, ISSUE_SCALES  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale-down", action="store_true", help="the tests' smaller files")
    args = parser.parse_args()
    rows, worst_s, worst_mib = [], 0.0, 0.0
    with tempfile.TemporaryDirectory() as folder:
        for name, (make, filename, _) in HOSTILE_UPLOADS.items():
            scale = 1 if args.scale_down else ISSUE_SCALES.get(name, 1)
            start = time.perf_counter()
            data = make(scale)
            built = time.perf_counter() - start
            path = Path(folder) / f"{name}--{filename}"
            path.write_bytes(data)
            del data
            done = subprocess.run([sys.executable, "-m", "tests.reliability.hostile_uploads",
                                   str(path)], cwd=ROOT, capture_output=True, text=True,
                                  timeout=600, check=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            path.unlink()
            worst_s, worst_mib = max(worst_s, row["seconds"]), max(worst_mib, row["peak_mib"])
            verdict = "accepted!" if row["outcome"] == "accepted" else "refused"
            rows.append([name, f"{row['bytes'] / 2**20:.1f}", f"{built:.1f}",
                         f"{row['seconds']:.3f}", f"{row['peak_mib']:.1f}", verdict,
                         row["outcome"].split(": ", 1)[-1][:70]])
    print_table("Hostile uploads (issue 13 sizes)" if not args.scale_down else
                "Hostile uploads (test sizes)",
                ["case", "file MiB", "build s", "load_tensors s", "peak +MiB", "result",
                 "message"], rows)
    ok = worst_s < 2.0 and worst_mib < 200 and all(r[5] == "refused" for r in rows)
    print(f"\nworst: {worst_s:.3f} s, +{worst_mib:.1f} MiB peak RSS; target < 2 s and "
          f"< 200 MB: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

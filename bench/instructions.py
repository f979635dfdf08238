"""Python instructions a record costs in identity resolution, counted by valgrind.

This machine's speed drifts by ±20% within minutes, so a CPU-time benchmark cannot tell a
5% change from noise. Instructions executed are repeatable (the same count whatever else
runs), so this runs `bench/resolve.py` under callgrind at two sizes, both at once, and
prints the difference divided by the records between them: start-up, migrations and
imports cancel out. It counts this process's user-space instructions only (not
PostgreSQL's, nor the kernel's work inside system calls such as os.urandom).

    python bench/instructions.py [--small 1000] [--large 3000]

Takes ~5 minutes on 2 cores (valgrind runs Python ~50 times slower). Needs valgrind.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

RESOLVE = Path(__file__).resolve().parent / "resolve.py"


def instructions(records: int) -> int:
    environment = {**os.environ, "BENCH_DB_SUFFIX": f"_instructions_{records}"}
    run = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                          str(RESOLVE), "--records", str(records)],
                         capture_output=True, text=True, env=environment, check=True)
    found = re.search(r"Collected : (\d+)", run.stderr)
    if found is None:
        raise SystemExit("callgrind printed no instruction count")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=3000)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    if args.large <= args.small:
        raise SystemExit("--large must be above --small")
    print(f"resolving {args.small:,} and {args.large:,} records under callgrind ...", flush=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        small, large = pool.map(instructions, (args.small, args.large))
    per_record = (large - small) / (args.large - args.small)
    print(f"instructions       {small:,} ({args.small:,} records), {large:,} ({args.large:,})")
    print(f"per record         {per_record:,.0f} Python instructions")


if __name__ == "__main__":
    main()

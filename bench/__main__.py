"""`make bench`: run every bench/*_bench.py script and print one table of their figures."""

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    rows: list[tuple[str, str, str]] = []
    failed = []
    for script in sorted(HERE.glob("*_bench.py")):
        module = f"bench.{script.stem}"
        print(f"== {module}", flush=True)
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", module], cwd=HERE.parent, capture_output=True, text=True
        )
        print(proc.stdout, end="")
        if proc.returncode:
            print(proc.stderr, end="", file=sys.stderr)
            failed.append(f"{module} (exit status {proc.returncode})")
        for line in proc.stdout.splitlines():
            if line.startswith("FIGURE "):
                name, _, value = line[len("FIGURE ") :].partition(": ")
                rows.append((script.stem, name, value))
        rows.append((script.stem, "script wall time", f"{time.monotonic() - started:.1f} s"))
    sys.stdout.flush()
    width = max((len(r[1]) for r in rows), default=10)
    print("\n| benchmark | figure | value |\n|---|---|---|")
    for bench, name, value in rows:
        print(f"| {bench} | {name.ljust(width)} | {value} |")
    sys.stdout.flush()
    if failed:
        print("failed:", ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

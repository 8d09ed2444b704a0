"""`make bench`: every benchmark in this folder, one after the other, results printed and saved as JSON.

Each bench_*.py is a standalone script taking `--json PATH`; results land in `.bench/<name>.json`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    out = ROOT / ".bench"
    out.mkdir(exist_ok=True)
    failed = []
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        print(f"== {script.stem}", flush=True)
        result = subprocess.run([sys.executable, str(script), "--json", str(out / f"{script.stem}.json")], cwd=ROOT)
        if result.returncode != 0:
            failed.append(script.stem)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"results in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

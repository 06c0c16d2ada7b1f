"""`python -m benchmarks.faults [--quick] [--out docs/faults.md]`: run the suite, print the table."""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile

from benchmarks.faults import FAULTS, run_suite


def _shown(argv: list[str]) -> str:
    """The command as others would type it: without the machine-specific scratch directory."""
    out, skip = [], False
    for a in argv:
        if skip or a.startswith("--work"):
            skip = a == "--work"
            continue
        out.append(a)
    return " ".join(out)


def markdown(rows, seconds: float, quick: bool, argv: list[str]) -> str:
    head = "| fault | tries | survived | data lost | s | detail |\n|---|---:|---:|---:|---:|---|\n"
    body = "".join(f"| {r.fault} | {r.tries} | {r.survived} | {r.data_lost} | {r.seconds:.0f} |"
                   f" {r.detail.replace('|', '/').replace('; try ', '<br>try ')} |\n" for r in rows)
    n_ok = sum(r.ok for r in rows)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return (f"# Fault-injection results ({'quick' if quick else 'full'} run)\n\n"
            f"Made by `python -m benchmarks.faults {_shown(argv)}` on "
            f"{datetime.date.today().isoformat()}, commit {commit or '?'}, {platform.machine()} with "
            f"{os.cpu_count()} CPU core(s), Python {platform.python_version()}; {seconds / 60:.1f} min.\n\n"
            f"**{n_ok} of {len(rows)} faults survived with no data lost.** A row survives when every try "
            "ended as the guarantee says (see README, Reliability); `data lost` counts samples, steps "
            "or files lost, corrupted or written outside their directory; `s` is wall seconds. `$WORK` is the "
            "run's scratch directory.\n\n" + head + body)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer tries and smaller inputs (the make test size)")
    ap.add_argument("--out", help="also write the table as markdown here (e.g. docs/faults.md)")
    ap.add_argument("--only", nargs="+", choices=list(FAULTS), help="run only these fault classes")
    ap.add_argument("--work", help="scratch directory (default: a new temporary one, removed after)")
    ap.add_argument("--seed", type=int, default=0, help="seed for kill points and inputs")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hybridssl-faults-") as tmp:
        rows, seconds = run_suite(args.work or tmp, args.quick, args.only, args.seed)
    width = max(len(r.fault) for r in rows)
    print(f"\n{'fault':<{width}}  tries  survived  data lost      s")
    for r in rows:
        print(f"{r.fault:<{width}}  {r.tries:>5}  {r.survived:>8}  {r.data_lost:>9}  {r.seconds:>5.0f}"
              f"{'' if r.ok else '   FAILED'}")
    print(f"{sum(r.ok for r in rows)} of {len(rows)} survived with no data lost, in {seconds / 60:.1f} min")
    for r in rows:
        if not r.ok:
            print(f"\nFAILED {r.fault}: {r.detail}")
    if args.out:
        with open(args.out, "w") as f:
            f.write(markdown(rows, seconds, args.quick, argv))
        print(f"\nwrote {args.out}")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    from hybridssl.cli import run_command
    raise SystemExit(run_command("python -m benchmarks.faults", main))

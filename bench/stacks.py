"""Sum up the collapsed stacks ``BENCH_PROFILE`` writes (py-spy ``--gil --format raw``).

Prints the share of samples under each frame (inclusive) and at each leaf (self), the
frames of this project first, so a figure's profile reads as "where the time goes".

    .venv/bin/python bench/stacks.py FILE [--top 40] [--all]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_OURS = re.compile(r"\((core|gateway|mcp_server|cli)/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--all", action="store_true", help="every frame, not only the project's")
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in args.file.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        total += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
        leaf[frames[-1]] += int(count)
    if not total:
        raise SystemExit(f"{args.file}: no samples")
    out = [f"{args.file.name}: {total} samples (the thread holding the GIL)", "inclusive:"]
    shown = [(f, n) for f, n in inclusive.most_common() if args.all or _OURS.search(f)]
    out += [f"  {n / total:6.1%}  {f}" for f, n in shown[: args.top]]
    out.append("self (leaf frames, any code):")
    out += [f"  {n / total:6.1%}  {f}" for f, n in leaf.most_common(min(args.top, 20))]
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()

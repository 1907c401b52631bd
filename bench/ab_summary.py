"""Medians of bench/ab_restore.sh's times.txt: per tool wall, user, sys, user+sys, and wall ÷
s5cmd's.

    python3 bench/ab_summary.py /tmp/ab-restore/times.txt
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict


def main(path: str) -> None:
    runs: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            f = line.split()
            if len(f) >= 8 and f[3] == "wall":
                runs[f[1]].append((float(f[2]), float(f[4]), float(f[6])))
    med = {t: [statistics.median(col) for col in zip(*rs, strict=True)] for t, rs in runs.items()}
    s5 = med.get("S", [0.0])[0]
    for t, (wall, user, sys_) in sorted(med.items()):
        ratio = f"{wall / s5:.2f}x s5cmd" if s5 else ""
        print(f"{t}: n={len(runs[t])} wall {wall:.2f} s, user {user:.2f} s, sys {sys_:.2f} s, "
              f"cpu {user + sys_:.2f} s  {ratio}")


if __name__ == "__main__":
    main(sys.argv[1])

"""Run a command; write its wall seconds, CPU seconds (user+sys) and peak RSS to a file.

    python3 -S bench/rusage.py OUT CMD [ARG...]     # OUT gets "wall cpu maxrss_kib exit"

Tiny on purpose (built-in modules only): a spawned program's peak RSS counts the pages it shared
with its parent at the spawn, so this wrapper's few MB are the floor of every RSS measured.
"""

import os
import sys
import time

out, argv = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, ru = os.wait4(pid, 0)  # this child's rusage: RUSAGE_CHILDREN would also count
wall = time.perf_counter() - t0  # whatever ran before an exec into this process (pyenv shims)
code = os.waitstatus_to_exitcode(status)
with open(out, "w") as fh:
    fh.write(f"{wall} {ru.ru_utime + ru.ru_stime} {ru.ru_maxrss} {code}\n")
sys.exit(code if 0 <= code < 256 else 1)

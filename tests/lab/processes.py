"""Child processes of the test process, read from /proc (no psutil): what a run left behind."""

from __future__ import annotations

import os


def children() -> list[int]:
    """Live child processes of this process (multiprocessing's resource tracker excepted: it is
    started once per interpreter and is nobody's leak)."""
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z" and b"resource_tracker" not in cmdline:
            found.append(int(entry))
    return found

"""Peak memory of a benchmark child process, measured the one way that is not fooled on Linux."""

from __future__ import annotations

from pathlib import Path


def peak_rss_mib() -> float:
    """This process's own peak resident memory (Linux ``VmHWM``).

    ``ru_maxrss`` would include the parent's peak, which Linux carries into a spawned child across
    ``exec``: a child of a large benchmark process would report the parent's number.
    """
    status = Path("/proc/self/status").read_text()
    kilobytes = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kilobytes) / 1024

"""Reading a process's or a thread's ``/proc/.../stat`` and this process's memory
(Linux) for the benchmarks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Stat:
    name: str  # the command or thread name, truncated by Linux to 15 characters
    ppid: int
    cpu_s: float  # user + system CPU time so far


def stat(path: Path) -> Stat:
    """Parse ``/proc/PID/stat`` or ``/proc/PID/task/TID/stat``.

    The name is in parentheses and may hold spaces or parentheses itself, so the other
    fields are counted from its last ``)``.
    """
    raw = path.read_text()
    fields = raw.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return Stat(raw[raw.index("(") + 1:raw.rindex(")")], int(fields[1]), cpu)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    return stat(Path(f"/proc/{pid}/stat")).cpu_s


def rss_bytes(field: str = "VmRSS") -> int:
    """A memory figure of this process from ``/proc/self/status``, in bytes.

    Parameters
    ----------
    field : str
        ``VmRSS`` (resident now) or ``VmHWM`` (the peak resident).

    Returns
    -------
    int
        Bytes.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")

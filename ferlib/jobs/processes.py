"""Processes behind job folders: telling a recorded process from a later one with the same pid, and job niceness.

Linux reads /proc for a process's boot and start time; elsewhere a recorded pid is trusted as it is.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import Any

JOB_NICENESS = 10  # jobs yield the CPU to the dashboard and the live camera


def process_identity(pid: int) -> dict[str, Any]:
    """What tells this process apart from a later one given the same pid: the boot and the process's start time.

    Linux only (from /proc); elsewhere empty, and a recorded pid is trusted as it is.
    """
    boot_id, start_ticks = _boot_id(), _process_start_ticks(pid)
    identity: dict[str, Any] = {}
    if boot_id:
        identity["boot_id"] = boot_id
    if start_ticks is not None:
        identity["pid_start_ticks"] = start_ticks
    return identity


@functools.cache
def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def _process_stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None when unreadable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stream:
            return stream.read().rsplit(")", 1)[-1].split()
    except OSError:
        return None


def _process_start_ticks(pid: int) -> int | None:
    fields = _process_stat_fields(pid)
    try:
        return int(fields[19]) if fields else None  # field 22 of stat: start time in clock ticks after boot
    except (IndexError, ValueError):
        return None


@functools.cache
def _boot_time() -> float | None:
    """When the machine booted (Linux: btime in /proc/stat), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def process_alive(pid: int, status: dict[str, Any] | None = None) -> bool:
    """Whether the process a status names still runs: same boot, its pid exists and is not a zombie and, when the
    status recorded it, the process started at the same time (so a pid reused by a later process does not count)."""
    status = status or {}
    recorded_boot, current_boot = status.get("boot_id"), _boot_id()
    if recorded_boot and current_boot and recorded_boot != current_boot:
        return False
    booted = _boot_time()
    if not recorded_boot and booted and float(status.get("updated") or booted) < booted:
        return False  # an older status without a boot id, last written before this boot
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: /proc still tells its start time
    fields = _process_stat_fields(pid)
    if fields is None:
        return True
    if fields and fields[0] == "Z":
        return False
    recorded_start = status.get("pid_start_ticks")
    return recorded_start is None or _process_start_ticks(pid) in (None, recorded_start)


def lower_priority() -> None:
    """Run this process at JOB_NICENESS (once; a process already as nice or nicer is left as it is)."""
    with contextlib.suppress(OSError):
        current = os.nice(0)
        if current < JOB_NICENESS:
            os.nice(JOB_NICENESS - current)
